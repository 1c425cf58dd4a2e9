"""No single upload can take the server's memory: a 39.9-megapixel 16-bit PNG of 100 KB costs its decoded size
and little more (it used to cost 1 GB), 8 of them at once cost what 2 do (DECODE_SLOTS), a decode that cannot
get a slot in time gets one clear sentence, and the tile-by-tile steps that make this so give exactly the pixels
the whole-image steps gave. Memory is measured in fresh processes by bench.decode_memory (peak RSS, VmHWM)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from core import preprocess as P
from core import upload as U
from tests import imagefiles as F
from tests.helpers import ROOT


def measure(what: str, path, threads: int = 1) -> dict:
    """bench.decode_memory's measurement: peak extra RSS (MB) of `what` on `path` in `threads` threads at
    once, in a fresh process."""
    run = subprocess.run([sys.executable, "-m", "bench.decode_memory", "--child", what, str(path), str(threads)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    path = F.deep_png(tmp_path_factory.mktemp("deep") / "deep.png")  # 6320 x 6320, 16-bit grayscale
    with Image.open(path) as im:
        assert im.mode == "I;16" and im.width * im.height > 39_900_000
    assert path.stat().st_size < 150_000
    return path


# --- memory ---

@pytest.mark.parametrize("what", ["open_image", "preprocess"])
def test_a_39_megapixel_16_bit_png_costs_under_200_mb(deep, what):
    # PIL's own decode is 80 MB (2 bytes a pixel); the whole-image float64 conversion used to add 900 MB more.
    r = measure(what, deep)
    assert r["failed"] == 0, r
    assert r["peak_extra_mb"] < 200, r


def test_eight_concurrent_decodes_cost_what_two_do(deep):
    one, eight = measure("preprocess", deep), measure("preprocess", deep, threads=8)
    assert eight["failed"] == 0, eight  # they waited their turn (seconds), none was refused
    # 8 decodes at once would be 8x one (they were: 5.7 GB); DECODE_SLOTS = 2, plus the tiles of the threads
    assert eight["peak_extra_mb"] < 2.6 * one["peak_extra_mb"] + 30, (one, eight)


def test_the_huge_png_still_comes_out_right(deep):
    # black, a light square item in the middle third (16-bit 40000, every 8th column 60000): trimmed to the
    # item, which then fills the frame as an even light grey (a 16-bit image clipped to 8 bits would be a white
    # sheet, where nothing stands out: an all-black input)
    preview = P.preprocess(deep)[1].astype(int)
    inside = preview[2:-2, 2:-2]
    assert preview.min() > 150 and np.median(inside) > 230 and np.abs(inside - np.median(inside)).max() <= 10


# --- the decode slots ---

@pytest.fixture
def one_slot(monkeypatch):
    monkeypatch.setattr(U, "_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(U, "DECODE_WAIT_S", 0.3)


def _hold_the_slot():
    """A thread holding the only slot until the returned event is set."""
    holding, release = threading.Event(), threading.Event()

    def hold():
        with U.decode_slot():
            holding.set()
            release.wait(30)
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(10)
    return release, thread


def test_a_decode_that_gets_no_slot_in_time_is_told_to_try_again(one_slot, tmp_path):
    path = F.gray16_png(tmp_path / "deep.png")
    release, thread = _hold_the_slot()
    try:
        for call in (U.open_image, P.preprocess):
            with pytest.raises(U.BusyError) as info:
                call(path)
            assert str(info.value) == U.BUSY == "The server is busy decoding other uploads; try again in a moment"
            assert isinstance(info.value, U.ImageError)  # so the app shows it as the visitor's message
    finally:
        release.set()
        thread.join(10)
    # the slot is free again; preprocess takes it once, and the decode inside does not wait for it a second time
    assert P.preprocess(path)[1].max() > 200


def test_a_waiting_decode_goes_ahead_when_a_slot_comes_free(one_slot, monkeypatch, tmp_path):
    monkeypatch.setattr(U, "DECODE_WAIT_S", 30.0)
    path = F.gray16_png(tmp_path / "deep.png")
    release, thread = _hold_the_slot()
    results = []
    waiter = threading.Thread(target=lambda: results.append(P.preprocess(path)[1]))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not results  # waiting, not refused, not decoded
    release.set()
    waiter.join(30)
    thread.join(10)
    assert len(results) == 1 and results[0].max() > 200


# --- tile by tile is exactly whole-image ---

def _picture(w: int, h: int) -> np.ndarray:
    """Smooth shading in 0..1 with a darker block: every pixel different, edges inside every tile."""
    y, x = np.mgrid[0:h, 0:w]
    a = np.sin(x / 37.0) * np.cos(y / 23.0) * 0.5 + 0.5
    a[h // 5: 4 * h // 5, w // 3: 2 * w // 3] *= 0.2
    return a


def _files(w: int, h: int, orientation: int | None) -> dict[str, bytes]:
    a = _picture(w, h)
    rgb = np.stack([a * 255, a[::-1] * 200, a[:, ::-1] * 255], 2).astype(np.uint8)
    alpha = (a * 255).astype(np.uint8)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation

    def enc(im: Image.Image, fmt: str = "PNG") -> bytes:
        return F.encode(im, fmt, exif=exif)
    return {
        "I;16 PNG": enc(Image.fromarray((a * 60000).astype(np.uint16))),
        "I TIFF": enc(Image.fromarray((a * 60000).astype(np.int32) - 9000), "TIFF"),
        "F TIFF": enc(Image.fromarray((a * 3 - 1).astype(np.float32)), "TIFF"),
        "RGB PNG": enc(Image.fromarray(rgb)),
        "RGBA PNG": enc(Image.fromarray(np.dstack([rgb, alpha]))),
        "P PNG": enc(Image.fromarray(rgb).convert("P")),
        "CMYK JPEG": enc(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "LA PNG": enc(Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")),
        "1 PNG": enc(Image.fromarray(rgb[..., 0] > 128)),
        "RGB JPEG": enc(Image.fromarray(rgb), "JPEG"),
    }


def _whole_image(data: bytes, monkeypatch, max_pixels: int = P.WORK_PIXELS) -> tuple[Image.Image, Image.Image]:
    """What core.upload and core.preprocess did before tiles: every step on the whole image, with its copies
    (ImageOps.exif_transpose, then the conversion, then one resize)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    im = ImageOps.exif_transpose(im)
    with monkeypatch.context() as m:
        m.setattr(U, "TILE_PIXELS", 10**12)  # one tile: the whole image at once
        flat = U.flatten(im)
    working = flat
    if working.width * working.height > max_pixels:
        scale = (max_pixels / (working.width * working.height)) ** 0.5
        working = working.resize((max(1, round(working.width * scale)), max(1, round(working.height * scale))),
                                 Image.Resampling.BOX)
    return flat, working


