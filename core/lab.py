"""What the app computes, without Gradio: load every checkpoint once, compare two methods, classify an image."""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from . import plots
from .checkpoint import ROOT, CheckpointError, load_checkpoint, rebuild_command
from .data import CLASSES, Split, load_sample, to_images
from .methods import METHODS, Method
from .models import DeepMLP
from .preprocess import preprocess
from .results import results_rows

GRID_SIZE = 12  # test images in each side's prediction grid
DEFAULT_PAIR = ("baseline", "batchnorm")


@dataclass(frozen=True)
class Entry:
    """A registry method with its checkpoint, or the reason it could not be loaded."""
    method: Method
    model: DeepMLP | None
    metrics: dict | None
    error: str | None = None


@dataclass(frozen=True)
class Comparison:
    """What the Compare tab shows for a pair of methods (each side's prediction grid: Lab.predictions)."""
    cards: tuple[str, str]  # markdown: description, key hyperparameters, test accuracy (or what is wrong)
    gradient_flow: Figure
    curves: Figure
    weight_change: Figure
    max_epoch: int


def load_entry(method: Method, root: Path = ROOT) -> Entry:
    try:
        model, metrics = load_checkpoint(root / method.name)
    except CheckpointError as e:
        return Entry(method, None, None, f"{e}. Rebuild it with `{rebuild_command(method.name)}`.")
    return Entry(method, model, metrics)


def _hyperparameters(m: Method) -> str:
    parts = [f"{m.depth}x{m.width} {m.activation}", f"init N(0, {m.init_std})", f"{m.optimizer} lr {m.lr}",
             f"batch {m.batch_size}"]
    if m.norm != "none":
        parts.append(f"{m.norm} norm")
    if m.skips:
        parts.append("skips " + ", ".join(f"{a}→{b}" for a, b in m.skips))
    if m.grad_norm:
        parts.append("gradient normalization")
    if m.weight_decay:
        parts.append(f"weight decay {m.weight_decay}")
    if m.schedule != "constant":
        parts.append(f"{m.schedule} lr schedule")
    parts.append(f"{len(m.stages)} stages x {m.epochs} epochs" if m.stages else f"{m.epochs} epochs")
    return " · ".join(parts)


