"""Safely decode an untrusted upload (path, bytes, PIL image or array) into a loaded "L" or "RGB" PIL image."""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MAX_BYTES = 20_000_000
MAX_PIXELS = 40_000_000
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


def flatten(im: Image.Image) -> Image.Image:
    """Any mode -> "L" or "RGB", with transparency composited onto white."""
    if im.mode in ("L", "RGB"):
        return im
    if im.mode.startswith("I") or im.mode == "F":
        return _high_depth_to_l(im)
    try:
        if im.has_transparency_data:
            # Transparent means background. FashionMNIST items were photographed on white, so a cut-out
            # composited onto white is exactly what its pipeline saw; preprocess.to_model_input then inverts it.
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
    return flatten(im)


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
