"""What the Compare tab shows for a pair of methods: both cards, the three figures and both prediction grids as
PNG files, the epoch range and the browser chart's data, made from the Lab's methods and kept (Lab.once).

Figures are pure functions of committed files, and drawing one takes longer than a comparison may (300 ms).
So nothing a pair shows is drawn for the pair: each method's layers (ui.figures, on axes shared by every
method), prediction grid and chart data (ui.chart_data) are made once, ahead of visitors by warm(); a pair
composes them in milliseconds and keeps its PNG files (~50 KB each).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core import history
from core.data import CLASSES, to_images

from . import chart_data, figures, pages
from .lab import Lab

DEFAULT_PAIR = ("baseline", "batchnorm")  # the pair every visitor's page opens with
GRID_SIZE = 12  # test images in each side's prediction grid
WARM_DONE = "Compare: every method's panels, prediction grid and chart data are ready"


@dataclass(frozen=True)
class Comparison:
    """A pair as the Compare tab shows it (and /compare returns it)."""
    cards: tuple[str, str]  # markdown: description, key hyperparameters, test accuracy (or what is wrong)
    gradient_flow: str  # each figure: the path of its PNG file
    curves: str
    weight_change: str
    predictions: tuple[str, str]  # each side's prediction grid
    predictions_text: tuple[str, str]  # what each grid shows, in words (its image's alt text: ui.pages)
    max_epoch: int
    chart: dict  # the browser chart's data (ui.chart_data.pair_data): every epoch of both methods


def card(lab: Lab, name: str) -> str:
    """The method's card, with what its other committed seeds reached (from the results table)."""
    return pages.card(lab.entry(name), lab.row(name))


def method_chart(lab: Lab, name: str) -> dict:
    """The method's side of the browser chart (ui.chart_data.method_data, thinned to MAX_ROWS epochs and
    packed), made once."""
    e = lab.entry(name)
    return lab.once(("chart", name), lambda: chart_data.packed(
        chart_data.thinned(chart_data.method_data(name, e.method.title, e.metrics, e.error))))


def _grid(lab: Lab) -> torch.Tensor:
    """A fixed, varied grid of the sample: the first image of each class, then two more."""
    def make():
        per_class = [int(torch.nonzero(lab.sample.y == c)[0]) for c in range(len(CLASSES))]
        return torch.tensor((per_class + [per_class[0] + 1, per_class[6] + 1])[:GRID_SIZE])
    return lab.once("grid", make)


@dataclass(frozen=True)
class Grid:
    """A method's prediction grid: its PNG file and what it shows (for its text alternative)."""
    path: str
    truth: list[int]  # each image's class
    predicted: list[int] | None  # the model's answer for each; None: no model (its checkpoint is unavailable)


@torch.no_grad()
def _grid_of(lab: Lab, name: str) -> Grid:
    e, idx = lab.entry(name), _grid(lab)
    truth = lab.sample.y[idx].numpy()
    preds = e.model(lab.sample.x[idx]).argmax(1).numpy() if e.model is not None else None
    # 4 columns: a grid narrow enough that its captions stay readable on a phone (one grid per row there)
    fig = figures.predictions_figure(to_images(lab.sample.x[idx]), truth, preds, e.method.title, columns=4)
    return Grid(lab.png_file(f"predictions-{name}", figures.png(fig)), truth.tolist(),
                None if preds is None else preds.tolist())


def prediction_grid(lab: Lab, name: str) -> Grid:
    """The method's prediction grid (its PNG file and the answers it shows), drawn once."""
    lab.entry(name)
    return lab.once(("predictions", name), lambda: _grid_of(lab, name))


def predictions_text(lab: Lab, name: str) -> str:
    """The grid's text alternative: every image's class and the method's answer (ui.pages' words)."""
    g = prediction_grid(lab, name)
    return pages.predictions_text(lab.entry(name).method.title, [CLASSES[c] for c in g.truth],
                                  None if g.predicted is None else [CLASSES[c] for c in g.predicted])


def _axes(lab: Lab) -> figures.SharedAxes:
    return lab.once("axes", lambda: figures.shared_axes([e.metrics for e in lab.entries.values()]))


def _last_epoch(lab: Lab, *names: str) -> float:
    """The end of the curves' epoch axis for these methods: the longer run."""
    rows = [history.rows(lab.entry(n).metrics) for n in names]
    return max((history.epoch_of(r[-1]) for r in rows if r), default=1)


