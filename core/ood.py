"""Tell whether an upload's model input looks like a FashionMNIST item at all: the "this is not clothing" detector.

The score is computed on the 28x28 input core.preprocess makes of the upload (what the models see), by one
small network of its own, the same whichever trained method is shown. It is a one-hidden-layer network
(784 -> 128 ReLU -> 1) trained to tell the 54,000 training images, plus photo-like versions of some of them
(core.evaluate.photo_like), from generated pictures that are not clothing (core.nonclothing, a seed of their
own). A blank input (nothing stood out from the background) is never a FashionMNIST item, whose brightest
pixel is always 254-255, and is flagged whatever the network says. The threshold is the network's score at the
99th percentile of the 6,000 validation images, uploaded as they are: about 1% of real items are flagged by
construction, and the figures on the test set, on photo-like test images and on non-clothing pictures of
another seed are measured once, after fitting, and stored beside the weights.

Pixel-space density scores (Mahalanobis distance in a PCA subspace plus the reconstruction residual, kNN
distance to the training images) were tried first and flag far fewer non-clothing pictures at the same 1% of
real items: the preprocessing turns a noise picture, a gradient or a landscape into a dark, simple blob, and
simple blobs are close to the mean of FashionMNIST (README, "Not clothing").

Files: assets/ood/detector.safetensors (the weights) and detector.json (threshold, how it was fitted, the
measured rates, the weights' SHA-256), read as untrusted input like a checkpoint: never pickle, never torch.load.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_save

from . import nonclothing
from .checkpoint import CheckpointError, read_bytes, read_weights, write_json
from .data import FashionMNIST, load_sample, to_images
from .evaluate import KINDS, photo_like
from .preprocess import preprocess

FOLDER = Path(__file__).resolve().parent.parent / "assets" / "ood"
WEIGHTS, RECORD = "detector.safetensors", "detector.json"
COMMAND = "python -m core ood"
FORMAT = 1
HIDDEN = 128
QUANTILE = 0.99  # of the validation scores: the threshold
TRAIN_SEED = 1000  # the negatives the network learns from
TUNING_SEED = 1  # the negatives the design (hidden size, epochs, how many pictures) was chosen on
REPORT_SEED = 2  # the negatives the recorded figures are measured on, once, after fitting
NEGATIVES_PER_KIND = 200
PHOTO_POSITIVES = 1600  # photo-like versions of training images, labelled clothing
EPOCHS = 15
REPORT_PER_KIND = 50  # non-clothing pictures of each kind in the report
REPORT_PHOTOS_PER_KIND = 100  # photo-like test images of each KINDS kind in the report
MAX_BYTES = 2**20


class DetectorError(RuntimeError):
    """The detector's files are missing, damaged or inconsistent; the message names the file."""


