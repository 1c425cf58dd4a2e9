"""Hostile and odd image files, generated at test time (nothing binary is committed).

Shared by test_upload.py and test_preprocess.py (core.upload and core.preprocess themselves) and
test_uploads.py (the same files through the launched app). Each writer takes the path to write and returns it.
Those that draw something take an optional `ink` array (uint8, light item on black, as in FashionMNIST) so that
the app tests can draw a real garment; by default they draw the simple shapes test_upload and test_preprocess
check pixel by pixel.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_header(width: int, height: int, filled: bool = False) -> bytes:
    """A structurally valid 8-bit grayscale PNG whose IHDR claims width x height: a bomb that costs nothing
    to write, and that no one (the test included) should ever decode.

    By default its IDAT holds only 1 MB of pixels, so even a decoder that tried would stop early (and touch
    little memory). `filled=True` stores every row (all black), which still compresses about 1000:1 (a
    30000x30000 bomb is 870 KB), so that decoding it would really cost width x height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    pixels = _zeros_zlib(height * (width + 1)) if filled else zlib.compress(b"\0" * 2**20, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _zeros_zlib(n: int) -> bytes:
    """zlib.compress(bytes(n), 9) without building n bytes: after a full flush deflate forgets its history,
    so one compressed 1 MiB block of zeros can be repeated. (The filter byte of each PNG row is 0 too.)"""
    block = 1 << 20
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = head.compress(bytes(block)) + head.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = end.compress(bytes(n % block)) + end.flush()
    adler32 = ((n % 65521) << 16) | 1  # of n zero bytes
    return b"\x78\xda" + piece * (n // block) + tail + adler32.to_bytes(4, "big")


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noise_image(mode: str, size=(64, 64), seed=0) -> Image.Image:
    # Noise does not compress, so a cut through the file lands in the middle of the pixel data.
    channels = {"L": 1, "RGB": 3}[mode]
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(a.squeeze())


# --- files that are not (whole) images ---

def text_named_png(path: Path) -> Path:
    path.write_text("this is definitely not a picture\n")
    return path


def zip_named_png(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("shirt.txt", "hello")
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncated_png(path: Path) -> Path:
    data = encode(noise_image("L"), "PNG")
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_jpeg(path: Path) -> Path:
    data = encode(noise_image("RGB"), "JPEG", quality=95)
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def deep_png(path: Path, width: int = 6320, height: int = 6320, channels: int = 1) -> Path:
    """A large 16-bit PNG that costs little to write and to store: black, with a light item (16-bit 40000,
    61% of full scale) in the middle third and a brighter (60000) stripe across it. 1 channel is grayscale
    (PIL opens it as "I;16"), 3 RGB, 4 RGBA (opaque). The default, 6320x6320 = 39.9 megapixels, just under
    core.upload's limit, is ~100 KB on disk and 80 MB as 16-bit pixels. Written row by row: the writer never
    holds the picture."""
    kind = {1: 0, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 16, kind, 0, 0, 0)

    def row(value: int, stripe: int) -> bytes:
        a = np.zeros((width, channels), ">u2")
        a[width // 3: 2 * width // 3] = value
        a[width // 3: 2 * width // 3: 8] = stripe  # a small pattern, so that the item is not one flat block
        if channels == 4:
            a[:, 3] = 65535
        return b"\0" + a.tobytes()  # filter byte 0, then big-endian samples
    background, item = row(0, 0), row(40000, 60000)
    z = zlib.compressobj(9)
    pixels = b"".join(z.compress(item if height // 3 <= y < 2 * height // 3 else background) for y in range(height))
    pixels += z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b""))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 30000, height: int = 30000, filled: bool = False) -> Path:
    path.write_bytes(png_header(width, height, filled))
    return path


def sparse_file(path: Path, size: int) -> Path:
    """`size` bytes of zeros that take no disk space (and must not be read)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# --- odd but legitimate images ---

def one_pixel_png(path: Path) -> Path:
    Image.new("L", (1, 1), 200).save(path)
    return path


def strip_png(path: Path) -> Path:
    """4000x10: a thin bright bar on black."""
    a = np.zeros((10, 4000), np.uint8)
    a[3:7, 100:3900] = 220
    Image.fromarray(a).save(path)
    return path


def gray16_png(path: Path, ink: np.ndarray | None = None) -> Path:
    """16-bit grayscale; by default a 40x40 black square with a 61%-grey 20x30 block."""
    if ink is None:
        a = np.zeros((40, 40), np.uint16)
        a[5:35, 10:30] = 40000
    else:
        a = ink.astype(np.uint16) * 257  # the same picture on the 16-bit scale
    Image.fromarray(a).save(path)
    return path


def cmyk_jpeg(path: Path, ink: np.ndarray | None = None) -> Path:
    """A CMYK JPEG: black ink (K) on white paper; by default a 20x40 rectangle in a 60x60 page."""
    if ink is None:
        im = Image.new("CMYK", (60, 60), (0, 0, 0, 0))  # white paper
        im.paste((0, 0, 0, 255), (20, 10, 40, 50))  # a black rectangle, taller than wide
    else:
        blank = Image.new("L", (ink.shape[1], ink.shape[0]), 0)
        im = Image.merge("CMYK", (blank, blank, blank, Image.fromarray(ink)))
    im.save(path, quality=95)
    return path


def rgba_cutout_png(path: Path, ink: np.ndarray | None = None) -> Path:
    """A cut-out: the item opaque, everything else fully transparent, with a loud colour stored in the
    invisible pixels (which must not matter). By default an opaque dark-grey 20x40 item in 60x60; with
    `ink`, a black item whose opacity is the ink (so that, on white, it is the negated ink)."""
    if ink is None:
        a = np.zeros((60, 60, 4), np.uint8)
        a[..., :3] = (200, 0, 0)
        a[10:50, 20:40] = (60, 60, 60, 255)
    else:
        a = np.zeros((*ink.shape, 4), np.uint8)
        a[..., :3] = np.where(ink[..., None] > 0, 0, np.array([200, 0, 0], np.uint8))
        a[..., 3] = ink
    Image.fromarray(a).save(path)
    return path


def animated_gif(path: Path, frames: list[np.ndarray] | None = None) -> Path:
    """A grayscale animation; by default 40x40, the first frame bright on the left, the second on the right."""
    if frames is None:
        first, second = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
        first[:, :20], second[:, 20:] = 255, 255
        frames = [first, second]
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100)
    return path


def exif_rotated_jpeg(path: Path, upright: np.ndarray | None = None) -> Path:
    """What a phone writes: the pixels stored turned 90 degrees anticlockwise and the EXIF orientation 6
    ("rotate 90 degrees clockwise to display"). By default the upright picture is 30 wide x 60 tall with a
    bright band along its top, so the stored one is 60x30 with the band on its left edge."""
    if upright is None:
        upright = np.zeros((60, 30), np.uint8)
        upright[:10] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(path, exif=exif, quality=95)
    return path
