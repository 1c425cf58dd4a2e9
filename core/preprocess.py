"""Turn an uploaded picture into a FashionMNIST-like 28x28 input: light item, black background, filling the frame.

FashionMNIST was made from Zalando product photos (item on white) by trimming the background, resizing the
longest side to 28, centring, negating and stretching to the full 0-255 range. `to_model_input` redoes those
steps for any picture; `open_image` makes sure nothing hostile (bombs, truncated or non-image files) gets that far.
"""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

SIDE = 28
MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
# Larger images are area-averaged down to about this many pixels first: 28 output pixels need no more, and
# noise averages out. A pixel budget, not a longest side, so that a 4000x10 strip keeps its 10 rows.
WORK_PIXELS = 512 * 512
SIDE_LIMIT = 512  # longest side of the square that is resized to 28x28
# Grey levels above the background that count as "item". In a photo, faint pixels at the item's edge are
# mostly shadow or JPEG ringing: 5% is the trim tolerance Zalando used to make FashionMNIST. In a tiny,
# dataset-sized image every faint pixel is real anti-aliased edge, and dropping one row rescales the item.
MIN_CONTRAST = 13.0
MIN_CONTRAST_SMALL = 0.5
NOISE_K = 4.0  # on a noisy background, "item" must also stand this many noise sigmas above it
NOISE_ALLOWANCE = 2.0  # output-scale noise sigmas removed from every pixel
WANTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "AVIF")


class ImageError(ValueError):
    """The upload cannot be used; the message is one sentence meant for the person who uploaded it."""


def _formats() -> tuple[str, ...]:
    # Only everyday photo formats: Pillow can also open EPS (which runs Ghostscript), fonts, PSD and more,
    # none of which an honest upload needs. Formats missing from this Pillow build must be left out, or
    # Image.open raises KeyError.
    Image.init()
    return tuple(f for f in WANTED_FORMATS if f in Image.OPEN)


def _what_is_it(data: bytes, suffix: str) -> str:
    """A specific reason for a file PIL could not identify, from its first bytes."""
    named = f" (although its name ends in {suffix})" if suffix else ""
    head = data[:1024]
    if head.startswith(b"PK\x03\x04"):
        return f"The file is a ZIP archive, not an image{named}"
    if head.startswith(b"%PDF-"):
        return f"The file is a PDF document, not an image{named}"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1"):
        return "HEIC/HEIF photos are not supported; please export it as JPEG or PNG"
    if b"<svg" in head.lower():
        return "SVG drawings are not supported; please export it as PNG"
    try:
        head.decode("utf-8")
        if b"\x00" not in head:
            return f"The file is text, not an image{named}"
    except UnicodeDecodeError:
        pass  # a multi-byte character cut at 1024 bytes also lands here; "not an image" is still right
    kinds = ", ".join(_formats())
    return f"The file is not an image PIL can read{named}; supported formats are {kinds}"


