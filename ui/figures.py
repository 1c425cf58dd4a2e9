"""Every PNG figure the app shows, drawn with matplotlib: Compare's gradient flow, training curves and weight
change, the prediction grids, and the Results tab's accuracy and depth figures. Pure functions, no Gradio.

Values are read from the metrics through core.history; this module only draws them. Figures are built with
matplotlib.figure.Figure, never pyplot, so no global state is touched and the functions are safe to call from
a server's worker threads. Each returns the Figure; png() renders one.

Compare's figures are drawn for any pair without drawing anything for it: each method's layer (its bars or
curves alone, on a transparent background) is drawn on axes of fixed position and limits shared by every
method (shared_axes), the figure's base (frame, grid, ticks, titles) once, and a pair's figure is its base with
the two layers composited (compose). So both methods are always on the same scale.

Conventions shared by every figure (and the browser chart, ui.chart_data, which takes its colours from here):
- The left method is drawn in LEFT_COLOR, the right one in RIGHT_COLOR, in every figure.
- A missing value (None, NaN, or a method that is not trained yet) draws nothing and leaves a small grey
  note where the bar would be ("frozen", "not trained yet", ...): the functions never raise on them.
- Log axes never see a value <= 0: such a value draws no bar and is marked instead.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from core import history
from core.data import CLASSES
from core.history import finite_number
from core.results import BENCHMARK_BEST_MLP

LEFT_COLOR = "#1f6fb4"  # blue
RIGHT_COLOR = "#e0620d"  # orange
NEUTRAL_COLOR = "#8a94a6"  # methods that are neither left nor right
NOTE_COLOR = "#7a7a7a"  # the small grey notes that stand in for missing values
RIGHT_MARK = "#1a9641"  # predictions: right
WRONG_MARK = "#d7191c"  # predictions: wrong
CHANCE = 0.1  # 10 classes
DPI = 100
SHORT_CLASSES = tuple({"T-shirt/top": "T-shirt"}.get(c, c) for c in CLASSES)
SIDES = ("left", "right")
COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR}

# metric key -> (short name, axis label); the statistics are ratios or per-weight magnitudes, so unitless
KEY_LABELS = {
    "grad_mean_abs": ("mean|grad|", "mean |∂L/∂W| per weight"),
    "update_ratio": ("update/weight", "std(update) / std(W)"),
    "rel_weight_change": ("‖W−W₀‖/‖W₀‖", "‖W − W₀‖ / ‖W₀‖"),
    "saturation": ("saturation", "fraction of saturated units"),
    "error_mean_abs": ("mean|error|", "mean |∂ℓ/∂z| per image and unit"),  # the backpropagated error
    "activation_std": ("std(act)", "std of the layer's activations"),
    "signal_std": ("signal std", "median over units of each unit's std across images"),  # the forward signal
    "gain_backward": ("error gain", "error ratio to the layer above; ◆ = theory"),
    "gain_forward": ("signal gain", "signal ratio to the layer below; ◆ = theory"),
}


# ------------------------------------------------------------------------------------------- house style

def new_figure(width: float = 6.0, height: float = 3.6) -> Figure:
    """An empty figure of the app's size and padding (inches at DPI), laid out by constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.04, hspace=0.04)
    return fig


def style_axes(ax: Axes, grid_axis: str = "y") -> None:
    """The house style: no top/right spines, small ticks, a light grid on `grid_axis` behind the data."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis=grid_axis, which="major", color="#e4e4e4", linewidth=0.7)
    ax.set_axisbelow(True)


def lighten(color: str, amount: float = 0.55) -> str:
    """`color` mixed with white (amount 0 = unchanged, 1 = white) as "#rrggbb": matplotlib and the browser
    both take it. Mixed in 8-bit channels, so the rendered pixels are those of the exact mix."""
    rgb = [round(c * 255) for c in to_rgb(color)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def placeholder(ax: Axes, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=10, color=NOTE_COLOR)
    ax.set_xticks([])
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _note(ax: Axes, x: float, text: str) -> None:
    """A small vertical grey note at the bottom of the axes where a bar is missing."""
    ax.text(x, 0.02, text, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
            fontsize=6.5, color=NOTE_COLOR, gid="note")


def _log_limits(values: Iterable[float | None]) -> tuple[float, float] | None:
    """Log-axis limits around the positive values, with headroom at the top for legends and notes."""
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return None
    lo, hi = math.log10(min(positive)), math.log10(max(positive))
    bottom = math.floor(lo - 0.3)  # the smallest bar stays visible above the axis floor
    return 10.0**bottom, 10.0**(hi + max(0.8, 0.25 * (hi - bottom)))


def png(fig: Figure, transparent: bool = False) -> bytes:
    """The figure rendered to PNG bytes (Agg, no pyplot); `transparent`: a layer, to composite on a base."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, transparent=transparent, facecolor="none" if transparent else "white")
    return buf.getvalue()


