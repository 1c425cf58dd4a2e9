"""Safely decode an untrusted upload (path, bytes, PIL image or array) into a loaded "L" or "RGB" PIL image.

Memory is bounded per decode and per process. A file passes the byte and pixel limits before a pixel is
decoded; PIL then holds the decoded image (at most 40 megapixels, 1-4 bytes each), and every step after that
(16-bit to 8-bit, palette or CMYK to RGB, a cut-out onto white, the EXIF turn, the area-averaging down to the
model's working size) runs one tile of about TILE_PIXELS at a time, giving exactly the pixels the whole-image
operations would, so no second full-size copy in a wider type is ever made. At most DECODE_SLOTS decodes run
at once in the process; the others wait up to DECODE_WAIT_S, then get BusyError.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

# A phone's photo of one clothing item is 1-6 MB as JPEG and under 10 MB as PNG; more only costs the server (the
# app's max_file_size refuses a larger upload before it is stored).
MAX_BYTES = 10_000_000
MAX_PIXELS = 40_000_000
WANTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "AVIF")
# Conversions work on tiles of about this many pixels: a float64 tile is 2 MB, and at this size the per-tile
# overhead does not show in the time.
TILE_PIXELS = 1 << 18
# Decodes at once per process. A large decode is CPU-bound and the Space has 2 CPUs, so a third one at the
# same time would not finish sooner, it would only hold its memory (up to ~165 MB for 40 megapixels) meanwhile.
DECODE_SLOTS = 2
# How long a decode waits for a slot before the visitor is told to try again: a 40-megapixel decode takes
# ~1 s, so 30 s is a queue of dozens of them (more than the app's event concurrency lets in at once).
DECODE_WAIT_S = 30.0
BUSY = "The server is busy decoding other uploads; try again in a moment"


class ImageError(ValueError):
    """The upload cannot be used; the message is one sentence meant for the person who uploaded it."""


class BusyError(ImageError):
    """No decode slot came free in time; nothing is wrong with the upload itself."""


_slots = threading.BoundedSemaphore(DECODE_SLOTS)
_held = threading.local()  # how deeply this thread is inside decode_slot()


def _libc_trim():
    # glibc gives each thread that allocates its own arena and keeps what is freed there for that thread's next
    # allocation: 8 threads that each decoded a 40 MP image once would keep 8 x 80 MB, although only
    # DECODE_SLOTS of them ever decoded at the same time. malloc_trim(0) hands the free pages of every arena
    # back; it costs microseconds when there is nothing to hand back. (Elsewhere than glibc: nothing to do.)
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _libc_trim()


def _trim():
    if _malloc_trim is not None:  # called as a slot is given back, when a decode's big buffers are free
        _malloc_trim(0)


@contextmanager
def decode_slot():
    """Hold one of the process's DECODE_SLOTS for the block, waiting up to DECODE_WAIT_S, else BusyError.
    Re-entrant within a thread (core.preprocess holds one from decoding to the working image)."""
    depth = getattr(_held, "depth", 0)
    if depth == 0 and not _slots.acquire(timeout=DECODE_WAIT_S):
        raise BusyError(BUSY)
    _held.depth = depth + 1
    try:
        yield
    finally:
        _held.depth = depth
        if depth == 0:
            _trim()
            _slots.release()


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


def _decode(data: bytes, suffix: str = "", draft_pixels: int | None = None):
    """(the loaded image, the box of it that the picture covers when a JPEG was decoded at reduced scale)"""
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
    box = _draft(im, draft_pixels)
    return _load(im), box


def _draft(im: Image.Image, pixels: int | None) -> tuple | None:
    """Have libjpeg decode a JPEG of at least 4x `pixels` at 1/2, 1/4 or 1/8 scale, keeping at least `pixels`:
    it scales inside the inverse DCT, so a 40 MP photo costs 10 MP of memory and a third of the time. Returns
    the box, in the smaller image's pixels, that the picture covers (its last row and column may be partial),
    or None when nothing changed."""
    if not pixels or im.format != "JPEG" or im.width * im.height < 4 * pixels:
        return None
    factor = math.isqrt(im.width * im.height // pixels)
    try:
        drafted = im.draft(im.mode, (im.width // factor, im.height // factor))
    except Exception:  # a decoder that cannot scale still decodes at full size, within the limits
        return None
    return drafted[1] if drafted else None


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
    if a.dtype == np.uint16:  # 65535 -> 255, the full 16-bit range onto 8 bits, a band of rows at a time
        out = np.empty(a.shape, np.uint8)
        rows = max(1, TILE_PIXELS // max(1, a[0].size))
        for top in range(0, a.shape[0], rows):
            out[top:top + rows] = np.round(a[top:top + rows] / 257.0)
        a = out
    return Image.fromarray(np.ascontiguousarray(a))  # uint8 HxW / x2 / x3 / x4 -> L / LA / RGB / RGBA


def _tiles(width: int, height: int):
    """Boxes (left, top, right, bottom) of about TILE_PIXELS covering a width x height image."""
    cols = min(width, TILE_PIXELS)
    rows = max(1, TILE_PIXELS // cols)
    for top in range(0, height, rows):
        for left in range(0, width, cols):
            yield left, top, min(width, left + cols), min(height, top + rows)


def _finite_range(im: Image.Image) -> tuple[float, float]:
    """Smallest and largest finite value of a 32-bit or float image, tile by tile (PIL's getextrema does not
    take every such mode, and NaN or inf must not decide the scale)."""
    lo, hi = math.inf, -math.inf
    for box in _tiles(*im.size):
        a = np.asarray(im.crop(box))
        a = a[np.isfinite(a)] if im.mode == "F" else a
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _depth_scale(im: Image.Image):
    """How 16-bit, 32-bit and float grayscale values map onto 0-255, decided on the whole image."""
    if im.mode.startswith("I;16"):
        return lambda a: a / 257.0  # the 16-bit range onto the 8-bit one: 65535 -> 255
    lo, hi = _finite_range(im)
    if 255 < hi <= 65535 and lo >= 0:
        return lambda a: a / 257.0
    if im.mode == "F" and lo >= 0 and hi <= 1:
        return lambda a: a * 255.0
    if lo < 0 or hi > 255:  # no nominal range to go by: use the image's own
        return lambda a: (a - lo) * (255.0 / max(hi - lo, 1e-12))
    return lambda a: a  # "I" or "F" already on the 0-255 scale, which is how PIL itself reads mode "I"


def _high_depth_to_l(scale):
    """16-bit, 32-bit and float grayscale -> 8-bit "L". PIL's own convert("L") clips at 255, which turns a
    16-bit photo into a white sheet. NaN becomes black, +-inf the ends of the scale."""
    def convert(piece: Image.Image) -> Image.Image:
        a = scale(np.asarray(piece).astype(np.float64))
        np.nan_to_num(a, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        return Image.fromarray(np.clip(np.round(a, out=a), 0, 255, out=a).astype(np.uint8))
    return convert


def _onto_white(piece: Image.Image) -> Image.Image:
    # Transparent means background. FashionMNIST items were photographed on white, so a cut-out composited
    # onto white is exactly what its pipeline saw; preprocess.to_model_input then inverts it.
    canvas = Image.new("RGBA", piece.size, (255, 255, 255, 255))
    canvas.alpha_composite(piece.convert("RGBA"))
    return canvas.convert("RGB")


def _converter(im: Image.Image):
    """(the mode `im` becomes, a function converting any piece of `im` to it). Every conversion is pixel by
    pixel (the 16-bit scale is decided on the whole image first), so converting piece by piece gives exactly
    the pixels converting the whole image would."""
    if im.mode in ("L", "RGB"):
        return im.mode, lambda piece: piece
    if im.mode.startswith("I") or im.mode == "F":
        return "L", _high_depth_to_l(_depth_scale(im))
    if im.has_transparency_data:
        return "RGB", _onto_white
    mode = "L" if im.mode == "1" else "RGB"  # CMYK, P, YCbCr, LAB, HSV ...
    return mode, lambda piece: piece.convert(mode)


_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}
_SWAPS = {Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90,
          Image.Transpose.ROTATE_270}  # the turns that swap width and height
_UNDO = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> Image.Transpose | None:
    """The turn EXIF asks for (phone photos store "rotate me" instead of rotating the pixels), read as
    ImageOps.exif_transpose reads it."""
    try:
        return _TURNS.get(im.getexif().get(0x0112))
    except Exception:  # malformed EXIF: the unrotated picture is still better than refusing it
        return None


def _shown_size(size: tuple[int, int], turn: Image.Transpose | None) -> tuple[int, int]:
    return (size[1], size[0]) if turn in _SWAPS else size


def _turn_box(box: tuple, size: tuple[int, int], turn: Image.Transpose) -> tuple:
    """Where `box` (left, top, right, bottom) of an image of `size` lies once the image is turned."""
    (l, t, r, b), (w, h) = box, size
    T = Image.Transpose
    return {T.FLIP_LEFT_RIGHT: (w - r, t, w - l, b), T.FLIP_TOP_BOTTOM: (l, h - b, r, h - t),
            T.ROTATE_180: (w - r, h - b, w - l, h - t), T.ROTATE_90: (t, w - r, b, w - l),
            T.ROTATE_270: (h - b, l, h - t, r), T.TRANSPOSE: (t, l, b, r),
            T.TRANSVERSE: (h - b, w - r, h - t, w - l)}[turn]


def _part(im: Image.Image, convert, turn: Image.Transpose | None, box: tuple[int, int, int, int]) -> Image.Image:
    """The part `box` of the picture as shown (`im` turned by `turn`), converted: only that part of `im` is
    cropped, converted and turned, which gives the pixels turning and converting all of it would."""
    if turn is None:
        return convert(im.crop(box))
    stored = _turn_box(box, _shown_size(im.size, turn), _UNDO.get(turn, turn))
    return convert(im.crop(stored)).transpose(turn)


def flatten(im: Image.Image, turn: Image.Transpose | None = None) -> Image.Image:
    """Any mode -> "L" or "RGB", with transparency composited onto white, turned by `turn`. Converted a tile
    at a time: no full-size copy in another mode (float64, RGBA) is made, only the result."""
    if turn is None and im.mode in ("L", "RGB"):
        return im
    try:
        mode, convert = _converter(im)
        width, height = _shown_size(im.size, turn)
        if width * height <= TILE_PIXELS:
            small = convert(im)
            return small.transpose(turn) if turn is not None else small
        out = Image.new(mode, (width, height))
        for box in _tiles(width, height):
            out.paste(_part(im, convert, turn, box), box[:2])
        return out
    except (ValueError, OSError) as e:
        raise ImageError(f"The image's colour mode {im.mode} is not supported ({_reason(e)})") from None


def to_working(im: Image.Image, max_pixels: int | None = None, turn: Image.Transpose | None = None,
               box: tuple | None = None) -> Image.Image:
    """`im` (any mode) -> "L" or "RGB" (flatten's mode) as shown (turned by `turn`); with more than `max_pixels`
    pixels, area-averaged (PIL's BOX filter) to about that many, the aspect ratio kept. The pixels of
    flatten(im, turn).resize(size, BOX), without ever holding that full-size image: PIL resizes in two passes,
    rows then columns, so each band of rows is converted (a tile at a time) and resized across on its own, and
    only the narrow result of the first pass is held whole. `box`: the part of the image that is the picture,
    in fractional pixels of the shown image (what a reduced-scale JPEG decode leaves)."""
    width, height = _shown_size(im.size, turn)
    left, top, right, bottom = box or (0, 0, width, height)
    if not max_pixels or (right - left) * (bottom - top) <= max_pixels:
        return flatten(im, turn)
    scale = (max_pixels / ((right - left) * (bottom - top))) ** 0.5
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    try:
        mode, convert = _converter(im)
        across = Image.new(mode, (size[0], height))  # the first pass: every row, already size[0] wide
        rows = max(1, TILE_PIXELS // width)
        for y in range(0, height, rows):
            band_height = min(height, y + rows) - y
            band = Image.new(mode, (width, band_height))
            cols = max(1, TILE_PIXELS // band_height)
            for x in range(0, width, cols):
                band.paste(_part(im, convert, turn, (x, y, min(width, x + cols), y + band_height)), (x, 0))
            across.paste(band.resize((size[0], band_height), Image.Resampling.BOX, box=(left, 0, right, band_height)),
                         (0, y))
        return across.resize(size, Image.Resampling.BOX, box=(0, top, size[0], bottom))
    except (ValueError, OSError) as e:
        raise ImageError(f"The image's colour mode {im.mode} is not supported ({_reason(e)})") from None


def _prepare(im: Image.Image, box: tuple | None = None):
    _check_pixels(*im.size)
    if im.tell() != 0:  # an animation is judged by its first frame (a fresh file is already there)
        try:
            im.seek(0)
        except Exception as e:
            raise ImageError(f"The first frame of the animation cannot be read ({_reason(e)})") from None
    im = _load(im)
    turn = _orientation(im)
    return im, turn, (_turn_box(box, im.size, turn) if box is not None and turn is not None else box)


def decode(source, draft_pixels: int | None = None):
    """A path, bytes, PIL image or numpy array -> (the loaded image in its own mode, the EXIF turn that shows
    it upright or None, None or the box that is the picture), or ImageError; for flatten or to_gray to finish.
    With `draft_pixels`, a JPEG of at least 4x that many pixels is decoded at 1/2, 1/4 or 1/8 scale by libjpeg,
    keeping at least that many; the box (in the shown image's fractional pixels) then says what is picture.
    Holds a decode slot while it decodes: hold one yourself (decode_slot) until you are done with the image."""
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ImageError("No image was given")
    if not isinstance(source, (Image.Image, np.ndarray, bytes, bytearray, memoryview, str, os.PathLike)):
        raise ImageError(f"Cannot read an image from a {type(source).__name__}; "
                         "pass a file path, bytes, a PIL image or a numpy array")
    with decode_slot():  # a file is read only once a slot is free: a waiting upload holds no memory
        if isinstance(source, Image.Image):
            return _prepare(source)
        if isinstance(source, np.ndarray):
            return _prepare(_from_array(source))
        if isinstance(source, (bytes, bytearray, memoryview)):
            return _prepare(*_decode(bytes(source), draft_pixels=draft_pixels))
        path = Path(source)
        return _prepare(*_decode(_read_path(path), path.suffix.lower(), draft_pixels))


def open_image(source) -> Image.Image:
    """A path, bytes, PIL image or numpy array -> a loaded "L" or "RGB" PIL image, upright, or ImageError
    (BusyError when no decode slot came free in time)."""
    with decode_slot():
        im, turn, _ = decode(source)
        out = flatten(im, turn)
        del im  # freed before the slot is given back, which returns freed memory to the system
        return out
