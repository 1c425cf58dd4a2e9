"""How well a model does: loss and accuracy on a split, accuracy on the committed sample, photo robustness."""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import Split, load_sample, to_images
from .models import DeepMLP
from .preprocess import preprocess

__all__ = ["CONSTANT_SPREAD", "EVAL_BATCH", "KINDS", "accuracy", "evaluate", "output_spread", "photo_check",
           "photo_like", "photo_robustness", "sample_accuracy"]

EVAL_BATCH = 4096  # images per forward pass when evaluating

# A model whose output_spread on the committed sample is below this gives every image the same answer: its
# probabilities move by less than a tenth of a percentage point from one image to the next, too little to
# show in the app, so naming its top class would be a prediction in name only. Measured on the committed
# checkpoints: the constant ones are at most 3.1e-6 (baseline_5), the least spread of those that learned is
# 1.2e-2 (baseline_3), so 1e-3 sits 300x above the one and 10x below the other.
CONSTANT_SPREAD = 1e-3


@torch.no_grad()
def evaluate(model: DeepMLP, split: Split, depth: int | None = None, batch_size: int = EVAL_BATCH,
             start: int = 0) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on a split, through its first `depth` hidden
    layers (all by default); with `start`, split.x holds hidden layer `start`'s outputs (DeepMLP.forward).
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    try:
        for i in range(0, len(split), batch_size):
            logits = model(split.x[i:i + batch_size], depth, start)
            y = split.y[i:i + batch_size]
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    finally:
        model.train(was_training)
    return loss_sum / len(split), correct / len(split)


def accuracy(model: DeepMLP, split: Split) -> float:
    return evaluate(model, split)[1]


def sample_accuracy(model: DeepMLP) -> float:
    """Accuracy on the committed sample (assets/fashion_mnist_sample.npz): a fingerprint of the weights
    that any machine can check without the full dataset."""
    return accuracy(model, load_sample())


@torch.no_grad()
def output_spread(model: DeepMLP, x: torch.Tensor) -> float:
    """How much the model's answer depends on the image: the largest, over the classes, of the standard
    deviation of its softmax probability across the images x [N, 784] (N >= 2), in eval mode (the model's
    mode is restored). 0 for a model that outputs the same for every image."""
    was_training = model.training
    model.eval()
    try:
        return float(model(x).softmax(dim=1).std(dim=0).max())
    finally:
        model.train(was_training)


def photo_check(model: DeepMLP, per_kind: int = 30, seed: int = 0) -> dict:
    """photo_robustness on the committed sample (real test images, never trained on)."""
    sample = load_sample()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return photo_robustness(lambda x: model(x).argmax(1), to_images(sample.x), np.asarray(sample.y),
                                    per_kind, seed)
    finally:
        model.train(was_training)


# --- photo-like versions of real test images, to measure how well the pipeline undoes "being a photo" ---

# "light_on_light" is last: adding it left the images that every earlier kind draws from the one shared
# generator as they were, so their figures stay comparable.
KINDS = ("enlarged", "light_background", "tinted", "shifted", "noisy", "jpeg", "combined", "light_on_light")


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


def _texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A zero-mean background texture of a few grey levels: fine stripes, paper grain or a fabric weave."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    amplitude = rng.uniform(4, 12)
    style = rng.choice(("stripes", "paper", "fabric"))
    if style == "paper":
        size = rng.uniform(1.5, 4.0)  # grain size in pixels: white noise drawn coarser, smoothly enlarged
        grain = rng.normal(0, 1, (max(1, round(h / size)), max(1, round(w / size)))).astype(np.float32)
        g = np.asarray(Image.fromarray(grain).resize((w, h), Image.Resampling.BICUBIC))
        return amplitude * (g - g.mean()) / max(float(g.std()), 1e-6)
    angle, period = rng.uniform(0, np.pi), rng.uniform(2.5, 7.0)
    wave = lambda a: np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / period + rng.uniform(0, 2 * np.pi))
    if style == "stripes":
        return amplitude * wave(angle)
    return amplitude / 2 * (wave(angle) + wave(angle + np.pi / 2))  # two threads crossing at right angles


def _light_on_light(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light item (white-ish) on a light, slightly tinted, textured background: the item is lighter than
    the background, by 20-80 grey levels, and covers the texture (a photo of a white sneaker on a table cloth)."""
    background = rng.integers(175, 211) + rng.integers(-10, 11, 3)  # a light grey, slightly tinted
    item = rng.integers(240, 256, 3)
    covered = np.clip(t * 20, 0, 1)[:, :, None]  # ink above ~5% is the item, which hides the background
    return _colourize(t, background, item) + _texture(t.shape, rng)[:, :, None] * (1 - covered)


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
    rgb = _light_on_light(t, rng) if kind == "light_on_light" else _colourize(t, background, item)
    if kind in ("noisy", "combined"):
        rgb = rgb + rng.normal(0, rng.uniform(8, 20), rgb.shape)
    elif kind == "light_on_light":
        rgb = rgb + rng.normal(0, rng.uniform(2, 5), rgb.shape)  # sensor noise of a well-lit photo
    photo = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
    if kind in ("jpeg", "combined"):
        photo = _jpeg(photo, int(rng.integers(30, 61)))
    elif kind == "light_on_light" and rng.random() < 0.5:  # half of them as a phone's JPEG, at milder settings
        photo = _jpeg(photo, int(rng.integers(60, 91)))
    return photo


def _jpeg(photo: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


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
