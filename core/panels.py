"""The Compare tab's three pair figures (gradient flow, training curves, weight change) as PNGs for any pair in
milliseconds. Each figure is a base (title, axes frames, ticks, labels) plus one transparent layer per method
and side (its bars or curves, its labels and legend entry), all drawn once on axes of fixed position and
fixed limits shared by every method; a pair's figure is its base with the two layers composited (PIL), so
both methods are always on the same scale and a never-seen pair costs no drawing at all.

The figures keep the pixel sizes of core.plots' pair figures (gradient_flow_figure, training_curves_figure,
weight_change_figure) and their look: core.plots' colours, house style and, for the gradient flow, its very
panels (plots._gradient_panel draws each layer).
"""
from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from . import history, plots
from .plots import DPI, LEFT_COLOR, NOTE_COLOR, RIGHT_COLOR

__all__ = ["Once", "Panels", "SharedAxes", "shared_axes"]

SIDES = ("left", "right")
COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR}

# figure sizes (inches at DPI) and axes rectangles (figure fractions), fixed so that layers line up
FLOW_SIZE = (8.0, 3.8)
FLOW_RECTS = {"left": (0.095, 0.2, 0.385, 0.6), "right": (0.595, 0.2, 0.385, 0.6)}
CURVES_SIZE = (8.0, 3.8)
CURVES_RECTS = {"loss": (0.075, 0.28, 0.405, 0.57), "acc": (0.575, 0.28, 0.405, 0.57)}
CHANGE_SIZE = (7.0, 3.6)
CHANGE_RECT = (0.1, 0.22, 0.875, 0.58)


@dataclass(frozen=True)
class SharedAxes:
    """The axes every method shares in the PNG figures: computed from all methods' metrics at once."""
    flow: tuple[float, float]  # log limits of grad_mean_abs at init and last epoch
    change: tuple[float, float]  # log limits of rel_weight_change at the last epoch
    loss_log: bool
    loss: tuple[float, float]
    slots: tuple[str, ...]  # the weight-change figure's layers: every layer any method has


def _log_span(values, headroom: float) -> tuple[float, float] | None:
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return None
    lo, hi = math.log10(min(positive)), math.log10(max(positive))
    bottom = math.floor(lo - 0.3)
    return 10.0**bottom, 10.0**(hi + max(0.8, headroom * (hi - bottom)))


def shared_axes(all_metrics: list[dict | None]) -> SharedAxes:
    """Axes covering every method: the pair figures of any two methods are drawn on these."""
    metrics = [m for m in all_metrics if history.rows(m)]
    flow, change, losses, last_rows = [], [], [], []
    for m in metrics:
        first, last = history.rows(m)[0], history.row_at(m, None)
        last_rows.append(last)
        for row in (first, last):
            flow += [history.layer_value(row, n, "grad_mean_abs") for n in history.layer_names(row)]
        change += [history.layer_value(last, n, "rel_weight_change") for n in history.layer_names(last)]
        for key in ("train_loss", "val_loss"):
            losses += [v for v in history.series(m, key)[1] if v > 0]  # NaN > 0 is False
    loss_log = bool(losses) and max(losses) / min(losses) > 30
    if not losses:
        loss = (0.0, 1.0)
    elif loss_log:
        loss = (10 ** (math.log10(min(losses)) - 0.1), 10 ** (math.log10(max(losses)) + 0.1))
    else:
        loss = (0.0, max(losses) * 1.08)
    return SharedAxes(flow=_log_span(flow, 0.25) or (1e-8, 1.0), change=_log_span(change, 0.25) or (1e-6, 1.0),
                 loss_log=loss_log, loss=loss, slots=tuple(history.all_layer_names(last_rows)))


# ------------------------------------------------------------------------------------------------- drawing

def _figure(size) -> Figure:
    return Figure(figsize=size, dpi=DPI)  # no layout engine: the axes stay where they are put


def _png(fig: Figure, transparent: bool) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, transparent=transparent, facecolor="none" if transparent else "white")
    return buf.getvalue()


def _bare(ax: Axes, keep_x: bool = True) -> None:
    """A layer's axes: only its data and x labels; the base draws frame, grid and y ticks."""
    ax.patch.set_visible(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    if not keep_x:
        ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)


def _note(ax: Axes, x: float, text: str) -> None:
    ax.text(x, 0.02, text, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
            fontsize=6.5, color=NOTE_COLOR)


def _entry(fig: Figure, side: str, handle, y: float) -> None:
    """A method's legend entry, on its half of a row above or below the axes."""
    fig.legend(handles=[handle], loc="center", bbox_to_anchor=(0.28 if side == "left" else 0.72, y),
               fontsize=8, frameon=False, handlelength=1.6)


