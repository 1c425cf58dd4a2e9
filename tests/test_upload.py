"""core.upload: hostile and odd uploads are refused with one clear sentence, or decoded to the right pixels.

Every bad file is generated in tmp_path at test time by tests/imagefiles.py (test_uploads.py sends the
same files through the launched app); nothing binary is committed. What the decoded odd images become as
model inputs is checked in test_preprocess.py.
"""
from __future__ import annotations

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from core import upload as U
from core.preprocess import preprocess
from tests import imagefiles as F
from tests.imagefiles import encode, png_header


def refused(source, *words):
    with pytest.raises(U.ImageError) as info:
        U.open_image(source)
    message = str(info.value)
    with pytest.raises(U.ImageError) as again:  # the whole pipeline refuses with the very same sentence
        preprocess(source)
    assert str(again.value) == message
    assert "\n" not in message
    assert any(w.lower() in message.lower() for w in words), message
    return message


# --- files that are not (whole) images ---

def test_text_named_png(tmp_path):
    path = F.text_named_png(tmp_path / "shirt.png")
    message = refused(path, "text")
    assert ".png" in message


def test_zip_named_png(tmp_path):
    path = F.zip_named_png(tmp_path / "shirt.png")
    refused(path, "zip")


def test_empty_file(tmp_path):
    path = F.empty_file(tmp_path / "empty.png")
    refused(path, "empty")
    refused(b"", "empty")


def test_truncated_png(tmp_path):
    path = F.truncated_png(tmp_path / "cut.png")
    refused(path, "damaged or incomplete")


def test_truncated_jpeg(tmp_path):
    path = F.truncated_jpeg(tmp_path / "cut.jpg")
    refused(path, "damaged or incomplete")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the global switch was left alone


def test_missing_directory_none_and_wrong_types(tmp_path):
    refused(tmp_path / "nope.png", "does not exist")
    refused(tmp_path, "not a regular file")
    refused(None, "no image")
    refused(42, "int")
    refused(np.zeros((4, 4), np.float64), "uint8")
    refused(np.zeros((4, 4, 5), np.uint8), "HxW")


def test_file_over_byte_limit_is_not_read(tmp_path):
    path = F.sparse_file(tmp_path / "huge.png", U.MAX_BYTES + 1)  # no disk used, and it must not be read
    refused(path, f"limit is {U.MAX_BYTES / 1e6:g} MB")


# --- decompression bombs: refused from the header, never decoded ---

@pytest.mark.parametrize("width,height", [(30000, 30000),  # PIL's own DecompressionBombError range
                                          (10000, 10000),  # PIL's DecompressionBombWarning range
                                          (8000, 6000)])   # below PIL's limits, above ours
def test_bomb_refused_before_decoding(tmp_path, monkeypatch, width, height):
    path = F.bomb_png(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 5000

    def no_decoding(self):
        raise AssertionError("the bomb was decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    message = refused(path, "megapixels")
    assert time.perf_counter() - start < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000
    assert "limit is 40 megapixels" in message
    refused(path.read_bytes(), "megapixels")  # same from bytes


def test_bomb_as_array_or_lazy_pil_image_is_refused(monkeypatch):
    refused(np.broadcast_to(np.uint8(0), (6000, 8000)), "8000x6000")  # a view: no memory behind it
    lazy = Image.open(io.BytesIO(png_header(8000, 6000)))  # header read, pixels not
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the bomb was decoded"))
    refused(lazy, "8000x6000")


# --- odd but legitimate images, decoded to "L" or "RGB" ---

def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.zeros((40, 40), np.uint16)
    a[5:35, 10:30] = 40000  # 61% of full scale: what F.gray16_png draws by default
    path = F.gray16_png(tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    im = U.open_image(path)
    assert im.mode == "L" and im.getpixel((20, 20)) == round(40000 / 257) and im.getpixel((0, 0)) == 0
    assert U.open_image(a).getpixel((20, 20)) == round(40000 / 257)  # the same from a uint16 array


def test_cmyk_jpeg(tmp_path):
    path = F.cmyk_jpeg(tmp_path / "print.jpg")  # white paper, a black rectangle (20, 10, 40, 50)
    gray = np.asarray(U.open_image(path).convert("L"))
    assert gray[0, 0] > 240 and gray[30, 30] < 15


def test_transparent_pixels_are_background(tmp_path):
    # transparent red around an opaque dark-grey item at rows 10-49, columns 20-39: what the invisible
    # pixels happen to store must not matter
    path = F.rgba_cutout_png(tmp_path / "cutout.png")
    im = U.open_image(path)
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((30, 30)) == (60, 60, 60)


def test_palette_and_la_images(tmp_path):
    p = Image.new("P", (30, 30), 0)
    p.putpalette([0, 0, 0, 250, 250, 250] + [0] * 762)
    p.paste(1, (10, 5, 20, 25))
    assert U.open_image(encode(p, "PNG")).getpixel((15, 15)) == (250, 250, 250)
    la = Image.new("LA", (30, 30), (0, 0))
    la.paste((50, 255), (10, 5, 20, 25))
    assert U.open_image(encode(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_uses_first_frame(tmp_path):
    path = F.animated_gif(tmp_path / "anim.gif")  # frame 1 bright on the left half, frame 2 on the right
    assert Image.open(path).n_frames == 2
    gray = np.asarray(U.open_image(path).convert("L"))
    assert gray[:, :20].min() > 200 and gray[:, 20:].max() < 50
    later = Image.open(path)
    later.seek(1)  # a caller's image left on another frame is rewound too
    assert np.asarray(U.open_image(later).convert("L"))[:, :20].min() > 200


def test_exif_rotation_is_applied(tmp_path):
    # stored wide (60x30) with a bright band on the stored left edge, and EXIF orientation 6:
    # "rotate 90 degrees clockwise to display"
    path = F.exif_rotated_jpeg(tmp_path / "phone.jpg")
    im = U.open_image(path)
    assert im.size == (30, 60)  # tall, as the camera meant
    gray = np.asarray(im.convert("L"))
    assert gray[:10].mean() > 200 and gray[-10:].mean() < 50  # the left edge is now the top