@pytest.mark.parametrize("size", [(41, 37), (911, 707)], ids=["small", "over-work-size"])
def test_tiles_give_exactly_the_whole_image_pixels(monkeypatch, size):
    monkeypatch.setattr(U, "TILE_PIXELS", 777)  # hundreds of tiles, cut across rows and columns
    compared = 0
    for orientation in (None, 2, 3, 4, 5, 6, 7, 8):  # every EXIF turn, flips included
        for name, data in _files(*size, orientation).items():
            flat, working = _whole_image(data, monkeypatch)
            im, turn, box = U.decode(data)
            assert np.array_equal(np.asarray(U.open_image(data)), np.asarray(flat)), (name, orientation)
            assert np.array_equal(np.asarray(U.to_working(im, P.WORK_PIXELS, turn, box)), np.asarray(working)), \
                (name, orientation)
            assert np.array_equal(P.preprocess(data)[1], P._from_picture(working)[1]), (name, orientation)
            compared += 1
    assert compared == 80


def test_a_very_wide_strip_is_cut_into_columns_too(monkeypatch):
    monkeypatch.setattr(U, "TILE_PIXELS", 500)  # narrower than the strip: a band of one row is cut further
    a = (_picture(3000, 3) * 65535).astype(np.uint16)
    data = F.encode(Image.fromarray(a), "PNG")
    flat, working = _whole_image(data, monkeypatch, max_pixels=1000)
    assert working.size == (1000, 1)
    assert np.array_equal(np.asarray(U.open_image(data)), np.asarray(flat))
    im, turn, box = U.decode(data)
    assert np.array_equal(np.asarray(U.to_working(im, 1000, turn, box)), np.asarray(working))


