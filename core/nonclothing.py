"""Pictures that are not clothing, drawn from a seed: the negative set the out-of-distribution detector is measured on.

Each kind is something a visitor might upload instead of a garment (noise, gradients, text, digits, patterns,
shapes, a landscape), drawn as an RGB picture of a few hundred pixels and then passed through
core.preprocess.preprocess exactly like an upload. Everything depends only on the seed, so core.ood's report
and the tests see the same pictures.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .preprocess import preprocess

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
WORDS = ("hello", "SALE", "summer", "Vanishing", "gradient", "photo", "2024", "invoice", "menu", "Total: 42.00",
         "lorem ipsum", "dolor sit amet", "OPEN", "receipt", "thank you", "chapter 3", "x = y + 1", "Monday")
KINDS = ("uniform_noise", "gaussian_noise", "salt_and_pepper", "linear_gradient", "radial_gradient", "text",
         "digits", "scene", "checkerboard", "stripes", "shapes")


def _size(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(200, 501)), int(rng.integers(200, 501))  # (width, height), like a small photo


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _image(a: np.ndarray) -> Image.Image:
    a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)


def _grey_or_colour(rng: np.random.Generator, draw) -> np.ndarray:
    """`draw(shape)` once for a grey picture or per channel for a colour one."""
    w, h = _size(rng)
    return draw((h, w)) if rng.random() < 0.5 else draw((h, w, 3))


def _ramp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """t in [0, 1] (H x W) -> a blend between two random colours."""
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    return a + (b - a) * t[:, :, None]


def _font(rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont:
    name = rng.choice(("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf"))
    return ImageFont.truetype(str(FONTS / name), size)


def _contrasting(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A (background, ink) pair far apart in brightness, either way round."""
    light, dark = _colour(rng, 190, 256), _colour(rng, 0, 80)
    return (light, dark) if rng.random() < 0.7 else (dark, light)


def _text(rng: np.random.Generator) -> Image.Image:
    background, ink = _contrasting(rng)
    image = Image.new("RGB", _size(rng), background)
    draw = ImageDraw.Draw(image)
    y = int(rng.integers(0, 30))
    for _ in range(int(rng.integers(1, 6))):
        size = int(rng.integers(18, 60))
        words = " ".join(rng.choice(WORDS) for _ in range(int(rng.integers(1, 4))))
        draw.text((int(rng.integers(0, 40)), y), words, fill=ink, font=_font(rng, size))
        y += int(size * rng.uniform(1.1, 1.6))
    return image


def _digits(rng: np.random.Generator) -> Image.Image:
    background, ink = _contrasting(rng)
    image = Image.new("RGB", _size(rng), background)
    number = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(1, 4))))
    font = _font(rng, int(rng.integers(80, 200)))
    ImageDraw.Draw(image).text((image.width / 2, image.height / 2), number, fill=ink, font=font, anchor="mm")
    return image