# gradient flow
def flow_base(axes: SharedAxes) -> bytes:
    fig = _figure(FLOW_SIZE)
    for side in SIDES:
        ax = fig.add_axes(FLOW_RECTS[side])
        plots.style_axes(ax)
        ax.set_yscale("log")
        ax.set_ylim(*axes.flow)
        ax.set_xticks([])
    fig.axes[0].set_ylabel(plots.KEY_LABELS["grad_mean_abs"][1] + "\n(log scale, same for every method)",
                           fontsize=8.5)
    fig.suptitle("Gradient flow: how much gradient reaches each layer", fontsize=11, y=0.985)
    return _png(fig, transparent=False)


def flow_layer(axes: SharedAxes, metrics: dict | None, side: str) -> bytes:
    fig = _figure(FLOW_SIZE)
    ax = fig.add_axes(FLOW_RECTS[side])
    ax.set_yscale("log")
    plots._gradient_panel(ax, metrics, None, "grad_mean_abs", COLORS[side], True)  # noqa: SLF001 - same panel
    ax.set_ylim(*axes.flow)
    _bare(ax)
    return _png(fig, transparent=True)


# training curves
def curves_base(axes: SharedAxes, last_epoch: float) -> bytes:
    fig = _figure(CURVES_SIZE)
    ax_loss, ax_acc = (fig.add_axes(CURVES_RECTS[k]) for k in ("loss", "acc"))
    for ax in (ax_loss, ax_acc):
        plots.style_axes(ax, "both")
        ax.set_xlabel("epoch", fontsize=8.5)
        ax.set_xlim(0, max(last_epoch, 1))
    if axes.loss_log:
        ax_loss.set_yscale("log")
    ax_loss.set_ylim(*axes.loss)
    ax_loss.set_ylabel("cross-entropy loss" + (" (log scale)" if axes.loss_log else " (nats)"), fontsize=8.5)
    ax_loss.set_title("Loss", fontsize=10)
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("accuracy (fraction correct)", fontsize=8.5)
    ax_acc.set_title("Accuracy", fontsize=10)
    ax_acc.hlines(plots.CHANCE, 0, 1, transform=ax_acc.get_yaxis_transform(), colors="#999999",
                  linestyles=(0, (1, 2)), linewidth=0.9)
    styles = [Line2D([], [], color="#444444", linestyle="-", label="validation"),
              Line2D([], [], color="#444444", linestyle="--", linewidth=1.1, label="train"),
              Line2D([], [], color="#999999", linestyle=(0, (1, 2)), label=f"chance ({plots.CHANCE:g})")]
    fig.legend(handles=styles, loc="center", bbox_to_anchor=(0.5, 0.045), ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Training curves", fontsize=11, y=0.985)
    return _png(fig, transparent=False)


def curves_layer(axes: SharedAxes, metrics: dict | None, side: str, last_epoch: float) -> bytes:
    fig = _figure(CURVES_SIZE)
    ax_loss, ax_acc = (fig.add_axes(CURVES_RECTS[k]) for k in ("loss", "acc"))
    color = COLORS[side]
    title = history.method_title(metrics) if metrics else "not trained yet"
    for ax, ylim, log in ((ax_loss, axes.loss, axes.loss_log), (ax_acc, (0, 1), False)):
        if log:
            ax.set_yscale("log")
        ax.set_xlim(0, max(last_epoch, 1))
        ax.set_ylim(*ylim)
        _bare(ax, keep_x=False)
    if not history.rows(metrics):
        _entry(fig, side, Line2D([], [], color=color, alpha=0.4, label=f"{title} (not trained yet)"), 0.125)
        return _png(fig, transparent=True)
    for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "--"), ("val", "-")):
            x, y = history.series(metrics, f"{split}_{what}")
            ax.plot(x, y, style, color=color, linewidth=1.6 if split == "val" else 1.1,
                    alpha=1.0 if split == "val" else 0.85)
    boundaries = history.stage_boundaries(metrics)
    for ax in (ax_loss, ax_acc):
        if boundaries:
            ax.vlines(boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=color, linestyles=":",
                      linewidth=0.8, alpha=0.5)
    label = title + (" (dotted: stage boundaries)" if boundaries else "")
    _entry(fig, side, Line2D([], [], color=color, linewidth=2.2, label=label), 0.125)
    return _png(fig, transparent=True)


# weight change
def change_base(axes: SharedAxes) -> bytes:
    fig = _figure(CHANGE_SIZE)
    ax = fig.add_axes(CHANGE_RECT)
    plots.style_axes(ax)
    ax.set_yscale("log")
    ax.set_ylim(*axes.change)
    ax.set_xticks(range(len(axes.slots)), axes.slots, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(axes.slots) - 0.4)
    ax.set_xlabel("Linear layer (input → output)", fontsize=8.5)
    ax.set_ylabel("‖W − W₀‖ / ‖W₀‖ (log scale)", fontsize=8.5)
    fig.suptitle("How far each layer's weights moved from their initial values", fontsize=11, y=0.985)
    return _png(fig, transparent=False)


