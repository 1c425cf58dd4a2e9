"""An upload through two trained methods, the one path of the Classify tab, /classify and /explain: the image
read once as the models see it, each method's top classes, and both input-gradient maps on one shared
logarithmic colour scale with their colour bar, numbers and words (core.explain says what a map means)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import get_data_path
from PIL import Image, ImageDraw, ImageFont

from core import ood
from core.data import CLASSES
from core.evaluate import CONSTANT_SPREAD, output_spread
from core.explain import gradient_map, render_colorbar, render_map, scale_ticks, shared_scale
from core.preprocess import preprocess
from core.upload import ImageError

from . import pages
from .lab import Entry, Lab

COLORBAR_CAPTION = "|∂ logit / ∂ pixel|, log scale"


NO_PREDICTION = "No prediction"  # the headline of a model that answers the same for every image


@dataclass(frozen=True)
class Reading:
    """An upload as two methods read it: their entries and the image, decoded and preprocessed once, and
    whether it looks like a FashionMNIST item at all (core.ood's detector; None if it could not be loaded)."""
    entries: tuple[Entry, Entry]
    x: torch.Tensor  # [1, 784], what the models are given
    preview: np.ndarray  # 28x28 uint8, what they see
    unlike_clothing: bool | None = None
    constant: tuple[bool, bool] = (False, False)  # per side: the model answers the same whatever the image


@dataclass(frozen=True)
class Explanation:
    """Both methods' input-gradient maps for one image, on one shared logarithmic colour scale. A method whose
    checkpoint is unavailable has no map, and says why."""
    images: tuple[np.ndarray | None, np.ndarray | None]  # RGB uint8 [224, 224, 3], 28x28 square pixels
    colorbar: np.ndarray | None  # RGB uint8: the shared scale with its tick labels; None when neither has a map
    numbers: tuple[dict, dict]  # per side, JSON-ready: prediction, the two mean |gradient|s, the shared scale
    cards: tuple[str, str]  # markdown under each map: the same numbers in words, or why there is no map
    note: str  # markdown under both: what the maps mean for these methods (eval mode, normalisation)


def read(lab: Lab, image, left: str, right: str) -> Reading:
    """An upload (a path, bytes, an array or a PIL image) as the models see it. Both method names are checked
    first, so an unknown one fails before any decoding (ValueError); anything that is not a usable picture is
    an ImageError, a message for the visitor."""
    entries = lab.entry(left, "Left method"), lab.entry(right, "Right method")
    if image is None:
        raise ImageError("Upload, paste or pick an image first")
    x, preview = preprocess(image)
    try:
        unlike = bool(ood.committed().flags(x)[0])
    except ood.DetectorError:  # a missing or damaged detector: the page says nothing rather than guess
        unlike = None
    return Reading(entries, x, preview, unlike, tuple(constant(lab, e) for e in entries))


def notice(reading: Reading) -> str:
    """What the page says above the answers (pages.classify_notice): not clothing, and no prediction."""
    try:
        rates = ood.committed().record["rates"]
    except ood.DetectorError:
        rates = None
    return pages.classify_notice(reading.unlike_clothing if rates else None,
                                 tuple(e.method.title for e in reading.entries), reading.constant, rates or {})


def constant(lab: Lab, entry: Entry) -> bool:
    """Whether the method's answer does not depend on the image: core.evaluate.output_spread over the committed
    sample's 1,000 real test images below CONSTANT_SPREAD (baseline 5e-8, baseline_5 3e-6, grad_norm 0)."""
    if entry.model is None:
        return False
    return lab.once(("constant", entry.method.name),
                    lambda: output_spread(entry.model, lab.sample.x) < CONSTANT_SPREAD)


@torch.no_grad()
def top_classes(reading: Reading, top: int = 5) -> tuple[dict, dict]:
    """Each method's `top` most likely classes with their probabilities; {} for an unavailable method. A model
    that answers the same for every image gets {"headline": NO_PREDICTION, "confidences": ...} (widgets.Answer
    shows the words instead of a class: its top class says nothing about the image)."""
    def probabilities(e: Entry, same: bool) -> dict:
        if e.model is None:
            return {}
        best = torch.topk(torch.softmax(e.model(reading.x), dim=1)[0], top)
        p = {CLASSES[i]: round(float(v), 6) for v, i in zip(best.values, best.indices, strict=True)}
        return {"headline": NO_PREDICTION, "confidences": p} if same else p
    return tuple(probabilities(e, same) for e, same in zip(reading.entries, reading.constant, strict=True))


def explain(reading: Reading) -> Explanation:
    """Both methods' input-gradient maps, rendered on one shared scale; an unavailable method's side stays
    empty and the scale is the other side's alone. ~10 ms on one thread."""
    entries = reading.entries
    found = [None if e.model is None else gradient_map(e.model, reading.x) for e in entries]
    maps = [f[1] for f in found if f is not None]
    scale = shared_scale(*maps) if maps else None
    numbers = tuple(_numbers(e, f, scale) for e, f in zip(entries, found, strict=True))
    return Explanation(
        images=tuple(None if f is None else render_map(f[1], scale) for f in found),
        colorbar=None if scale is None else labelled_colorbar(scale),
        numbers=numbers,
        cards=tuple(pages.gradient_card(e, n) for e, n in zip(entries, numbers, strict=True)),
        note=pages.gradient_note([e.method for e, f in zip(entries, found, strict=True) if f is not None]))


def _numbers(entry: Entry, found: tuple | None, scale: tuple[float, float] | None) -> dict:
    """One side of an explanation as data: what /explain returns for it."""
    out = {"method": entry.method.name, "title": entry.method.title, "available": found is not None,
           "predicted": None, "input_grad_mean_abs": None, "hidden1_grad_mean_abs": None,
           "scale": None if scale is None else list(scale), "error": entry.error}
    if found is not None:
        predicted, _, input_grad, hidden1 = found
        out.update(predicted=CLASSES[predicted], input_grad_mean_abs=input_grad, hidden1_grad_mean_abs=hidden1)
    return out


def enlarged(preview: np.ndarray, scale: int = 8) -> np.ndarray:
    """The 28x28 model input blown up with square pixels, so a person can see what the model sees."""
    return np.repeat(np.repeat(preview, scale, axis=0), scale, axis=1)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def labelled_colorbar(scale: tuple[float, float], length: int = 400, zoom: int = 2) -> np.ndarray:
    """core.explain's colour bar as one RGB uint8 image that explains itself: a caption with which end is
    which, the bar (`length` px), its ticks and their values ("10⁻⁸"). Drawn `zoom` times larger, so the text
    stays sharp on high-density screens; compact (about 8:1) so that it is still legible when a phone shrinks
    it to its width. (The one image of the app drawn with PIL rather than ui.figures' matplotlib: text on a
    bar of exact colours, in a millisecond.)"""
    z = zoom
    margin, caption, bar_top, thickness, tick = 30 * z, 17 * z, 24 * z, 16 * z, 5 * z
    bar = render_colorbar(scale, length * z, thickness=thickness)
    img = Image.new("RGB", (bar.shape[1] + 2 * margin, bar_top + thickness + tick + 24 * z), "white")
    img.paste(Image.fromarray(bar), (margin, bar_top))
    draw = ImageDraw.Draw(img)
    small, font = _font(14 * z), _font(16 * z)
    draw.text((margin, caption), "← weaker", fill="#444", font=small, anchor="ls")
    draw.text((img.width // 2, caption), COLORBAR_CAPTION, fill="black", font=small, anchor="ms")
    draw.text((img.width - margin, caption), "stronger →", fill="#444", font=small, anchor="rs")
    top = bar_top + thickness
    for position, label in scale_ticks(scale):
        x = margin + round(position * (bar.shape[1] - 1))
        draw.line([(x, top), (x, top + tick)], fill="black", width=z)
        # "1e-8" -> "10⁻⁸"; a scale with no power of ten inside is labelled at its ends ("2.0e-03")
        text = "10" + label[2:].translate(pages.SUPERSCRIPT) if label.startswith("1e") else \
            pages.power_of_ten(float(label))
        draw.text((x, top + tick + z), text, fill="black", font=font, anchor="ma")
    return np.asarray(img)