def _base(lab: Lab, kind: str, last_epoch: float):
    key = last_epoch if kind == "curves" else None  # only the curves' axis depends on the pair
    return lab.once((kind, key), lambda: figures.decoded(figures.base(kind, _axes(lab), last_epoch)))


def _layer(lab: Lab, kind: str, name: str, side: str, last_epoch: float):
    key = last_epoch if kind == "curves" else None
    metrics = lab.entry(name).metrics
    return lab.once((kind, name, side, key),
                    lambda: figures.cropped(figures.layer(kind, _axes(lab), metrics, side, last_epoch)))


def figure(lab: Lab, kind: str, left: str, right: str):
    """The pair's figure `kind` (ui.figures.KINDS) as an RGB image: left method in blue, right in orange."""
    last = _last_epoch(lab, left, right)
    return figures.compose(_base(lab, kind, last),
                           [_layer(lab, kind, n, s, last) for n, s in zip((left, right), figures.SIDES)])


def _figure_file(lab: Lab, kind: str, left: str, right: str, name: str) -> str:
    return lab.png_file(name, figures.encoded(figure(lab, kind, left, right)))


def comparison(lab: Lab, left: str, right: str) -> Comparison:
    """The pair as the page shows it, composed once (a second caller meanwhile waits for it). Unknown names
    are a ValueError naming the choices."""
    lab.entry(left), lab.entry(right)
    return lab.once(("pair", left, right), lambda: _comparison(lab, left, right))


def _comparison(lab: Lab, left: str, right: str) -> Comparison:
    pair = f"{left}-{right}"
    return Comparison(
        cards=(card(lab, left), card(lab, right)),
        gradient_flow=_figure_file(lab, "gradient_flow", left, right, f"flow-{pair}"),
        curves=_figure_file(lab, "curves", left, right, f"curves-{pair}"),
        weight_change=_figure_file(lab, "weight_change", left, right, f"change-{pair}"),
        predictions=(prediction_grid(lab, left).path, prediction_grid(lab, right).path),
        predictions_text=(predictions_text(lab, left), predictions_text(lab, right)),
        max_epoch=max((m["epochs"] for m in (lab.entry(left).metrics, lab.entry(right).metrics) if m), default=0),
        chart=chart_data.pair_data(method_chart(lab, left), method_chart(lab, right)))


def _draw_method(lab: Lab, name: str) -> None:
    """Every layer `name` needs on either side, whatever its partner (the curves' epoch axis depends on the
    longer run of the two), and its prediction grid."""
    lasts = sorted({_last_epoch(lab, name, partner) for partner in lab.entries})
    for side in figures.SIDES:
        for kind in figures.KINDS:
            for last in (lasts if kind == "curves" else lasts[:1]):
                _base(lab, kind, last)
                _layer(lab, kind, name, side, last)
    prediction_grid(lab, name)


def warm(lab: Lab, pairs=None, pause: Callable[[], object] | None = None) -> None:
    """Make what comparisons need ahead of visitors: the default pair first (the first page a visitor opens),
    then every method's chart data, layers and prediction grid, so that any pair after that is composed in
    milliseconds. `pairs`: compose just these pairs instead. `pause`: called before each step (a fraction of a
    second to a second of drawing) and waited for: the app holds the work back while a Playground run trains,
    which would otherwise share the CPU and the GIL with it."""
    if pairs is not None:
        for left, right in pairs:
            comparison(lab, left, right)
        return
    start = time.perf_counter()
    steps = [lambda: comparison(lab, *DEFAULT_PAIR)]  # just the layers it needs: ~1 s of drawing
    steps += [lambda n=name: method_chart(lab, n) for name in lab.entries]
    steps += [lambda n=name: _draw_method(lab, n) for name in lab.entries]
    for step in steps:
        if pause is not None:
            pause()
        try:
            step()
        except Exception as e:  # noqa: BLE001 - one bad method must not stop the others; its pairs draw late
            print(f"Compare: start-up work failed: {type(e).__name__}: {e}", flush=True)
    # the app's log says when any pair is instant (bench/latency.py waits for this line)
    print(f"{WARM_DONE} in {time.perf_counter() - start:.1f} s", flush=True)