def _scene(rng: np.random.Generator) -> Image.Image:
    """A drawn landscape: sky gradient, ground, sun, maybe mountains, trees, houses and clouds."""
    w, h = _size(rng)
    horizon = int(h * rng.uniform(0.45, 0.8))
    sky_top, sky_low = np.array(_colour(rng, 0, 140)) * [0.4, 0.6, 1.0], np.array(_colour(rng, 150, 256))
    t = np.linspace(0, 1, h)[:, None, None]
    sky = np.broadcast_to(sky_top + (sky_low - sky_top) * t, (h, w, 3))
    image = _image(sky)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:  # mountains
        xs = np.sort(rng.integers(0, w, int(rng.integers(3, 7))))
        peaks = [(0, horizon)] + [(int(x), int(horizon - rng.uniform(0.1, 0.4) * h)) for x in xs] + [(w, horizon)]
        draw.polygon(peaks, fill=_colour(rng, 60, 160))
    draw.rectangle((0, horizon, w, h), fill=(int(rng.integers(20, 120)), int(rng.integers(80, 180)),
                                             int(rng.integers(0, 90))))
    r = int(rng.integers(12, 45))
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, max(r + 1, horizon - r)))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, int(rng.integers(180, 256)), int(rng.integers(0, 120))))
    for _ in range(int(rng.integers(0, 4))):  # clouds
        x, y, cw = int(rng.integers(0, w)), int(rng.integers(0, max(1, horizon // 2))), int(rng.integers(30, 90))
        draw.ellipse((x, y, x + cw, y + cw // 2), fill=_colour(rng, 220, 256))
    for _ in range(int(rng.integers(0, 5))):  # trees
        x, size = int(rng.integers(0, w)), int(rng.integers(15, 50))
        base = int(rng.integers(horizon, h))
        draw.rectangle((x - size // 6, base - size, x + size // 6, base), fill=(90, 60, 30))
        draw.ellipse((x - size // 2, base - 2 * size, x + size // 2, base - size // 2),
                     fill=(int(rng.integers(0, 60)), int(rng.integers(90, 170)), int(rng.integers(0, 60))))
    for _ in range(int(rng.integers(0, 3))):  # houses: walls, roof, window
        x, size = int(rng.integers(0, w)), int(rng.integers(30, 90))
        base = int(rng.integers(horizon, h))
        draw.rectangle((x, base - size, x + size, base), fill=_colour(rng, 120, 256))
        draw.polygon([(x - 5, base - size), (x + size // 2, base - int(size * 1.6)), (x + size + 5, base - size)],
                     fill=_colour(rng, 80, 200))
        draw.rectangle((x + size // 4, base - 3 * size // 4, x + size // 2, base - size // 2), fill=(40, 60, 90))
    return image


def _checkerboard(rng: np.random.Generator) -> Image.Image:
    w, h = _size(rng)
    cell = int(rng.integers(5, 61))
    y, x = np.mgrid[0:h, 0:w]
    return _image(_ramp(rng, (((y // cell) + (x // cell)) % 2).astype(np.float32)))


def _stripes(rng: np.random.Generator) -> Image.Image:
    w, h = _size(rng)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 80)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    t = (wave > 0).astype(np.float32) if rng.random() < 0.5 else (wave + 1) / 2  # hard or soft
    return _image(_ramp(rng, t))


def _shapes(rng: np.random.Generator) -> Image.Image:
    background = _colour(rng)
    image = Image.new("RGB", _size(rng), background)
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for _ in range(int(rng.integers(1, 5))):
        s = int(rng.integers(30, min(w, h) // 2 + 1))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        fill = _colour(rng)
        shape = rng.choice(("circle", "square", "triangle", "ellipse", "star"))
        if shape == "circle":
            draw.ellipse((x, y, x + s, y + s), fill=fill)
        elif shape == "square":
            draw.rectangle((x, y, x + s, y + s), fill=fill)
        elif shape == "ellipse":
            draw.ellipse((x, y, x + s, y + s // 2), fill=fill)
        elif shape == "triangle":
            draw.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s)], fill=fill)
        else:
            angles = np.pi / 2 + np.arange(10) * np.pi / 5
            radii = np.where(np.arange(10) % 2 == 0, s / 2, s / 5)
            draw.polygon([(x + s / 2 + r * np.cos(a), y + s / 2 - r * np.sin(a)) for a, r in zip(angles, radii)],
                         fill=fill)
    return image


def picture(kind: str, rng: np.random.Generator) -> Image.Image:
    """One RGB picture of the given KINDS kind, drawn with `rng`."""
    if kind == "uniform_noise":
        return _image(_grey_or_colour(rng, lambda shape: rng.uniform(0, 256, shape)))
    if kind == "gaussian_noise":
        mean, std = rng.uniform(60, 200), rng.uniform(10, 60)
        return _image(_grey_or_colour(rng, lambda shape: rng.normal(mean, std, shape)))
    if kind == "salt_and_pepper":
        base, share = rng.uniform(0, 256), rng.uniform(0.02, 0.3)
        a = _grey_or_colour(rng, lambda shape: np.full(shape, base))
        hit = rng.random(a.shape[:2]) < share
        values = np.where(rng.random(int(hit.sum())) < 0.5, 0.0, 255.0)  # salt or pepper, even odds
        a[hit] = values if a.ndim == 2 else values[:, None]
        return _image(a)
    if kind == "linear_gradient":
        w, h = _size(rng)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(angle) + y * np.sin(angle)
        return _image(_ramp(rng, (t - t.min()) / max(float(np.ptp(t)), 1e-6)))
    if kind == "radial_gradient":
        w, h = _size(rng)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot(x - rng.uniform(0, w), y - rng.uniform(0, h))
        return _image(_ramp(rng, np.clip(r / rng.uniform(0.3, 1.2) / max(w, h), 0, 1)))
    draw = {"text": _text, "digits": _digits, "scene": _scene, "checkerboard": _checkerboard,
            "stripes": _stripes, "shapes": _shapes}.get(kind)
    if draw is None:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return draw(rng)


def pictures(per_kind: int, seed: int) -> list[tuple[str, Image.Image]]:
    """`per_kind` pictures of every kind, (kind, picture), the same for the same seed. Each kind has its own
    generator (from the seed and the kind's index), so a kind's pictures do not depend on the others'."""
    out = []
    for k, kind in enumerate(KINDS):
        rng = np.random.default_rng([seed, k])
        out += [(kind, picture(kind, rng)) for _ in range(per_kind)]
    return out


def model_inputs(per_kind: int, seed: int) -> tuple[list[str], torch.Tensor]:
    """pictures() through core.preprocess.preprocess, as uploads: (the kind of each, x [N, 784])."""
    drawn = pictures(per_kind, seed)
    return [kind for kind, _ in drawn], torch.cat([preprocess(p)[0] for _, p in drawn])
