"""What the app computes, without Gradio: load every checkpoint once, compare two methods, classify an image."""
from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import get_data_path
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from . import charts, pages, plots, results_plots
from .checkpoint import ROOT, CheckpointError, load_checkpoint, rebuild_command
from .data import CLASSES, Split, load_sample, to_images
from .explain import gradient_map, render_colorbar, render_map, scale_ticks, shared_scale
from .methods import METHODS, Method
from .models import DeepMLP
from .panels import Once, Panels
from .preprocess import preprocess
from .results import results_rows

GRID_SIZE = 12  # test images in each side's prediction grid
WARM_DONE = "Compare: every method's panels, prediction grid and chart data are ready"
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


@dataclass(frozen=True)
class RenderedComparison:
    """A pair as the Compare tab shows it: the cards, each figure as the path of a PNG file (composed from
    per-method panels on axes shared by all methods: core.panels), the epoch range, and the browser chart's
    data (core.charts.pair_data: every epoch's per-layer statistics of both methods)."""
    cards: tuple[str, str]
    gradient_flow: str
    curves: str
    weight_change: str
    predictions: tuple[str, str]  # each side's prediction grid (rendered once per method)
    max_epoch: int
    chart: dict


@dataclass(frozen=True)
class Explanation:
    """Lab.explain: both methods' input-gradient maps for one image, on one shared logarithmic colour scale
    (core.explain says what a map means). A method whose checkpoint is unavailable has no map, and says why."""
    images: tuple[np.ndarray | None, np.ndarray | None]  # RGB uint8 [224, 224, 3], 28x28 square pixels
    colorbar: np.ndarray | None  # RGB uint8: the shared scale with its tick labels; None when neither has a map
    numbers: tuple[dict, dict]  # per side, JSON-ready: prediction, the two mean |gradient|s, the shared scale
    cards: tuple[str, str]  # markdown under each map: the same numbers in words, or why there is no map
    note: str  # markdown under both: what the maps mean for these methods (eval mode, normalisation)


def load_entry(method: Method, root: Path = ROOT) -> Entry:
    try:
        model, metrics = load_checkpoint(root / method.name, method.name)
    except CheckpointError as e:
        return Entry(method, None, None, f"{e}. Rebuild it with `{rebuild_command(method.name)}`.")
    return Entry(method, model, metrics)