def test_float_images_scale_by_their_finite_values():
    a = np.full((20, 20), np.nan, np.float32)
    a[5:15, 5:15] = 2.0
    a[19, 19] = -1.0
    a[0, 0], a[0, 1] = np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN is not cast to uint8 (numpy warns, and the result is undefined)
        gray = np.asarray(U.open_image(Image.fromarray(a)))  # the finite range -1..2 onto 0..255
    assert gray[10, 10] == 255 and gray[19, 19] == 0
    assert gray[0, 0] == 255 and gray[0, 1] == 0 and gray[3, 3] == 0  # +inf top, -inf bottom, NaN black


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_pngs(tmp_path, channels):
    # Pillow 12 opens 16-bit RGB and RGBA PNGs as 8-bit RGB and RGBA (keeping the high byte), not as "I"
    path = F.deep_png(tmp_path / "colour.png", 90, 60, channels=channels)
    assert Image.open(path).mode == ("RGB", "RGBA")[channels - 3]
    im = U.open_image(path)
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (0, 0, 0)
    assert all(abs(v - 40000 / 257) <= 1 for v in im.getpixel((31, 30)))  # the item, not a stripe column


# --- big JPEGs: decoded at reduced scale by libjpeg ---

def _photo(w: int, h: int) -> bytes:
    """A product photo: a real FashionMNIST item, dark on a light, slightly noisy backdrop."""
    from core.data import load_sample
    item = (load_sample().x[3].reshape(28, 28).numpy() * 255).astype(np.uint8)
    canvas = Image.new("L", (w, h), 0)
    canvas.paste(Image.fromarray(item).resize((h * 3 // 4, h * 3 // 4), Image.Resampling.BICUBIC), (w // 4, h // 8))
    noise = np.random.default_rng(0).normal(0, 5, (h, w)).astype(np.float32)
    photo = np.clip(235 - np.asarray(canvas, np.float32) * 0.8 + noise, 0, 255).astype(np.uint8)
    return F.encode(Image.fromarray(photo).convert("RGB"), "JPEG", quality=90)


def test_a_big_jpeg_is_decoded_at_half_scale_and_comes_out_nearly_the_same():
    data = _photo(5200, 4000)  # 20.8 MP: at least 4x DRAFT_PIXELS
    im, box = U._decode(data, draft_pixels=P.DRAFT_PIXELS)
    assert im.size == (2600, 2000) and box == (0, 0, 2600.0, 2000.0)
    im_full, turn, _ = U.decode(data)
    assert im_full.size == (5200, 4000)
    drafted = P.preprocess(data)[1].astype(int)
    full = P._from_picture(U.to_working(im_full, P.WORK_PIXELS, turn))[1]
    diff = np.abs(drafted - full)
    assert diff.mean() < 1.0 and diff.max() <= 16, (diff.mean(), diff.max())  # measured: 0.13, 2


def test_a_phone_sized_jpeg_is_decoded_whole():
    data = _photo(4000, 3000)  # 12 MP: under 4x DRAFT_PIXELS, so exactly as before
    im, box = U._decode(data, draft_pixels=P.DRAFT_PIXELS)
    assert im.size == (4000, 3000) and box is None


def test_a_draft_box_is_turned_with_the_picture():
    # an odd-sized JPEG leaves a partial last row and column at half scale; EXIF 6 turns them to the left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    data = F.encode(Image.new("RGB", (4801, 3601), (200, 200, 200)), "JPEG", exif=exif)
    im, turn, box = U.decode(data, draft_pixels=P.DRAFT_PIXELS)
    assert im.size == (2401, 1801) and turn == Image.Transpose.ROTATE_270
    assert box == (1801 - 3601 / 2, 0, 1801, 4801 / 2)  # in the upright image: 1801 wide, 2401 tall
    assert P.preprocess(data)[1].max() == 0  # a blank sheet: nothing stands out


def test_every_turn_of_a_box_matches_the_turned_pixels():
    a = np.zeros((5, 7), np.uint8)
    a[1:3, 2:6] = 255  # the box (2, 1, 6, 3) of a 7 x 5 image
    for turn in U._TURNS.values():
        turned = np.asarray(Image.fromarray(a).transpose(turn))
        rows, cols = np.flatnonzero(turned.any(1)), np.flatnonzero(turned.any(0))
        assert U._turn_box((2, 1, 6, 3), (7, 5), turn) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1), turn
        turned_box = U._turn_box((2, 1, 6, 3), (7, 5), turn)
        back = U._turn_box(turned_box, U._shown_size((7, 5), turn), U._UNDO.get(turn, turn))
        assert back == (2, 1, 6, 3), turn  # and _UNDO turns it back