def _shapes(hidden: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {"hidden.weight": ((hidden, 784), torch.float32), "hidden.bias": ((hidden,), torch.float32),
            "out.weight": ((1, hidden), torch.float32), "out.bias": ((1,), torch.float32)}


@dataclass(frozen=True)
class Detector:
    weights: dict[str, torch.Tensor]
    threshold: float
    record: dict  # detector.json: how it was fitted and what was measured

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """float [N, 784] model inputs in [0, 1] -> [N] scores, higher = less like clothing; +inf for a blank
        input."""
        w = self.weights
        h = F.relu(x.float() @ w["hidden.weight"].T + w["hidden.bias"])
        s = (h @ w["out.weight"].T + w["out.bias"])[:, 0]
        return torch.where(x.amax(dim=1) > 0, s, torch.full_like(s, math.inf))

    def flags(self, x: torch.Tensor) -> torch.Tensor:
        """[N] bool: True where the input does not look like a FashionMNIST item."""
        return self.score(x) > self.threshold


# ----------------------------------------------------------------------------------------------- fitting

def as_uploads(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] images, each through core.preprocess.preprocess as an upload -> x [N, 784]."""
    return torch.cat([preprocess(a)[0] for a in images]) if len(images) else torch.zeros(0, 784)


def photo_inputs(images: np.ndarray, rng: np.random.Generator, per_kind: int) -> tuple[list[str], torch.Tensor]:
    """`per_kind` photo-like versions (core.evaluate.photo_like) of randomly chosen `images` for every KINDS
    kind, through preprocess: (the kind of each, x [N, 784])."""
    kinds, xs = [], []
    for kind in KINDS:
        for i in rng.choice(len(images), per_kind, replace=per_kind > len(images)):
            kinds.append(kind)
            xs.append(preprocess(photo_like(images[i], rng, kind))[0])
    return kinds, torch.cat(xs)


def _train(positives: torch.Tensor, negatives: torch.Tensor, hidden: int, epochs: int, seed: int) -> dict:
    """The network's weights, from binary cross-entropy with both classes weighted equally."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    x = torch.cat([positives, negatives])
    y = torch.cat([torch.zeros(len(positives)), torch.ones(len(negatives))])
    # Few negatives against 55k positives: each weighs as much as all positives together, or the network
    # would learn that "clothing" is always a good guess.
    weight = torch.where(y == 1, len(positives) / len(negatives), 1.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 256):
            batch = order[i:i + 256]
            loss = F.binary_cross_entropy_with_logits(net(x[batch])[:, 0], y[batch], weight=weight[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {"hidden.weight": net[0].weight, "hidden.bias": net[0].bias, "out.weight": net[2].weight,
            "out.bias": net[2].bias}


def fit(data: FashionMNIST, hidden: int = HIDDEN, epochs: int = EPOCHS, negatives_per_kind: int = NEGATIVES_PER_KIND,
        photo_positives: int = PHOTO_POSITIVES, negatives_seed: int = TRAIN_SEED, seed: int = 0) -> Detector:
    """Train on the training split and generated negatives; the threshold from the validation split alone."""
    rng = np.random.default_rng(seed)
    train_images = to_images(data.train.x)
    _, photos = photo_inputs(train_images, rng, max(1, photo_positives // len(KINDS)))
    _, negatives = nonclothing.model_inputs(negatives_per_kind, negatives_seed)
    weights = _train(torch.cat([data.train.x, photos]), negatives, hidden, epochs, seed)
    weights = {k: v.detach().contiguous().clone() for k, v in weights.items()}
    unfitted = Detector(weights, math.inf, {})
    val_scores = unfitted.score(as_uploads(to_images(data.val.x))).numpy()
    threshold = float(np.quantile(val_scores[np.isfinite(val_scores)], QUANTILE))
    record = {
        "format": FORMAT, "method": "mlp", "hidden": hidden, "threshold": threshold, "quantile": QUANTILE,
        "command": COMMAND,
        "fitted_on": (f"FashionMNIST training split ({len(data.train)} images, {data.source}) plus "
                      f"{len(photos)} photo-like versions of them (seed {seed}) as clothing; "
                      f"{len(negatives)} core.nonclothing pictures (seed {negatives_seed}, {negatives_per_kind} "
                      f"per kind) as not clothing; {epochs} epochs of Adam (lr 1e-3, weight decay 1e-4), torch "
                      f"seed {seed}; threshold: the {QUANTILE:.0%} quantile of the scores of the "
                      f"{len(data.val)} validation images, each preprocessed as an upload"),
        "tuning_seed": TUNING_SEED, "report_seed": REPORT_SEED, "torch_version": torch.__version__,
        "python": platform.python_version(),
    }
    return Detector(weights, threshold, record)


def measure(detector: Detector, data: FashionMNIST, seed: int = REPORT_SEED) -> dict:
    """The flagged shares, all inputs preprocessed as uploads: validation and test images, photo-like test
    images per KINDS kind, non-clothing pictures of `seed` per kind; and the flagged count on the committed
    sample (real test images), which a test recomputes exactly."""
    flagged = lambda x: detector.flags(x).numpy()  # noqa: E731
    val, test = flagged(as_uploads(to_images(data.val.x))), flagged(as_uploads(to_images(data.test.x)))
    photo_kinds, photos = photo_inputs(to_images(data.test.x), np.random.default_rng(seed), REPORT_PHOTOS_PER_KIND)
    photo = flagged(photos)
    kinds, pictures = nonclothing.model_inputs(REPORT_PER_KIND, seed)
    non = flagged(pictures)
    share = lambda mask, which: float(mask[np.asarray(which)].mean())  # noqa: E731
    return {
        "validation": float(val.mean()), "test": float(test.mean()), "n_validation": len(val), "n_test": len(test),
        "photo_like": {k: share(photo, [p == k for p in photo_kinds]) for k in KINDS},
        "photo_like_all": float(photo.mean()), "n_photo_like": len(photo),
        "not_clothing": {k: share(non, [p == k for p in kinds]) for k in nonclothing.KINDS},
        "not_clothing_all": float(non.mean()), "n_not_clothing": len(non), "not_clothing_seed": seed,
        "sample_flagged": int(detector.flags(as_uploads(to_images(load_sample().x))).sum()),
    }


def report_table(record: dict) -> str:
    """The measured rates of a detector.json record as a plain-text table."""
    r = record["rates"]
    lines = [f"threshold {record['threshold']:.4f} (the {record['quantile']:.0%} quantile of the validation scores)",
             f"{'set':34s} {'n':>6s} {'flagged':>8s}",
             f"{'validation images (real)':34s} {r['n_validation']:6d} {r['validation']:8.1%}",
             f"{'test images (real)':34s} {r['n_test']:6d} {r['test']:8.1%}",
             f"{'committed sample (real test)':34s} {1000:6d} {r['sample_flagged'] / 1000:8.1%}",
             f"{'photo-like test images, all':34s} {r['n_photo_like']:6d} {r['photo_like_all']:8.1%}"]
    n_photo = r["n_photo_like"] // len(r["photo_like"])
    lines += [f"{'  ' + k:34s} {n_photo:6d} {v:8.1%}" for k, v in r["photo_like"].items()]
    lines.append(f"{'not clothing (seed ' + str(r['not_clothing_seed']) + '), all':34s} {r['n_not_clothing']:6d} "
                 f"{r['not_clothing_all']:8.1%}")
    n_non = r["n_not_clothing"] // len(r["not_clothing"])
    lines += [f"{'  ' + k:34s} {n_non:6d} {v:8.1%}" for k, v in r["not_clothing"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the files

def save(detector: Detector, folder: Path = FOLDER) -> Path:
    """Write detector.safetensors, then detector.json (with the weights' hash, so a mixed pair is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = safetensors_save({k: v.contiguous() for k, v in detector.weights.items()})
    tmp = folder / (WEIGHTS + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, folder / WEIGHTS)
    write_json(folder / RECORD, {**detector.record, "weights_sha256": hashlib.sha256(data).hexdigest()})
    return folder


def _finite_number(record: dict, key: str, label: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DetectorError(f"{label}: {key} must be a finite number, got {json.dumps(value)[:40]}; rebuild it "
                            f"with `{COMMAND}`")
    return float(value)


def load(folder: Path = FOLDER) -> Detector:
    """Read and check both files: JSON keys and types, tensor names, shapes, dtypes, finite values, hash.
    Any problem is a DetectorError naming the file (ood/detector.json: ...) and how to rebuild it."""
    folder = Path(folder)
    record_label, weights_label = f"{folder.name}/{RECORD}", f"{folder.name}/{WEIGHTS}"
    rebuild = f"; rebuild it with `{COMMAND}`"
    try:
        record = json.loads(read_bytes(folder / RECORD, record_label, MAX_BYTES))
    except CheckpointError as e:
        raise DetectorError(f"{e}{rebuild}") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise DetectorError(f"{record_label}: not valid JSON ({str(e)[:80]}){rebuild}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DetectorError(f"{record_label}: not a format-{FORMAT} detector record{rebuild}")
    hidden = record.get("hidden")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 4096:
        raise DetectorError(f"{record_label}: hidden must be a whole number 1..4096, got {json.dumps(hidden)[:40]}"
                            f"{rebuild}")
    threshold = _finite_number(record, "threshold", record_label)
    if not isinstance(record.get("rates"), dict) or not isinstance(record.get("weights_sha256"), str):
        raise DetectorError(f"{record_label}: the measured rates or the weights' hash are missing{rebuild}")
    try:
        data = read_bytes(folder / WEIGHTS, weights_label, MAX_BYTES)
        weights = read_weights(data, weights_label, _shapes(hidden))
    except CheckpointError as e:
        raise DetectorError(f"{e}{rebuild}") from None
    if hashlib.sha256(data).hexdigest() != record["weights_sha256"]:
        raise DetectorError(f"{weights_label}: does not match the hash in {record_label} (a partial or mixed "
                            f"write?){rebuild}")
    return Detector(weights, threshold, record)


@functools.lru_cache(maxsize=1)
def committed() -> Detector:
    """The committed detector (assets/ood/), loaded once per process."""
    return load(FOLDER)
