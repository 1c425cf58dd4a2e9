"""Turn a decoded picture into a FashionMNIST-like 28x28 input: light item, black background, filling the frame.

FashionMNIST was made from Zalando product photos (item on white) by trimming the background, resizing the
longest side to 28, centring, negating and stretching to the full 0-255 range. `to_model_input` redoes those
steps for any picture; `preprocess` first has core.upload.open_image make sure nothing hostile (bombs,
truncated or non-image files) gets that far. "Negating" generalises to "how far each pixel is from the
background, towards the item's colour" (_ink), so that a light item on a light background, or an item that
differs from its background in hue more than in brightness, still comes out light on black.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from .upload import decode, decode_slot, to_working

SIDE = 28
# Larger images are area-averaged down to about this many pixels first: 28 output pixels need no more, and
# noise averages out. A pixel budget, not a longest side, so that a 4000x10 strip keeps its 10 rows.
WORK_PIXELS = 512 * 512
# A JPEG upload of at least 4x this many pixels (16.8 MP; phone photos are 12) is decoded by libjpeg at 1/2
# scale or less, keeping at least this many: a quarter of the memory and a third of the time. The BOX filter
# then still averages at least 4 x 4 of its pixels into each working pixel, so the input differs from a full
# decode by about a grey level (tests/test_decode_memory.py measures it). Every other upload is decoded whole.
DRAFT_PIXELS = 16 * WORK_PIXELS
SIDE_LIMIT = 512  # longest side of the square that is resized to 28x28
# Grey levels above the background that count as "item". In a photo, faint pixels at the item's edge are
# mostly shadow or JPEG ringing: 5% is the trim tolerance Zalando used to make FashionMNIST. In a tiny,
# dataset-sized image every faint pixel is real anti-aliased edge, and dropping one row rescales the item.
MIN_CONTRAST = 13.0
MIN_CONTRAST_SMALL = 0.5
NOISE_K = 4.0  # on a noisy background, "item" must also stand this many noise sigmas above it
NOISE_ALLOWANCE = 2.0  # output-scale noise sigmas removed from every pixel


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def _noise(values: np.ndarray) -> float:
    """Robust standard deviation (scaled median absolute deviation): 0 on a clean background, and the
    item poking into the border does not inflate it."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _bounding_box(a: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns holding the item in `a` (background already at 0)."""
    h, w = a.shape
    everything = slice(None), slice(None)  # when nothing stands out: the whole picture rather than a failure
    if max(h, w) <= 2 * SIDE:  # dataset-sized: every pixel counts, nothing to smooth
        return _box(a > max(MIN_CONTRAST_SMALL, NOISE_K * _noise(_border(a))), h, w) or everything
    fine = Image.fromarray(a)
    if min(h, w) >= 3:  # a 3x3 median drops isolated specks that would stretch the box to the edges
        fine = fine.filter(ImageFilter.MedianFilter(3))
    # Find the item where blocks of pixels are averaged, which beats noise down so that a faint item on a
    # noisy background is still found; the noise is measured on that same smoothed image.
    step = max(1, max(h, w) // (4 * SIDE))
    coarse = np.asarray(fine.resize((max(1, w // step), max(1, h // step)), Image.Resampling.BOX))
    threshold = max(MIN_CONTRAST, NOISE_K * _noise(_border(coarse)))
    found = _box(coarse > threshold, h, w)
    if found is None:
        return everything
    # Blocks place the box to within a block; the full-resolution pixels inside it may trim it by that much,
    # and no more, so that noise cannot eat into a faint item.
    rows, cols = found
    inside = _box(np.asarray(fine)[rows, cols] > threshold, rows.stop - rows.start, cols.stop - cols.start)
    if inside is None:
        return rows, cols
    block = int(np.ceil(max(h / coarse.shape[0], w / coarse.shape[1]))) + 1
    return _trim(rows, inside[0], block), _trim(cols, inside[1], block)


def _trim(outer: slice, inner: slice, most: int) -> slice:
    """`outer` shrunk towards `inner` (given relative to outer.start), by at most `most` on each side."""
    return slice(outer.start + min(inner.start, most), outer.stop - min(outer.stop - outer.start - inner.stop, most))


def _box(mask: np.ndarray, h: int, w: int) -> tuple[slice, slice] | None:
    """Bounding box of `mask`, scaled to an h x w image (rounding outwards), or None if it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    sy, sx = h / mask.shape[0], w / mask.shape[1]
    return (slice(int(rows[0] * sy), min(h, int(np.ceil((rows[-1] + 1) * sy)))),
            slice(int(cols[0] * sx), min(w, int(np.ceil((cols[-1] + 1) * sx)))))


def _shrink(image: Image.Image, scale: float) -> Image.Image:
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX)  # area average: exact anti-aliasing for downscaling


def _fit(item: np.ndarray) -> np.ndarray:
    """Pad to a square with black, item centred, then resize to 28x28: FashionMNIST items touch the frame
    (measured on the sample: 98.8% have a 28-px longest side, centred to within half a pixel)."""
    if max(item.shape) > 2 * SIDE_LIMIT:  # a long thin strip would make a huge square: shrink it first
        item = np.asarray(_shrink(Image.fromarray(item), SIDE_LIMIT / max(item.shape)))
    h, w = item.shape
    side = max(h, w)
    # Padding at working resolution (not rounding the short side at 28 px) keeps the sub-pixel centre.
    # An odd margin leaves its extra pixel on the top/left, as in the dataset (~97% of such sample images).
    top, left = (side - h + 1) // 2, (side - w + 1) // 2
    square = np.zeros((side, side), np.float32)
    square[top:top + h, left:left + w] = item
    return np.asarray(Image.fromarray(square).resize((SIDE, SIDE), Image.Resampling.LANCZOS))


def _blocks(a: np.ndarray, step: int) -> np.ndarray:
    """`a` (H x W x C, float) averaged over step x step blocks, channel by channel."""
    h, w = a.shape[:2]
    size = max(1, w // step), max(1, h // step)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[:, :, k])).resize(size, Image.Resampling.BOX))
                     for k in range(a.shape[2])], axis=2)


def _item_colour(d: np.ndarray, light_background: bool) -> np.ndarray:
    """The unit colour direction in which the item departs from the background, from `d` (H x W x C, the
    picture minus the background colour): the sum of the departures that stand out of the noise.

    A dark item on white gives "darker", a light one on black "lighter", as FashionMNIST's negation assumes;
    but a white sneaker on a beige cloth is lighter than its light background, and a navy shirt on red
    differs in hue more than in brightness. The departures are summed where blocks of pixels are averaged,
    as in _bounding_box, so that a background's fine texture (stripes, paper grain, weave) averages away and
    does not vote. When nothing stands out, the light-or-dark rule of the dataset decides."""
    h, w, c = d.shape
    small = max(h, w) <= 2 * SIDE
    coarse = d if small else _blocks(d, max(1, max(h, w) // (4 * SIDE)))
    noise = float(np.sqrt(np.mean([_noise(_border(coarse[:, :, k])) ** 2 for k in range(c)])))
    distance = np.sqrt(np.mean(coarse ** 2, axis=2))  # per channel, so that it is in grey levels like the noise
    threshold = max(MIN_CONTRAST_SMALL if small else MIN_CONTRAST, NOISE_K * noise)
    total = coarse[distance > threshold].sum(axis=0, dtype=np.float64)
    norm = float(np.linalg.norm(total))
    if norm == 0:
        return np.full(c, (-1.0 if light_background else 1.0) / np.sqrt(c), np.float32)
    return (total / norm).astype(np.float32)


def _ink(picture: Image.Image) -> np.ndarray:
    """How much of the item each pixel shows, in grey levels (float32 H x W): the picture projected onto
    the item's colour direction, less the border's median of that projection. The background
    is at 0, with its noise left in, positive and negative: zero-mean noise averages away in the resize
    to 28 px. For a dark item on white this is exactly 255 minus the picture, FashionMNIST's negation."""
    a = np.asarray(picture, dtype=np.float32)
    if a.ndim == 3 and (a[:, :, :1] == a[:, :, 1:]).all():
        a = a[:, :, 0]  # a grey picture stored as RGB gives exactly what its grey version gives
    if a.ndim == 2:
        a = a[:, :, None]
    background = np.median(_border(a), axis=0)
    u = _item_colour(a - background, float(background.mean()) > 127)
    # Divided by sqrt(C) so that a grey departure of k levels stays k in every channel count: the
    # thresholds are in grey levels.
    ink = (a @ u if a.shape[2] == 1 else a @ (u / np.float32(np.sqrt(a.shape[2])))).astype(np.float32)
    # The background level is the median of the projected border, not the projection of each channel's
    # median: where noise is clipped at black or white, the channels' medians sit off the noise's centre.
    return ink - np.median(_border(ink))


def to_model_input(image: Image.Image) -> tuple[torch.Tensor, np.ndarray]:
    """A PIL image -> (x float32 [1,784] in [0,1], preview uint8 [28,28] == x * 255), FashionMNIST-style."""
    # to_working: L or RGB, area-averaged down to WORK_PIXELS if larger, without a full-size copy of a large image
    return _from_picture(to_working(image, WORK_PIXELS))


def _from_picture(picture: Image.Image) -> tuple[torch.Tensor, np.ndarray]:
    a = _ink(picture)  # at most about WORK_PIXELS: the only float copy of the picture
    border = _border(a)
    rows, cols = _bounding_box(a)
    item = np.ascontiguousarray(a[rows, cols])
    # What is left of the background noise once ~(side/28)^2 pixels are averaged into each output pixel;
    # a couple of those sigmas come off every pixel, so a noisy background ends up black.
    noise = _noise(border) * min(1.0, SIDE / max(item.shape))
    small = np.clip(_fit(item) - NOISE_ALLOWANCE * noise, 0, None)
    peak = float(small.max())
    if peak > 0:  # FashionMNIST is contrast-stretched: its brightest pixel is 254-255 in every image
        small *= 255.0 / peak
    preview = np.clip(np.round(small), 0, 255).astype(np.uint8)
    x = torch.from_numpy(preview.astype(np.float32) / 255.0).reshape(1, SIDE * SIDE)
    return x, preview


def preprocess(source) -> tuple[torch.Tensor, np.ndarray]:
    """open_image + to_model_input: any upload -> (x [1,784], preview [28,28]). The upload goes straight from
    its own mode to the working picture (core.upload.to_working), never through a full-size RGB or 8-bit copy;
    one decode slot is held throughout, since the decoded picture lives until then."""
    with decode_slot():
        image, turn, box = decode(source, DRAFT_PIXELS)
        picture = to_working(image, WORK_PIXELS, turn, box)
        del image  # freed before the slot is given back, which returns freed memory to the system
        return _from_picture(picture)
