"""The Classify tab's examples (assets/examples/): which images, and how their files are made.

The rule, stated so that a test can check it: per class, the committed sample's real test image (core.data's
first 100 test images of each class, never trained on) that core.ood's detector finds most typical, i.e. the
lowest detector score on the image uploaded as it is (what the app would score). It looks at the images and the
detector only, never at any trained model's answer: the examples are not chosen to make a method look good.
Ties (equal scores) go to the earlier sample image. Each is written 4x enlarged (nearest neighbour, so the
28x28 pixels come back exactly) as <class>_<name>.png; PHOTOS adds photo-like versions (core.evaluate.photo_like)
of four of them, each from a seed of its own, as photo_<class>_<name>_<kind>.jpg.

    python -m core make-examples        # rewrite assets/examples/ from the committed sample and detector
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from . import ood
from .data import CLASSES, Split, load_sample, to_images
from .evaluate import photo_like

FOLDER = Path(__file__).resolve().parent.parent / "assets" / "examples"
SCALE = 4  # 28x28 -> 112x112
PHOTOS = ((0, "tinted"), (3, "shifted"), (7, "light_background"), (8, "combined"))  # (class, photo_like kind)
JPEG_QUALITY = 90


def slug(c: int) -> str:
    """'T-shirt/top' -> 't-shirt_top', 'Ankle boot' -> 'ankle_boot'."""
    return re.sub(r"[^a-z0-9-]+", "_", CLASSES[c].lower())


def named(name: str) -> tuple[int, str | None]:
    """An example's file name -> (its class, its photo_like kind or None for the test image itself)."""
    m = re.fullmatch(r"(photo_)?(\d)_[a-z0-9_-]+?(?:_(" + "|".join(k for _, k in PHOTOS) + r"))?\.(png|jpg)", name)
    if m is None:
        raise ValueError(f"{name!r} is not an example's name")
    return int(m.group(2)), m.group(3)


def typical(sample: Split, detector: ood.Detector) -> list[int]:
    """Per class (in CLASSES order), the index in `sample` of its image with the lowest detector score."""
    scores = detector.score(ood.as_uploads(to_images(sample.x))).numpy()
    labels = sample.y.numpy()
    # np.argmin returns the first of equal minima: the earlier sample image
    return [int(np.flatnonzero(labels == c)[np.argmin(scores[labels == c])]) for c in range(len(CLASSES))]


def files(sample: Split, detector: ood.Detector) -> dict[str, Image.Image]:
    """File name -> image, for every example the rule picks."""
    images = to_images(sample.x)
    picked = typical(sample, detector)
    out = {}
    for c, i in enumerate(picked):
        out[f"{c}_{slug(c)}.png"] = Image.fromarray(np.kron(images[i], np.ones((SCALE, SCALE), np.uint8)))
    for c, kind in PHOTOS:
        out[f"photo_{c}_{slug(c)}_{kind}.jpg"] = photo_like(images[picked[c]], np.random.default_rng(c), kind)
    return out


def write(folder: Path = FOLDER, sample: Split | None = None, detector: ood.Detector | None = None) -> list[Path]:
    """Replace the examples in `folder` with files(): old example files that the rule no longer names are
    removed, so that the folder holds exactly the rule's examples."""
    made = files(sample if sample is not None else load_sample(), detector or ood.committed())
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.suffix in (".png", ".jpg") and old.name not in made:
            old.unlink()
    written = []
    for name, image in made.items():
        path = folder / name
        if name.endswith(".png"):
            image.save(path, format="PNG", optimize=True)
        else:
            image.save(path, format="JPEG", quality=JPEG_QUALITY)
        written.append(path)
    return written