def image(fig: Figure) -> Image.Image:
    """The figure as an RGB image, ready for the page."""
    return Image.open(io.BytesIO(png(fig))).convert("RGB")


# ------------------------------------------------------------------------- Compare: axes shared by all

# figure sizes (inches at DPI) and axes rectangles (figure fractions), fixed so that layers line up
FLOW_SIZE = (8.0, 3.8)
FLOW_RECTS = {"left": (0.095, 0.2, 0.385, 0.6), "right": (0.595, 0.2, 0.385, 0.6)}
CURVES_SIZE = (8.0, 3.8)
CURVES_RECTS = {"loss": (0.075, 0.28, 0.405, 0.57), "acc": (0.575, 0.28, 0.405, 0.57)}
CHANGE_SIZE = (7.0, 3.6)
CHANGE_RECT = (0.1, 0.22, 0.875, 0.58)
KINDS = ("gradient_flow", "curves", "weight_change")


@dataclass(frozen=True)
class SharedAxes:
    """The axes every method shares in the Compare figures: computed from all methods' metrics at once."""
    flow: tuple[float, float]  # log limits of grad_mean_abs at init and last epoch
    change: tuple[float, float]  # log limits of rel_weight_change at the last epoch
    loss_log: bool
    loss: tuple[float, float]
    slots: tuple[str, ...]  # the weight-change figure's layers: every layer any method has


def shared_axes(all_metrics: list[dict | None]) -> SharedAxes:
    """Axes covering every method: the Compare figures of any two methods are drawn on these."""
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
    return SharedAxes(flow=_log_limits(flow) or (1e-8, 1.0), change=_log_limits(change) or (1e-6, 1.0),
                      loss_log=loss_log, loss=loss, slots=tuple(history.all_layer_names(last_rows)))


def _figure(size) -> Figure:
    return Figure(figsize=size, dpi=DPI)  # no layout engine: the axes stay where they are put


def _bare(ax: Axes, keep_x: bool = True) -> None:
    """A layer's axes: only its data and x labels; the base draws frame, grid and y ticks."""
    ax.patch.set_visible(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    if not keep_x:
        ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)


def _entry(fig: Figure, side: str, handle, y: float) -> None:
    """A method's legend entry, on its half of a row above or below the axes."""
    fig.legend(handles=[handle], loc="center", bbox_to_anchor=(0.28 if side == "left" else 0.72, y),
               fontsize=8, frameon=False, handlelength=1.6)


def _title(metrics: dict | None) -> str:
    return history.method_title(metrics) if metrics else "not trained yet"


# ----------------------------------------------------------------------------- Compare: gradient flow

def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.1e}" if x != 0 else "0")


def _note_text(metrics: dict, row: dict, name: str, value: float | None) -> str:
    return "0" if value is not None else history.missing_reason(metrics, row, name, "grad_mean_abs")