def change_layer(axes: SharedAxes, metrics: dict | None, side: str) -> bytes:
    fig = _figure(CHANGE_SIZE)
    ax = fig.add_axes(CHANGE_RECT)
    ax.set_yscale("log")
    ax.set_ylim(*axes.change)
    ax.set_xlim(-0.6, len(axes.slots) - 0.4)
    _bare(ax, keep_x=False)
    color, width = COLORS[side], 0.4
    offset = (SIDES.index(side) - 0.5) * width
    title = history.method_title(metrics) if metrics else "not trained yet"
    row = history.row_at(metrics, None)
    if row is None:
        _entry(fig, side, Patch(facecolor="none", edgecolor=color, label=title), 0.875)
        return _png(fig, transparent=True)
    have = set(history.layer_names(row))
    for i, name in enumerate(axes.slots):
        v = history.layer_value(row, name, "rel_weight_change")
        if name not in have:
            _note(ax, i + offset, "no layer")
        elif v is None:
            _note(ax, i + offset, history.missing_reason(metrics, row, name, "rel_weight_change"))
        elif v <= 0:
            _note(ax, i + offset, history.unchanged_reason(metrics, row, name))
        else:
            ax.bar(i + offset, v, width * 0.95, color=color)
    _entry(fig, side, Patch(facecolor=color, label=f"{title}, {history.epoch_label(metrics, row)}"), 0.875)
    return _png(fig, transparent=True)


# ------------------------------------------------------------------------------------------------ the cache

class Once:
    """Values made once per key, thread-safe: a second caller of a key being made waits for it instead of
    making it again (the start-up thread and the first visitor often want the same layer)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[Hashable, list] = {}  # key -> [lock, done, value]

    def get(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            slot = self._slots.setdefault(key, [threading.Lock(), False, None])
        with slot[0]:
            if not slot[1]:
                slot[2], slot[1] = make(), True
        return slot[2]


def _cropped(layer_png: bytes) -> tuple[tuple[int, int], bytes]:
    """A layer as (offset, PNG of its non-transparent part): a fraction of the pixels to decode and blend."""
    image = Image.open(io.BytesIO(layer_png)).convert("RGBA")
    box = image.getchannel("A").getbbox() or (0, 0, 1, 1)
    buf = io.BytesIO()
    image.crop(box).save(buf, format="PNG", compress_level=1)
    return (box[0], box[1]), buf.getvalue()


def _compose(base: Image.Image, layers: list[tuple[tuple[int, int], bytes]]) -> Image.Image:
    image = base.copy()
    for offset, png in layers:
        image.alpha_composite(Image.open(io.BytesIO(png)).convert("RGBA"), dest=offset)
    return image.convert("RGB")


class Panels:
    """Every method's layers and the bases, rendered on demand (or ahead by warm) and kept as PNG bytes
    (a few hundred KB for all methods); figure(kind, left, right) composes a pair's figure."""

    KINDS = ("gradient_flow", "curves", "weight_change")

    def __init__(self, metrics: dict[str, dict | None]):
        self.metrics = metrics
        self.axes = shared_axes(list(metrics.values()))
        self._cache = Once()

    def _last_epoch(self, *names: str) -> float:
        return max((history.epoch_of(history.rows(self.metrics[n])[-1]) for n in names
                    if history.rows(self.metrics[n])), default=1)

    def _base(self, kind: str, last_epoch: float) -> Image.Image:
        """A base, decoded (a handful of them: kept as images)."""
        make = {"gradient_flow": lambda: flow_base(self.axes),
                "curves": lambda: curves_base(self.axes, last_epoch),
                "weight_change": lambda: change_base(self.axes)}[kind]
        return self._cache.get((kind, last_epoch if kind == "curves" else None),
                               lambda: Image.open(io.BytesIO(make())).convert("RGBA"))

    def _layer(self, kind: str, name: str, side: str, last_epoch: float) -> tuple[tuple[int, int], bytes]:
        """A layer, cropped and kept as PNG bytes (one per method, side and kind: kept small)."""
        m = self.metrics[name]
        make = {"gradient_flow": lambda: flow_layer(self.axes, m, side),
                "curves": lambda: curves_layer(self.axes, m, side, last_epoch),
                "weight_change": lambda: change_layer(self.axes, m, side)}[kind]
        return self._cache.get((kind, name, side, last_epoch if kind == "curves" else None),
                               lambda: _cropped(make()))

    def figure(self, kind: str, left: str, right: str) -> Image.Image:
        """The pair's figure `kind` (one of KINDS): left method in blue, right in orange."""
        last = self._last_epoch(left, right)
        return _compose(self._base(kind, last), [self._layer(kind, n, s, last) for n, s in zip((left, right), SIDES)])

    def warm(self, names: list[str], partners: list[str] | None = None) -> None:
        """Render every layer `names` need on either side, whatever their partner (the curves' epoch axis
        depends on the longer run of the two; `partners` are the methods that can be paired with them)."""
        partners = partners if partners is not None else list(self.metrics)
        for name in names:
            lasts = sorted({self._last_epoch(name, p) for p in partners})
            for side in SIDES:
                for kind in self.KINDS:
                    for last in (lasts if kind == "curves" else lasts[:1]):
                        self._base(kind, last)
                        self._layer(kind, name, side, last)