class Lab:
    def __init__(self, root: Path = ROOT, sample: Split | None = None):
        self.root = Path(root)
        self.entries = {name: load_entry(m, self.root) for name, m in METHODS.items()}
        self.sample = sample if sample is not None else load_sample()
        # a fixed, varied grid: the first image of each class, then two more
        per_class = [int(torch.nonzero(self.sample.y == c)[0]) for c in range(len(CLASSES))]
        self.grid = torch.tensor((per_class + [per_class[0] + 1, per_class[6] + 1])[:GRID_SIZE])
        self.rows = results_rows(self.root, strict=False)
        # Figures are pure functions of committed files, and drawing one takes longer than a comparison may
        # (300 ms). So nothing a pair shows is drawn for the pair: each method's panels (core.panels, on axes
        # shared by every method), prediction grid and chart data (core.charts) are made once, ahead of
        # visitors by warm(); a pair composes them in milliseconds and keeps its PNG files (~50 KB each).
        self.figure_dir = Path(tempfile.mkdtemp(prefix="vgl-figures-"))
        self.panels = Panels({name: e.metrics for name, e in self.entries.items()})
        self._made = Once()  # per method: prediction grid PNG, chart data; per pair: its RenderedComparison

    # --- inputs -------------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise ValueError(f"Unknown method {name!r}; choose one of: {', '.join(self.entries)}")
        return self.entries[name]

    def choices(self) -> list[tuple[str, str]]:
        """(label, name) pairs for the method pickers; a broken checkpoint is marked."""
        return [(e.method.title + ("" if e.error is None else " (unavailable)"), name)
                for name, e in self.entries.items()]

    def card(self, name: str) -> str:
        """The method's card, with what its other committed seeds reached (from the results table)."""
        return pages.card(self.entry(name), next((r for r in self.rows if r["method"] == name), None))

    def problems(self) -> list[str]:
        return [f"`{name}`: {e.error}" for name, e in self.entries.items() if e.error]

    # --- Compare ------------------------------------------------------------------------------------
    @torch.no_grad()
    def predictions(self, name: str) -> Figure:
        e = self.entry(name)
        idx = self.grid
        images = to_images(self.sample.x[idx])
        preds = e.model(self.sample.x[idx]).argmax(1).numpy() if e.model is not None else None
        # 4 columns: a grid narrow enough that its captions stay readable on a phone (one grid per row there)
        return plots.predictions_figure(images, self.sample.y[idx].numpy(), preds, e.method.title, columns=4)

    def compare(self, left: str, right: str) -> Comparison:
        lm, rm = self.entry(left).metrics, self.entry(right).metrics
        max_epoch = max((m["epochs"] for m in (lm, rm) if m), default=0)
        return Comparison(
            cards=(self.card(left), self.card(right)),
            gradient_flow=plots.gradient_flow_figure(lm, rm, None),
            curves=plots.training_curves_figure(lm, rm),
            weight_change=plots.weight_change_figure(lm, rm),
            max_epoch=max_epoch)

    def _png(self, fig: Figure, name: str) -> str:
        path = self.figure_dir / f"{name}.png"
        tmp = path.with_name(f"{name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(plots.figure_to_png(fig))
        os.replace(tmp, path)  # a concurrent reader never sees half a file
        return str(path)

    def rendered_predictions(self, name: str) -> str:
        """The method's prediction grid as a PNG file, rendered once."""
        self.entry(name)
        return self._made.get(("predictions", name),
                              lambda: self._png(self.predictions(name), f"predictions-{name}"))

    def chart_data(self, name: str) -> dict:
        """The method's data for the browser chart (core.charts.method_data), built once."""
        e = self.entry(name)
        return self._made.get(("chart", name),
                              lambda: charts.method_data(name, e.method.title, e.metrics, e.error))

    def _composed_png(self, kind: str, left: str, right: str, name: str) -> str:
        path = self.figure_dir / f"{name}.png"
        tmp = path.with_name(f"{name}.{threading.get_ident()}.tmp")
        self.panels.figure(kind, left, right).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)  # a concurrent reader never sees half a file
        return str(path)

    def rendered_comparison(self, left: str, right: str) -> RenderedComparison:
        """The pair as the page shows it, composed once (a second caller meanwhile waits for it)."""
        self.entry(left), self.entry(right)
        return self._made.get(("pair", left, right), lambda: self._rendered_comparison(left, right))

    def _rendered_comparison(self, left: str, right: str) -> RenderedComparison:
        el, er, pair = self.entry(left), self.entry(right), f"{left}-{right}"
        return RenderedComparison(
            cards=(self.card(left), self.card(right)),
            gradient_flow=self._composed_png("gradient_flow", left, right, f"flow-{pair}"),
            curves=self._composed_png("curves", left, right, f"curves-{pair}"),
            weight_change=self._composed_png("weight_change", left, right, f"change-{pair}"),
            predictions=(self.rendered_predictions(left), self.rendered_predictions(right)),
            max_epoch=max((m["epochs"] for m in (el.metrics, er.metrics) if m), default=0),
            chart=charts.pair_data(self.chart_data(left), self.chart_data(right)))

    def warm(self, pairs=None, pause: Callable[[], object] | None = None) -> None:
        """Make what comparisons need ahead of visitors: the default pair first (the first page a visitor
        opens), then every method's chart data, panels and prediction grid, so that any pair after that is
        composed in milliseconds. `pairs`: render just these pairs instead. `pause`: called before each step
        (a fraction of a second to a second of drawing) and waited for: the app holds the work back while a
        Playground run trains, which would otherwise share the CPU and the GIL with it."""
        if pairs is not None:
            for left, right in pairs:
                self.rendered_comparison(left, right)
            return
        start = time.perf_counter()
        steps = [lambda: self.rendered_comparison(*DEFAULT_PAIR)]  # just the panels it needs: ~1 s of drawing
        steps += [lambda n=name: self.chart_data(n) for name in self.entries]
        steps += [lambda n=name: (self.panels.warm([n]), self.rendered_predictions(n)) for name in self.entries]
        for step in steps:
            if pause is not None:
                pause()
            try:
                step()
            except Exception as e:  # noqa: BLE001 - one bad method must not stop the others; its pairs draw late
                print(f"Compare: start-up work failed: {type(e).__name__}: {e}", flush=True)
        # the app's log says when any pair is instant (bench/latency.py waits for this line)
        print(f"{WARM_DONE} in {time.perf_counter() - start:.1f} s", flush=True)

    # --- Classify -----------------------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, name: str, x: torch.Tensor, top: int = 5) -> dict[str, float]:
        """The model's `top` most likely classes for one preprocessed image; {} if it is unavailable."""
        e = self.entry(name)
        if e.model is None:
            return {}
        p = torch.softmax(e.model(x), dim=1)[0]
        best = torch.topk(p, top)
        return {CLASSES[i]: round(float(v), 6) for v, i in zip(best.values, best.indices, strict=True)}

    def model_input(self, image, left: str, right: str) -> tuple[torch.Tensor, np.ndarray]:
        """An upload as the models see it: x [1, 784] and the 28x28 uint8 preview, decoded once. Both method
        names are checked first, so an unknown one fails before any decoding. Raises ImageError (a message for
        the user) for anything that is not a usable picture."""
        self.entry(left), self.entry(right)
        return preprocess(image)

    def classify(self, image, left: str, right: str) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
        """Top-5 probabilities of both methods for an upload, and the 28x28 image the models saw.
        Raises ImageError (a message for the user) for anything that is not a usable picture."""
        x, preview = self.model_input(image, left, right)
        return self.probabilities(left, x), self.probabilities(right, x), preview

    def explain(self, image, left: str, right: str) -> Explanation:
        """Both methods' input-gradient maps for an upload (errors as for classify)."""
        return self.explain_input(self.model_input(image, left, right)[0], left, right)

    def explain_input(self, x: torch.Tensor, left: str, right: str) -> Explanation:
        """Both methods' input-gradient maps for one preprocessed image x [1, 784] (Lab.model_input), rendered
        on one shared logarithmic scale as core.explain.compare_explanations does; an unavailable method's side
        stays empty and the scale is the other side's alone. ~10 ms on one thread."""
        entries = self.entry(left), self.entry(right)
        found = [None if e.model is None else gradient_map(e.model, x) for e in entries]
        maps = [f[1] for f in found if f is not None]
        scale = shared_scale(*maps) if maps else None
        numbers = tuple(self._gradient_numbers(e, f, scale) for e, f in zip(entries, found, strict=True))
        return Explanation(
            images=tuple(None if f is None else render_map(f[1], scale) for f in found),
            colorbar=None if scale is None else labelled_colorbar(scale),
            numbers=numbers,
            cards=tuple(pages.gradient_card(e, n) for e, n in zip(entries, numbers, strict=True)),
            note=pages.gradient_note([e.method for e, f in zip(entries, found, strict=True) if f is not None]))

    @staticmethod
    def _gradient_numbers(entry: Entry, found: tuple | None, scale: tuple[float, float] | None) -> dict:
        """One side of an explanation as data: what /explain returns for it."""
        out = {"method": entry.method.name, "title": entry.method.title, "available": found is not None,
               "predicted": None, "input_grad_mean_abs": None, "hidden1_grad_mean_abs": None,
               "scale": None if scale is None else list(scale), "error": entry.error}
        if found is not None:
            predicted, _, input_grad, hidden1 = found
            out.update(predicted=CLASSES[predicted], input_grad_mean_abs=input_grad, hidden1_grad_mean_abs=hidden1)
        return out

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
        return results_plots.results_figure(self.rows, left, right)

    def results_markdown(self) -> str:
        from .results import markdown_table
        if not self.rows:
            return "No trained checkpoints yet: run `python -m core train --all`."
        return markdown_table(self.rows)

    def depth_figure(self) -> Figure:
        return results_plots.depth_figure([r for r in self.rows
                                           if r["method"] in ("baseline_3", "baseline_5", "baseline")])


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


COLORBAR_CAPTION = "|∂ logit / ∂ pixel|, log scale"


def labelled_colorbar(scale: tuple[float, float], length: int = 400, zoom: int = 2) -> np.ndarray:
    """core.explain's colour bar as one RGB uint8 image that explains itself: a caption with which end is
    which, the bar (`length` px), its ticks and their values ("10⁻⁸"). Drawn `zoom`
    times larger, so the text stays sharp on high-density screens; compact (about 8:1) so that it is still
    legible when a phone shrinks it to its width."""
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


def render(fig: Figure) -> Image.Image:
    """A figure as an RGB image, ready for the page."""
    return Image.open(io.BytesIO(plots.figure_to_png(fig))).convert("RGB")