def _flow_panel(ax: Axes, metrics: dict | None, color: str) -> None:
    """One method's gradient flow on a log axis: grouped bars per layer of mean |grad| at init (lighter) and
    at the last epoch, a note where a value is missing or 0, and first-layer / output-layer mean |grad| (the
    vanishing indicator)."""
    key = "grad_mean_abs"
    row = history.row_at(metrics, None)
    if row is None:
        ax.set_title(_title(metrics), fontsize=9.5)
        placeholder(ax, "not trained yet")
        return
    names = history.layer_names(row)
    ax.set_title(f"{history.method_title(metrics)}\n{history.epoch_label(metrics, row)}", fontsize=9.5)
    if not names:
        placeholder(ax, "no per-layer diagnostics recorded")
        return
    init = history.rows(metrics)[0]
    series = [("epoch", row, color, f"epoch {history.epoch_of(row)}")]
    if row is not init and any(history.layer_value(init, n, key) is not None for n in names):
        series.insert(0, ("init", init, lighten(color), "init (epoch 0)"))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    drawn = False
    labelled: set[str] = set()
    for i, name in enumerate(names):
        values = [history.layer_value(r, name, key) for _, r, _, _ in series]
        notes = [None if v is not None and v > 0 else _note_text(metrics, r, name, v)
                 for v, (_, r, _, _) in zip(values, series)]
        if all(notes) and len(set(notes)) == 1:  # nothing to draw in this group: one centered note
            _note(ax, x[i], notes[0])
            continue
        for s, ((tag, _, c, label), v, note) in enumerate(zip(series, values, notes)):
            offset = (s - (len(series) - 1) / 2) * width
            if note:
                _note(ax, x[i] + offset, note)
                continue
            ax.bar(x[i] + offset, v, width * 0.95, color=c, edgecolor=color, linewidth=0.6,
                   label=None if tag in labelled else label, gid=f"{tag}:{name}")
            labelled.add(tag)
            drawn = True
    ax.set_xticks(x, names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("Linear layer (input → output)", fontsize=8.5)
    short = KEY_LABELS[key][0]
    ratio = history.gradient_ratio(metrics, history.epoch_of(row), key)
    text = f"{names[0]} / {names[-1]} {short}\n= {_fmt_ratio(ratio)}"
    if ratio is None and history.layer_value(row, names[0], key) is None:
        text += f" ({names[0]} {history.missing_reason(metrics, row, names[0], key)})"
    init_ratio = history.gradient_ratio(metrics, 0, key)
    if row is not init and init_ratio is not None:
        text += f"  (init {_fmt_ratio(init_ratio)})"
    ax.text(0.02, 0.97, text, transform=ax.transAxes, ha="left", va="top", fontsize=7.5, gid="ratio",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cccccc", "linewidth": 0.6})
    if drawn:
        ax.legend(loc="upper right", fontsize=7, frameon=True, framealpha=0.9, handlelength=1.2)


def flow_base(axes: SharedAxes) -> Figure:
    fig = _figure(FLOW_SIZE)
    for side in SIDES:
        ax = fig.add_axes(FLOW_RECTS[side])
        style_axes(ax)
        ax.set_yscale("log")
        ax.set_ylim(*axes.flow)
        ax.set_xticks([])
    fig.axes[0].set_ylabel(KEY_LABELS["grad_mean_abs"][1] + "\n(log scale, same for every method)", fontsize=8.5)
    fig.suptitle("Gradient flow: how much gradient reaches each layer", fontsize=11, y=0.985)
    return fig


def flow_layer(axes: SharedAxes, metrics: dict | None, side: str) -> Figure:
    fig = _figure(FLOW_SIZE)
    ax = fig.add_axes(FLOW_RECTS[side])
    ax.set_yscale("log")
    _flow_panel(ax, metrics, COLORS[side])
    ax.set_ylim(*axes.flow)
    _bare(ax)
    return fig


# ---------------------------------------------------------------------------- Compare: training curves

def curves_base(axes: SharedAxes, last_epoch: float) -> Figure:
    fig = _figure(CURVES_SIZE)
    ax_loss, ax_acc = (fig.add_axes(CURVES_RECTS[k]) for k in ("loss", "acc"))
    for ax in (ax_loss, ax_acc):
        style_axes(ax, "both")
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
    ax_acc.hlines(CHANCE, 0, 1, transform=ax_acc.get_yaxis_transform(), colors="#999999",
                  linestyles=(0, (1, 2)), linewidth=0.9)
    styles = [Line2D([], [], color="#444444", linestyle="-", label="validation"),
              Line2D([], [], color="#444444", linestyle="--", linewidth=1.1, label="train"),
              Line2D([], [], color="#999999", linestyle=(0, (1, 2)), label=f"chance ({CHANCE:g})")]
    fig.legend(handles=styles, loc="center", bbox_to_anchor=(0.5, 0.045), ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Training curves", fontsize=11, y=0.985)
    return fig


def curves_layer(axes: SharedAxes, metrics: dict | None, side: str, last_epoch: float) -> Figure:
    """One method's loss and accuracy curves (solid: validation, dashed: train; dotted: layer-wise stage
    boundaries), on an epoch axis to `last_epoch`, the longer run of the pair."""
    fig = _figure(CURVES_SIZE)
    ax_loss, ax_acc = (fig.add_axes(CURVES_RECTS[k]) for k in ("loss", "acc"))
    color = COLORS[side]
    title = _title(metrics)
    for ax, ylim, log in ((ax_loss, axes.loss, axes.loss_log), (ax_acc, (0, 1), False)):
        if log:
            ax.set_yscale("log")
        ax.set_xlim(0, max(last_epoch, 1))
        ax.set_ylim(*ylim)
        _bare(ax, keep_x=False)
    if not history.rows(metrics):
        _entry(fig, side, Line2D([], [], color=color, alpha=0.4, label=f"{title} (not trained yet)"), 0.125)
        return fig
    for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "--"), ("val", "-")):
            x, y = history.series(metrics, f"{split}_{what}")
            ax.plot(x, y, style, color=color, linewidth=1.6 if split == "val" else 1.1,
                    alpha=1.0 if split == "val" else 0.85, gid=f"{split}_{what}")
    boundaries = history.stage_boundaries(metrics)
    for ax in (ax_loss, ax_acc):
        if boundaries:
            ax.vlines(boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=color, linestyles=":",
                      linewidth=0.8, alpha=0.5, gid="stage_boundaries")
    label = title + (" (dotted: stage boundaries)" if boundaries else "")
    _entry(fig, side, Line2D([], [], color=color, linewidth=2.2, label=label), 0.125)
    return fig


# ------------------------------------------------------------------------------ Compare: weight change

def change_base(axes: SharedAxes) -> Figure:
    fig = _figure(CHANGE_SIZE)
    ax = fig.add_axes(CHANGE_RECT)
    style_axes(ax)
    ax.set_yscale("log")
    ax.set_ylim(*axes.change)
    ax.set_xticks(range(len(axes.slots)), axes.slots, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(axes.slots) - 0.4)
    ax.set_xlabel("Linear layer (input → output)", fontsize=8.5)
    ax.set_ylabel("‖W − W₀‖ / ‖W₀‖ (log scale)", fontsize=8.5)
    fig.suptitle("How far each layer's weights moved from their initial values", fontsize=11, y=0.985)
    return fig


def change_layer(axes: SharedAxes, metrics: dict | None, side: str) -> Figure:
    """One method's relative weight change ‖W − W₀‖/‖W₀‖ per layer at its last epoch, its half of each layer's
    slot; a layer it lacks, a missing value or a 0 (log axis) gets a note instead of a bar."""
    fig = _figure(CHANGE_SIZE)
    ax = fig.add_axes(CHANGE_RECT)
    ax.set_yscale("log")
    ax.set_ylim(*axes.change)
    ax.set_xlim(-0.6, len(axes.slots) - 0.4)
    _bare(ax, keep_x=False)
    color, width = COLORS[side], 0.4
    offset = (SIDES.index(side) - 0.5) * width
    title = _title(metrics)
    row = history.row_at(metrics, None)
    if row is None:
        _entry(fig, side, Patch(facecolor="none", edgecolor=color, label=title), 0.875)
        return fig
    have = set(history.layer_names(row))
    for i, name in enumerate(axes.slots):
        v = history.layer_value(row, name, "rel_weight_change")
        if name not in have:
            _note(ax, i + offset, "no layer")
        elif v is None:
            _note(ax, i + offset, history.missing_reason(metrics, row, name, "rel_weight_change"))
        elif v <= 0:  # log axis: no bar for 0; say whether the layer was ever trained
            _note(ax, i + offset, history.unchanged_reason(metrics, row, name))
        else:
            ax.bar(i + offset, v, width * 0.95, color=color, gid=f"{side}:{name}")
    _entry(fig, side, Patch(facecolor=color, label=f"{title}, {history.epoch_label(metrics, row)}"), 0.875)
    return fig


# ---------------------------------------------------------------------------- Compare: a pair's figure

def base(kind: str, axes: SharedAxes, last_epoch: float) -> Figure:
    """The base of Compare figure `kind` (one of KINDS): frame, grid, ticks and titles, no method's data."""
    return {"gradient_flow": lambda: flow_base(axes), "curves": lambda: curves_base(axes, last_epoch),
            "weight_change": lambda: change_base(axes)}[kind]()


def layer(kind: str, axes: SharedAxes, metrics: dict | None, side: str, last_epoch: float) -> Figure:
    """One method's layer of Compare figure `kind`, in its side's colour (last_epoch: the curves' axis)."""
    return {"gradient_flow": lambda: flow_layer(axes, metrics, side),
            "curves": lambda: curves_layer(axes, metrics, side, last_epoch),
            "weight_change": lambda: change_layer(axes, metrics, side)}[kind]()


def decoded(fig: Figure) -> Image.Image:
    """A base, rendered and decoded once (a handful of them: kept as images)."""
    return Image.open(io.BytesIO(png(fig))).convert("RGBA")


def encoded(image: Image.Image) -> bytes:
    """An image as PNG bytes, fast (compress level 1: figures are mostly flat colour, and served at once)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def cropped(fig: Figure) -> tuple[tuple[int, int], bytes]:
    """A layer, rendered, as (offset, PNG of its non-transparent part): a fraction of the pixels to keep,
    decode and blend."""
    rendered = Image.open(io.BytesIO(png(fig, transparent=True))).convert("RGBA")
    box = rendered.getchannel("A").getbbox() or (0, 0, 1, 1)
    return (box[0], box[1]), encoded(rendered.crop(box))


def compose(base_image: Image.Image, layers: list[tuple[tuple[int, int], bytes]]) -> Image.Image:
    """A pair's figure: a decoded base with cropped layers composited onto it, as RGB."""
    out = base_image.copy()
    for offset, data in layers:
        out.alpha_composite(Image.open(io.BytesIO(data)).convert("RGBA"), dest=offset)
    return out.convert("RGB")


# ------------------------------------------------------------------------------------ prediction grids

def _as_images(images) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 2 and a.shape[1] == 28 * 28:
        a = a.reshape(-1, 28, 28)
    elif a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2 and a.shape == (28, 28):
        a = a[None]
    return a


def _class_name(i) -> str:
    try:
        i = int(i)
    except (TypeError, ValueError):
        return "?"
    return SHORT_CLASSES[i] if 0 <= i < len(SHORT_CLASSES) else f"class {i}"


def predictions_figure(images, labels, preds, title: str, columns: int = 6) -> Figure:
    """A grid of test images, each captioned with the model's prediction: green if right; red, with a red
    frame and the true label underneath, if wrong. The title gives the accuracy on these images.
    `images` is (N, 28, 28) (uint8 0-255 or floats 0-1; (N, 784) is reshaped); `preds` None means the model
    is not trained yet: captions then show only the true labels."""
    imgs = _as_images(images)
    labels = np.asarray(labels).reshape(-1)
    n = min(len(imgs), len(labels))
    columns = max(1, int(columns))
    rows = max(1, math.ceil(n / columns))
    fig = new_figure(max(4.0, 1.05 * min(columns, max(n, 1)) + 0.2), 1.55 * rows + 0.45)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    if n == 0:
        ax = fig.subplots()
        placeholder(ax, "no images")
        fig.suptitle(title, fontsize=10)
        return fig
    p = None if preds is None else np.asarray(preds).reshape(-1)
    vmax = 255 if imgs.dtype == np.uint8 or float(np.nanmax(imgs[:n])) > 1.5 else 1.0
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).ravel())
    correct = 0
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        true = _class_name(labels[i])
        if p is None or i >= len(p):
            caption, color, frame, width, gid = f"true: {true}", NOTE_COLOR, "#cccccc", 0.6, "unknown"
        elif int(p[i]) == int(labels[i]):
            correct += 1
            caption, color, frame, width, gid = f"pred: {_class_name(p[i])}", RIGHT_MARK, "#cccccc", 0.6, "right"
        else:
            caption = f"pred: {_class_name(p[i])}\ntrue: {true}"
            color, frame, width, gid = WRONG_MARK, WRONG_MARK, 2.5, "wrong"
        ax.set_gid(gid)
        ax.set_xlabel(caption, fontsize=7.5, color=color, labelpad=2, linespacing=1.1)
        for spine in ax.spines.values():
            spine.set_edgecolor(frame)
            spine.set_linewidth(width)
    if p is None:
        fig.suptitle(f"{title}: not trained yet", fontsize=10)
    else:
        shown = min(n, len(p))
        fig.suptitle(f"{title}: {correct}/{shown} correct ({correct / max(shown, 1):.0%})", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------- Results: accuracy

def _accuracy(row: dict) -> tuple[float | None, tuple[float, float] | None]:
    """(shown accuracy, error bar below and above it): the seed mean and its 95% confidence interval (core.results'
    acc_ci) when known, else the seed-42 test accuracy and no bar."""
    mean = finite_number(row.get("acc_mean"))
    if mean is None:
        return finite_number(row.get("test_acc")), None
    ci = row.get("acc_ci")
    if ci and all(finite_number(v) is not None for v in ci) and ci[1] > ci[0]:
        return mean, (mean - ci[0], ci[1] - mean)
    return mean, None


def results_figure(rows: Sequence[dict], left: str | None = None, right: str | None = None) -> Figure:
    """Test accuracy per method (core.results rows) as horizontal bars, best at the top: the mean over seeds with
    its 95% confidence interval (whisker) when known, else the seed-42 accuracy; where the seeds split into
    groups (core.results.groups) each group's range is drawn instead, as the README table gives them, since a t
    interval assumes one spread; a black tick marks the seed-42 run. Dashed lines
    at chance (0.1) and at the best MLP of the FashionMNIST benchmark (0.8833). The methods named `left` and
    `right` are drawn in the left/right colours; rows without an accuracy are listed last as "not trained yet"."""
    rows = list(rows)
    scored = sorted((r for r in rows if _accuracy(r)[0] is not None), key=lambda r: -_accuracy(r)[0])
    pending = [r for r in rows if _accuracy(r)[0] is None]
    ordered = scored + pending
    fig = new_figure(7.0, max(2.4, 0.3 * len(ordered) + 1.5))
    ax = fig.subplots()
    style_axes(ax, "x")
    if not ordered:
        placeholder(ax, "no results yet")
        fig.suptitle("Test accuracy per method", fontsize=11)
        return fig
    y = np.arange(len(ordered))[::-1]  # best on top
    names = [str(r.get("title") or r.get("method", "?")) for r in ordered]
    seed_marked = False
    for yi, r in zip(y, ordered):
        acc, err = _accuracy(r)
        if acc is None:
            ax.text(0.01, yi, "not trained yet", va="center", fontsize=7.5, color=NOTE_COLOR, gid="note")
            continue
        method = r.get("method")
        color = LEFT_COLOR if method is not None and method == left else \
            RIGHT_COLOR if method is not None and method == right else NEUTRAL_COLOR
        split = [g for g in r.get("groups") or [] if finite_number(g.get("min")) is not None]
        split = split if len(split) > 1 else []
        ax.barh(yi, acc, height=0.7, color=color, xerr=None if err is None or split else [[err[0]], [err[1]]],
                gid=str(r.get("method")), alpha=0.45 if split else 1.0,
                error_kw={"ecolor": "#333333", "elinewidth": 1, "capsize": 2.5})
        for g in split:  # each group of seeds: its range, and how many seeds
            ax.plot([g["min"], g["max"]], [yi, yi], color="#222222", linewidth=3, solid_capstyle="round",
                    gid="group")
            ax.text((g["min"] + g["max"]) / 2, yi + 0.38, f"{g['n']}", ha="center", va="bottom", fontsize=6.5,
                    color="#222222", gid="group-n")
        seed = finite_number(r.get("test_acc"))
        if seed is not None and finite_number(r.get("acc_mean")) is not None:
            ax.plot([seed], [yi], marker="|", markersize=9, markeredgewidth=1.6, color="black", gid="seed42")
            seed_marked = True
        text = f"{acc:.3f}" if not split else f"{len(split)} groups"
        right_end = max([acc + (err[1] if err and not split else 0)] + [g["max"] for g in split])
        if acc > 0.35 and not split:
            ax.text(acc - 0.015, yi, text, va="center", ha="right", fontsize=7.5, color="white",
                    fontweight="bold")
        else:
            ax.text(right_end + 0.015, yi, text, va="center", ha="left", fontsize=7.5, color="#333333")
    ax.axvline(CHANCE, color="#888888", linestyle="--", linewidth=1, label=f"chance ({CHANCE:g})")
    ax.axvline(BENCHMARK_BEST_MLP, color="#2b8a3e", linestyle="--", linewidth=1.2,
               label=f"best MLP in the FashionMNIST benchmark ({BENCHMARK_BEST_MLP})")
    handles = ax.get_legend_handles_labels()[0]
    if seed_marked:
        handles.append(Line2D([], [], marker="|", markersize=9, markeredgewidth=1.6, color="black",
                              linestyle="none", label="seed 42 run (bar: mean over seeds, whisker: 95% CI)"))
        handles.append(Line2D([], [], color="#222222", linewidth=3, label="where the seeds split: each group's "
                              "range (number: its seeds)"))
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (fraction of 10,000 test images correct)", fontsize=8.5)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7.5, frameon=False)
    fig.suptitle("Test accuracy per method", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------- Results: depth

def depth_figure(rows: Sequence[dict]) -> Figure:
    """The depth study: test accuracy (mean over seeds with its 95% CI, else test_acc) vs number of hidden layers,
    and beside it first-layer / output mean|grad| at init vs depth on a log axis (how much of the gradient
    reaches the first layer). Missing or non-positive values are skipped."""
    fig = new_figure(8.0, 3.5)
    ax_acc, ax_ratio = fig.subplots(1, 2)
    for ax in (ax_acc, ax_ratio):
        style_axes(ax, "both")
    pts = sorted((r for r in rows if finite_number(r.get("depth")) is not None),
                 key=lambda r: float(r["depth"]))
    depths = [int(r["depth"]) for r in pts]
    acc = [(int(r["depth"]), *_accuracy(r)) for r in pts if _accuracy(r)[0] is not None]
    ratio = [(int(r["depth"]), finite_number(r.get("grad_ratio_init"))) for r in pts]
    ratio = [(d, v) for d, v in ratio if v is not None and v > 0]
    if acc:
        d, a, e = zip(*acc)
        e = np.array([x if x is not None else (0.0, 0.0) for x in e]).T  # the 95% CI below and above each mean
        bars = ax_acc.errorbar(d, a, yerr=e, color=LEFT_COLOR, marker="o", linewidth=1.8, capsize=3)
        bars.lines[0].set_gid("accuracy")
        for di, ai in zip(d, a):
            ax_acc.annotate(f"{ai:.3f}", (di, ai), textcoords="offset points", xytext=(6, 6), fontsize=7.5)
        ax_acc.hlines(CHANCE, 0, 1, transform=ax_acc.get_yaxis_transform(), colors="#999999",
                      linestyles="--", linewidth=0.9)
        ax_acc.text(0.01, CHANCE, "chance", transform=ax_acc.get_yaxis_transform(), ha="left", va="bottom",
                    fontsize=7, color="#888888")
        ax_acc.set_ylim(0, 1)
    else:
        placeholder(ax_acc, "not trained yet")
    if ratio:
        d, v = zip(*ratio)
        ax_ratio.plot(d, v, color=RIGHT_COLOR, marker="s", linewidth=1.8, gid="grad_ratio")
        ax_ratio.set_yscale("log")
        lo, hi = math.log10(min(v)), math.log10(max(v))
        ax_ratio.set_ylim(10 ** math.floor(lo - 0.5), 10 ** math.ceil(hi + 0.5))
        for di, vi in zip(d, v):
            ax_ratio.annotate(f"{vi:.1e}", (di, vi), textcoords="offset points", xytext=(6, 4), fontsize=7.5)
    else:
        placeholder(ax_ratio, "not trained yet")
    for ax in (ax_acc, ax_ratio):
        if depths:
            ax.set_xticks(sorted(set(depths)))
            ax.set_xlim(min(depths) - 0.7, max(depths) + 1.1)  # room for the point labels
        ax.set_xlabel("hidden layers (sigmoid, 128 units each)", fontsize=8.5)
    ax_acc.set_ylabel("test accuracy (fraction correct)", fontsize=8.5)
    ax_acc.set_title("Accuracy vs depth (mean over seeds, 95% CI)", fontsize=9.5)
    ax_ratio.set_ylabel("hidden1 / output mean|grad| at init\n(log scale)", fontsize=8.5)
    ax_ratio.set_title("Gradient reaching the first layer vs depth", fontsize=9.5)
    fig.suptitle("Depth study: deeper sigmoid nets pass less gradient back", fontsize=11)
    return fig