def _reason(e: Exception) -> str:
    """An exception's message cut to one short line, to quote inside an ImageError sentence."""
    text = (str(e).splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 100 else text[:97] + "..."


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"The image is {width}x{height} pixels, which has no pixels at all")
    if width * height > MAX_PIXELS:
        raise ImageError(f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")


def _decode(data: bytes, suffix: str = "") -> Image.Image:
    if not data:
        raise ImageError("The file is empty")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB")
    # Image.open reads only the header; PIL's own bomb check (MAX_IMAGE_PIXELS) runs inside it and warns or
    # raises. The warning is made an error for this call only (not LOAD_TRUNCATED_IMAGES-style global state).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"has {int(found.group(1)) / 1e6:.0f} megapixels" if found else "is far too large"
        raise ImageError(f"The image {size}; the limit is {MAX_PIXELS // 1_000_000} megapixels") from None
    except Image.UnidentifiedImageError:
        raise ImageError(_what_is_it(data, suffix)) from None
    except Exception as e:  # plugins raise an assortment of types on a malformed header
        raise ImageError(f"The file looks like an image but its header is damaged ({_reason(e)})") from None
    _check_pixels(*im.size)  # from the header, before a single pixel is decoded
    return _load(im)


def _load(im: Image.Image) -> Image.Image:
    # A truncated file is refused rather than half-decoded: a silently grey lower half would be
    # classified as if it were the picture, and the switch that allows it is process-wide.
    try:
        im.load()
    except Exception as e:  # OSError for truncation, but also SyntaxError, ValueError, zlib errors...
        reason = "it is truncated" if "truncated" in str(e) else _reason(e)
        raise ImageError(f"The image data is damaged or incomplete ({reason})") from None
    return im


def _read_path(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise ImageError(f"{path.name or path} is not a regular file")
        if info.st_size == 0:
            raise ImageError("The file is empty")
        if info.st_size > MAX_BYTES:
            raise ImageError(f"The file is {info.st_size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB")
        with open(path, "rb") as f:
            return f.read(MAX_BYTES + 1)  # bounded even if the file grows after stat
    except FileNotFoundError:
        raise ImageError(f"The file {path.name} does not exist") from None
    except OSError as e:
        raise ImageError(f"The file {path.name} cannot be read ({e.strerror or _reason(e)})") from None


def _from_array(a: np.ndarray) -> Image.Image:
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"Image arrays must be uint8 or uint16, not {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise ImageError(f"An image array must be HxW, HxWx3 or HxWx4, not {'x'.join(map(str, a.shape))}")
    _check_pixels(a.shape[1], a.shape[0])
    if a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)  # 65535 -> 255, the full 16-bit range onto 8 bits
    return Image.fromarray(np.ascontiguousarray(a))  # uint8 HxW / x2 / x3 / x4 -> L / LA / RGB / RGBA


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grayscale -> 8-bit "L". PIL's own convert("L") clips at 255, which turns a
    16-bit photo into a white sheet."""
    a = np.asarray(im).astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if im.mode.startswith("I;16") or (255 < hi <= 65535 and lo >= 0):
        a = a / 257.0  # the 16-bit range onto the 8-bit one: 65535 -> 255
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif lo < 0 or hi > 255:  # no nominal range to go by: use the image's own
        a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    # else: "I" or "F" already on the 0-255 scale, which is how PIL itself reads mode "I"
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))


def _flatten(im: Image.Image) -> Image.Image:
    """Any mode -> "L" or "RGB", with transparency composited onto white."""
    if im.mode in ("L", "RGB"):
        return im
    if im.mode.startswith("I") or im.mode == "F":
        return _high_depth_to_l(im)
    try:
        if im.has_transparency_data:
            # Transparent means background. FashionMNIST items were photographed on white, so a cut-out
            # composited onto white is exactly what its pipeline saw; to_model_input then inverts it.
            rgba = im.convert("RGBA")
            canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
            canvas.alpha_composite(rgba)
            return canvas.convert("RGB")
        return im.convert("L" if im.mode == "1" else "RGB")  # CMYK, P, YCbCr, LAB, HSV ...
    except (ValueError, OSError) as e:
        raise ImageError(f"The image's colour mode {im.mode} is not supported ({_reason(e)})") from None


def _prepare(im: Image.Image) -> Image.Image:
    _check_pixels(*im.size)
    if im.tell() != 0:  # an animation is judged by its first frame (a fresh file is already there)
        try:
            im.seek(0)
        except Exception as e:
            raise ImageError(f"The first frame of the animation cannot be read ({_reason(e)})") from None
    im = _load(im)
    try:
        im = ImageOps.exif_transpose(im)  # phone photos store "rotate me" in EXIF instead of rotating pixels
    except Exception:  # malformed EXIF: the unrotated picture is still better than refusing it
        pass
    return _flatten(im)


def open_image(source) -> Image.Image:
    """A path, bytes, PIL image or numpy array -> a loaded "L" or "RGB" PIL image, or ImageError."""
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ImageError("No image was given")
    if isinstance(source, Image.Image):
        return _prepare(source)
    if isinstance(source, np.ndarray):
        return _prepare(_from_array(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _prepare(_decode(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _prepare(_decode(_read_path(path), path.suffix.lower()))
    raise ImageError(f"Cannot read an image from a {type(source).__name__}; "
                     "pass a file path, bytes, a PIL image or a numpy array")


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


def to_model_input(image: Image.Image) -> tuple[torch.Tensor, np.ndarray]:
    """A PIL image -> (x float32 [1,784] in [0,1], preview uint8 [28,28] == x * 255), FashionMNIST-style."""
    gray = _flatten(image).convert("L")
    if gray.width * gray.height > WORK_PIXELS:
        gray = _shrink(gray, (WORK_PIXELS / (gray.width * gray.height)) ** 0.5)
    a = np.asarray(gray, dtype=np.float32)
    border = _border(a)
    if np.median(border) > 127:  # light background: a product photo, which FashionMNIST stores negated
        a, border = 255.0 - a, 255.0 - border
    # Background to 0 but no clipping yet: zero-mean noise then averages away in the resize to 28 px.
    a -= np.median(border)
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
    """open_image + to_model_input: any upload -> (x [1,784], preview [28,28])."""
    return to_model_input(open_image(source))


# --- photo-like versions of real test images, to measure how well the pipeline undoes "being a photo" ---

KINDS = ("enlarged", "light_background", "tinted", "shifted", "noisy", "jpeg", "combined")


def _enlarge(t: np.ndarray, rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    side = int(rng.integers(low, high + 1))
    return np.asarray(Image.fromarray(t).resize((side, side), Image.Resampling.BICUBIC)).clip(0, 1)


def _shift(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = t.shape
    canvas = np.zeros((int(h * rng.uniform(1.4, 2.2)), int(w * rng.uniform(1.4, 2.2))), np.float32)
    top, left = int(rng.integers(0, canvas.shape[0] - h + 1)), int(rng.integers(0, canvas.shape[1] - w + 1))
    canvas[top:top + h, left:left + w] = t
    return canvas


def _colourize(t: np.ndarray, background, item) -> np.ndarray:
    bg, fg = np.asarray(background, np.float32), np.asarray(item, np.float32)
    return bg + (fg - bg) * t[:, :, None]


def photo_like(image28: np.ndarray, rng: np.random.Generator, kind: str) -> Image.Image:
    """A real 28x28 test image dressed up as an RGB photo of the given KINDS kind."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    t = np.asarray(image28, np.float32) / 255.0  # the item's "ink", 0 = background
    t = _enlarge(t, rng, *((150, 300) if kind in ("shifted", "combined") else (300, 600)))
    if kind in ("shifted", "combined"):
        t = _shift(t, rng)
    background, item = (0, 0, 0), (255, 255, 255)
    if kind == "light_background":
        background, item = (255, 255, 255), (0, 0, 0)
    elif kind in ("tinted", "combined"):
        background, item = rng.integers(170, 256, 3), rng.integers(0, 111, 3)
    rgb = _colourize(t, background, item)
    if kind in ("noisy", "combined"):
        rgb = rgb + rng.normal(0, rng.uniform(8, 20), rgb.shape)
    photo = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
    if kind in ("jpeg", "combined"):
        buffer = io.BytesIO()
        photo.save(buffer, "JPEG", quality=int(rng.integers(30, 61)))
        photo = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return photo


def photo_robustness(predict: Callable[[torch.Tensor], torch.Tensor], images: np.ndarray, labels: np.ndarray,
                     per_kind: int = 10, seed: int = 0) -> dict:
    """How often a photo-like version of a test image gets the same prediction as the image itself.

    `predict` maps float [N,784] in [0,1] to class indices [N]. Returns per-kind and overall agreement,
    n, accuracy on the originals and on the photos, and their ratio ("relative"; nan if the originals score 0).
    """
    rng = np.random.default_rng(seed)
    images, labels = np.asarray(images), np.asarray(labels)
    per_kind_agreement, same, right_original, right_photo = {}, [], [], []
    for kind in KINDS:
        idx = rng.choice(len(images), size=per_kind, replace=per_kind > len(images))
        original = torch.from_numpy(images[idx].reshape(len(idx), -1).astype(np.float32) / 255.0)
        photos = torch.cat([preprocess(photo_like(images[i], rng, kind))[0] for i in idx])
        with torch.no_grad():
            p_original, p_photo = predict(original).cpu().numpy(), predict(photos).cpu().numpy()
        agree = p_original == p_photo
        per_kind_agreement[kind] = float(agree.mean())
        same.append(agree)
        right_original.append(p_original == labels[idx])
        right_photo.append(p_photo == labels[idx])
    accuracy_original = float(np.concatenate(right_original).mean())
    accuracy_photo = float(np.concatenate(right_photo).mean())
    return {"per_kind": per_kind_agreement,
            "agreement": float(np.concatenate(same).mean()),
            "n": int(sum(len(s) for s in same)),
            "accuracy_original": accuracy_original,
            "accuracy_photo": accuracy_photo,
            "relative": accuracy_photo / accuracy_original if accuracy_original > 0 else float("nan")}