class Lab:
    def __init__(self, root: Path = ROOT, sample: Split | None = None):
        self.root = Path(root)
        self.entries = {name: load_entry(m, self.root) for name, m in METHODS.items()}
        self.sample = sample if sample is not None else load_sample()
        # a fixed, varied grid: the first image of each class, then two more
        per_class = [int(torch.nonzero(self.sample.y == c)[0]) for c in range(len(CLASSES))]
        self.grid = torch.tensor((per_class + [per_class[0] + 1, per_class[6] + 1])[:GRID_SIZE])
        self.rows = results_rows(self.root, strict=False)
        # Figures are pure functions of committed files, and drawing + rasterizing five of them takes longer
        # than the 1 s a comparison may take; so each is rendered once per method or pair and kept as a PNG
        # file (~50 KB): the server hands files out without re-encoding them, and all pairs fit easily.
        self.figure_dir = Path(tempfile.mkdtemp(prefix="vgl-figures-"))
        self.rendered_predictions = lru_cache(maxsize=len(METHODS))(self._rendered_predictions)
        self.rendered_comparison = lru_cache(maxsize=len(METHODS) ** 2)(self._rendered_comparison)

    # --- inputs -------------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(self.entries)}")
        return self.entries[name]

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for the method pickers; a broken checkpoint is marked."""
        return [(e.method.title + ("" if e.error is None else " (unavailable)"), name)
                for name, e in self.entries.items()]

    def problems(self) -> list[str]:
        return [f"`{name}`: {e.error}" for name, e in self.entries.items() if e.error]

    # --- Compare ------------------------------------------------------------------------------------
    def card(self, name: str) -> str:
        e = self.entry(name)
        head = f"### {e.method.title}\n{e.method.description}\n\n*{_hyperparameters(e.method)}*\n\n"
        if e.error:
            return head + f"**Unavailable:** {e.error}"
        m = e.metrics
        stopped = f" · stopped early: {m['stopped']}" if m.get("stopped") else ""
        return head + (f"**Test accuracy {m['test_acc']:.2%}** (10,000 test images, seed {m['seed']}) · "
                       f"trained {m['epochs']} epochs in {m['train_seconds'] / 60:.1f} min{stopped}")

    def gradient_flow(self, left: str, right: str, epoch: int | None = None) -> Figure:
        return plots.gradient_flow_figure(self.entry(left).metrics, self.entry(right).metrics, epoch)

    @torch.no_grad()
    def predictions(self, name: str) -> Figure:
        e = self.entry(name)
        idx = self.grid
        images = to_images(self.sample.x[idx])
        preds = e.model(self.sample.x[idx]).argmax(1).numpy() if e.model is not None else None
        return plots.predictions_figure(images, self.sample.y[idx].numpy(), preds, e.method.title)

    def compare(self, left: str, right: str) -> Comparison:
        l, r = self.entry(left).metrics, self.entry(right).metrics
        max_epoch = max((m["epochs"] for m in (l, r) if m), default=0)
        return Comparison(
            cards=(self.card(left), self.card(right)),
            gradient_flow=plots.gradient_flow_figure(l, r, None),
            curves=plots.training_curves_figure(l, r),
            weight_change=plots.weight_change_figure(l, r),
            max_epoch=max_epoch)

    def _png(self, fig: Figure, name: str) -> str:
        path = self.figure_dir / f"{name}.png"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(plots.figure_to_png(fig))
        os.replace(tmp, path)  # a concurrent reader never sees half a file
        return str(path)

    def _rendered_predictions(self, name: str) -> str:
        return self._png(self.predictions(name), f"predictions-{name}")

    def _rendered_comparison(self, left: str, right: str) -> dict:
        """compare(), rendered: the cards, PNG paths of every figure (prediction grids per method), and the
        epoch range."""
        c, pair = self.compare(left, right), f"{left}-{right}"
        return {"cards": c.cards,
                "gradient_flow": self._png(c.gradient_flow, f"flow-{pair}"),
                "curves": self._png(c.curves, f"curves-{pair}"),
                "weight_change": self._png(c.weight_change, f"change-{pair}"),
                "predictions": (self.rendered_predictions(left), self.rendered_predictions(right)),
                "max_epoch": c.max_epoch}

    def warm(self, pairs=None) -> None:
        """Render comparisons ahead of visitors: by default the baseline beside every method, what most
        visitors open. (All 196 pairs would keep a small Space's CPU busy for minutes after start.)"""
        for left, right in pairs or [("baseline", name) for name in self.entries]:
            self.rendered_comparison(left, right)

    # --- Classify -----------------------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, name: str, x: torch.Tensor, top: int = 5) -> dict[str, float]:
        """The model's `top` most likely classes for one preprocessed image; {} if it is unavailable."""
        e = self.entry(name)
        if e.model is None:
            return {}
        p = torch.softmax(e.model(x), dim=1)[0]
        best = torch.topk(p, top)
        return {CLASSES[i]: round(float(v), 6) for v, i in zip(best.values, best.indices)}

    def classify(self, image, left: str, right: str) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
        """Top-5 probabilities of both methods for an upload, and the 28x28 image the models saw.
        Raises ImageError (a message for the user) for anything that is not a usable picture."""
        self.entry(left), self.entry(right)  # unknown names fail before any decoding
        x, preview = preprocess(image)
        return self.probabilities(left, x), self.probabilities(right, x), preview

    @staticmethod
    def enlarged(preview: np.ndarray, scale: int = 8) -> np.ndarray:
        """The 28x28 model input blown up with square pixels, so a person can see what the model sees."""
        return np.repeat(np.repeat(preview, scale, axis=0), scale, axis=1)

    def examples(self, per_class: int = 1) -> list[np.ndarray]:
        """Real test images from the sample, one per class, as 28x28 uint8 arrays."""
        out = []
        for c in range(len(CLASSES)):
            for i in torch.nonzero(self.sample.y == c)[:per_class, 0]:
                out.append(to_images(self.sample.x[i])[0])
        return out

    # --- Results ------------------------------------------------------------------------------------
    def results_figure(self, left: str | None = None, right: str | None = None) -> Figure:
        return plots.results_figure(self.rows, left, right)

    def results_markdown(self) -> str:
        from .results import markdown_table
        if not self.rows:
            return "No trained checkpoints yet: run `python -m core.train --all`."
        return markdown_table(self.rows)

    def methods_markdown(self) -> str:
        return "\n".join(f"- **{m.title}** (`{m.name}`): {m.description}" for m in METHODS.values())

    def depth_figure(self) -> Figure:
        return plots.depth_figure([r for r in self.rows if r["method"] in ("baseline_3", "baseline_5", "baseline")])


def render(fig: Figure) -> Image.Image:
    """A figure as an RGB image, ready for the page."""
    return Image.open(io.BytesIO(plots.figure_to_png(fig))).convert("RGB")
