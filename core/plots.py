"""The figures of training records (metrics.json dicts) and predictions, and the drawing style every figure
shares: pure functions, no Gradio. The results table's figures are core.results_plots'.

Values are read from the metrics through core.history; this module only draws them. Figures are built
with matplotlib.figure.Figure, never pyplot, so no global state is touched and the functions are safe to
call from a server's worker threads. Each returns the Figure; figure_to_png() renders one to PNG bytes.

Conventions shared by every figure:
- The left method is drawn in LEFT_COLOR, the right one in RIGHT_COLOR, in every figure.
- A missing value (None, NaN, or a method that is not trained yet) draws nothing and leaves a small grey
  note where the bar would be ("frozen", "not trained yet", ...): the functions never raise on them.
- Log axes never see a value <= 0: such a value draws no bar and is marked "0" instead.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from . import history
from .data import CLASSES

LEFT_COLOR = "#1f6fb4"  # blue
RIGHT_COLOR = "#e0620d"  # orange
NEUTRAL_COLOR = "#8a94a6"  # methods that are neither left nor right
NOTE_COLOR = "#7a7a7a"  # the small grey notes that stand in for missing values
RIGHT_MARK = "#1a9641"  # predictions: right
WRONG_MARK = "#d7191c"  # predictions: wrong
CHANCE = 0.1  # 10 classes
DPI = 100
SHORT_CLASSES = tuple({"T-shirt/top": "T-shirt"}.get(c, c) for c in CLASSES)

# metric key -> (short name, axis label); the statistics are ratios or per-weight magnitudes, so unitless
KEY_LABELS = {
    "grad_mean_abs": ("mean|grad|", "mean |∂L/∂W| per weight"),
    "grad_max_abs": ("max|grad|", "max |∂L/∂W|"),
    "grad_norm": ("‖grad‖", "‖∂L/∂W‖ (Frobenius)"),
    "update_ratio": ("update/weight", "std(update) / std(W)"),
    "weight_std": ("std(W)", "std(W)"),
    "rel_weight_change": ("‖W−W₀‖/‖W₀‖", "‖W − W₀‖ / ‖W₀‖"),
    "saturation": ("saturation", "fraction of saturated units"),
    "error_mean_abs": ("mean|error|", "mean |∂ℓ/∂z| per image and unit"),  # the backpropagated error
    "activation_std": ("std(act)", "std of the layer's activations"),
}

# statistics spanning decades get a log axis; the others (saturation, weight_std, activation_std) a linear one
LOG_KEYS = frozenset({"grad_mean_abs", "grad_max_abs", "grad_norm", "error_mean_abs", "update_ratio",
                      "rel_weight_change"})

__all__ = ["CHANCE", "KEY_LABELS", "LEFT_COLOR", "LOG_KEYS", "RIGHT_COLOR", "figure_to_png",
           "gradient_flow_figure", "lighten", "new_figure", "placeholder", "predictions_figure", "style_axes",
           "training_curves_figure", "weight_change_figure"]


# -------------------------------------------------------------------- helpers (shared with results_plots)

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
    top = hi + max(0.8, 0.5 * (hi - bottom))  # ~1/3 of the axes free above the tallest bar
    return 10.0**bottom, 10.0**top


def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.1e}" if x != 0 else "0")


# ------------------------------------------------------------------------------------------ gradient flow

def _gradient_panel(ax: Axes, metrics: dict | None, epoch: int | None, key: str, color: str,
                    log: bool) -> list[float]:
    """Grouped bars (init, chosen epoch) per layer; returns the values drawn, for the shared y limits.
    The init bars are left out when init has no value of `key` at all (update_ratio)."""
    row = history.row_at(metrics, epoch)
    if row is None:
        ax.set_title(history.method_title(metrics) if metrics else "not trained yet", fontsize=9.5)
        placeholder(ax, "not trained yet")
        return []
    names = history.layer_names(row)
    ax.set_title(f"{history.method_title(metrics)}\n{history.epoch_label(metrics, row)}", fontsize=9.5)
    if not names:
        placeholder(ax, "no per-layer diagnostics recorded")
        return []
    init = history.rows(metrics)[0]
    series = [("epoch", row, color, f"epoch {history.epoch_of(row)}")]
    if row is not init and any(history.layer_value(init, n, key) is not None for n in names):
        series.insert(0, ("init", init, lighten(color), "init (epoch 0)"))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    drawn: list[float] = []
    labelled: set[str] = set()
    for i, name in enumerate(names):
        values = [history.layer_value(r, name, key) for _, r, _, _ in series]
        notes = [None if v is not None and (v > 0 or not log) else _note_text(metrics, r, name, key, v)
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
            drawn.append(v)
    ax.set_xticks(x, names, rotation=40, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("Linear layer (input → output)", fontsize=8.5)
    if log:  # the vanishing indicator: how much of the output layer's signal reaches the first layer
        short = KEY_LABELS.get(key, (key, key))[0]
        ratio = history.gradient_ratio(metrics, history.epoch_of(row), key)
        text = f"{names[0]} / {names[-1]} {short}\n= {_fmt_ratio(ratio)}"
        first = history.layer_value(row, names[0], key)
        if ratio is None and first is None:
            text += f" ({names[0]} {history.missing_reason(metrics, row, names[0], key)})"
        init_ratio = history.gradient_ratio(metrics, 0, key)
        if row is not init and init_ratio is not None:
            text += f"  (init {_fmt_ratio(init_ratio)})"
        ax.text(0.02, 0.97, text, transform=ax.transAxes, ha="left", va="top", fontsize=7.5, gid="ratio",
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cccccc", "linewidth": 0.6})
    if drawn:
        ax.legend(loc="upper right", fontsize=7, frameon=True, framealpha=0.9, handlelength=1.2)
    return drawn


def _note_text(metrics: dict, row: dict, name: str, key: str, value: float | None) -> str:
    return "0" if value is not None else history.missing_reason(metrics, row, name, key)


def gradient_flow_figure(metrics_left: dict | None, metrics_right: dict | None, epoch: int | None = None,
                         key: str = "grad_mean_abs") -> Figure:
    """Per-layer gradient magnitude (hidden1 ... output) of two methods, side by side on one shared log axis.

    Each panel groups two bars per layer: init (epoch 0, lighter) and `epoch` (full colour). `epoch` is
    used for both methods, clamped to each one's recorded range (None = each one's last epoch); at epoch 0
    only the init bars are drawn. Each panel notes first-layer / output-layer `key`, the vanishing
    indicator. `key` is any per-layer statistic of metrics.json (see KEY_LABELS); those in LOG_KEYS get the
    log axis, the others (saturation, weight_std, activation_std) a linear one (and no ratio). Missing values
    (frozen or not-yet-added layers of layer-wise training, saturation of the output, a statistic an older
    metrics.json did not record) draw a grey note instead of a bar, as do zeros on the log axis.
    """
    log = key in LOG_KEYS
    fig = new_figure(8.0, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    drawn: list[float] = []
    for ax, metrics, color in zip(axes, (metrics_left, metrics_right), (LEFT_COLOR, RIGHT_COLOR)):
        style_axes(ax)
        if log:
            ax.set_yscale("log")
        drawn += _gradient_panel(ax, metrics, epoch, key, color, log)
    if log:
        limits = _log_limits(drawn)
        if limits is None:
            limits = (1e-8, 1.0)
            axes[0].text(0.5, 0.5, "no positive values to show", transform=axes[0].transAxes, ha="center",
                         fontsize=8, color=NOTE_COLOR)
    else:
        limits = (0.0, max(drawn, default=0.0) * 1.3 or 1.0)  # headroom for the legend
    axes[0].set_ylim(*limits)
    axes[0].set_ylabel(KEY_LABELS.get(key, (key, key))[1] + ("\n(log scale)" if log else ""), fontsize=8.5)
    axes[1].tick_params(axis="y", labelleft=True)  # both panels keep their tick labels
    fig.suptitle("Gradient flow: how much gradient reaches each layer" if key.startswith("grad")
                 else f"Per-layer {KEY_LABELS.get(key, (key, key))[1]}", fontsize=11)
    return fig


# ----------------------------------------------------------------------------------------- weight change

def weight_change_figure(metrics_left: dict | None, metrics_right: dict | None,
                         epoch: int | None = None) -> Figure:
    """Relative weight change ‖W − W₀‖/‖W₀‖ per layer at `epoch` (None = last; clamped per method), left
    vs right method as grouped bars on a log axis. Layers a model lacks (a 3-layer net has no hidden4), that
    never moved (0, e.g. at init) or are missing get a grey note instead of a bar."""
    fig = new_figure(7.0, 3.6)
    ax = fig.subplots()
    style_axes(ax)
    ax.set_yscale("log")
    sides = [(m, history.row_at(m, epoch), c)
             for m, c in ((metrics_left, LEFT_COLOR), (metrics_right, RIGHT_COLOR))]
    names = history.all_layer_names([row for _, row, _ in sides])
    if not names:
        placeholder(ax, "not trained yet" if all(r is None for _, r, _ in sides)
                     else "no per-layer diagnostics recorded")
        fig.suptitle("Relative weight change per layer", fontsize=11)
        return fig
    x = np.arange(len(names))
    width = 0.4
    drawn: list[float] = []
    handles = []
    for s, (metrics, row, color) in enumerate(sides):
        offset = (s - 0.5) * width
        title = history.method_title(metrics) if metrics else "not trained yet"
        if row is None:
            handles.append(Patch(facecolor="none", edgecolor=color, label=f"{title}"))
            continue
        have = set(history.layer_names(row))
        for i, name in enumerate(names):
            v = history.layer_value(row, name, "rel_weight_change")
            if name not in have:
                _note(ax, x[i] + offset, "no layer")
            elif v is None:
                _note(ax, x[i] + offset, history.missing_reason(metrics, row, name, "rel_weight_change"))
            elif v <= 0:  # log axis: no bar for 0; say whether the layer was ever trained
                _note(ax, x[i] + offset, history.unchanged_reason(metrics, row, name))
            else:
                ax.bar(x[i] + offset, v, width * 0.95, color=color, gid=f"{s}:{name}")
                drawn.append(v)
        handles.append(Patch(facecolor=color, label=f"{title}, {history.epoch_label(metrics, row)}"))
    limits = _log_limits(drawn)
    if limits is None:
        limits = (1e-6, 1.0)
        ax.text(0.5, 0.55, "no weight has moved yet (all changes are 0)", transform=ax.transAxes,
                ha="center", fontsize=9, color=NOTE_COLOR)
    ax.set_ylim(*limits)
    ax.set_xticks(x, names, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("Linear layer (input → output)", fontsize=8.5)
    ax.set_ylabel("‖W − W₀‖ / ‖W₀‖ (log scale)", fontsize=8.5)
    ax.legend(handles=handles, loc="upper left", fontsize=7.5, framealpha=0.9)
    fig.suptitle("How far each layer's weights moved from their initial values", fontsize=11)
    return fig


# --------------------------------------------------------------------------------------- training curves

def training_curves_figure(metrics_left: dict | None, metrics_right: dict | None) -> Figure:
    """Loss and accuracy vs epoch of both methods overlaid: colour = method, solid = validation,
    dashed = train; epoch 0 is the untrained model. ax.lines holds exactly these curves (2 per trained
    method per panel); layer-wise stage boundaries are faint vertical lines (a LineCollection), chance
    accuracy a dotted one. A loss spanning more than 30x switches that panel to a log axis."""
    fig = new_figure(8.0, 3.8)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax in (ax_loss, ax_acc):
        style_axes(ax, "both")
        ax.set_xlabel("epoch", fontsize=8.5)
    handles = []
    any_stages = False
    last_epoch = 0.0
    losses: list[float] = []
    for metrics, color in ((metrics_left, LEFT_COLOR), (metrics_right, RIGHT_COLOR)):
        if not history.rows(metrics):
            handles.append(Line2D([], [], color=color, alpha=0.4, label=f"{history.method_title(metrics)} "
                                  "(not trained yet)" if metrics else "not trained yet"))
            continue
        for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
            for split, style in (("train", "--"), ("val", "-")):
                x, y = history.series(metrics, f"{split}_{what}")
                ax.plot(x, y, style, color=color, linewidth=1.6 if split == "val" else 1.1,
                        alpha=1.0 if split == "val" else 0.85, gid=f"{split}_{what}")
                if what == "loss":
                    losses += [v for v in y if np.isfinite(v)]
            last_epoch = max(last_epoch, float(x[-1]))
        boundaries = history.stage_boundaries(metrics)
        if boundaries:
            any_stages = True
            for ax in (ax_loss, ax_acc):
                ax.vlines(boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=color,
                          linestyles=":", linewidth=0.8, alpha=0.5, gid="stage_boundaries")
        handles.append(Line2D([], [], color=color, linewidth=2.2, label=history.method_title(metrics)))
    handles += [Line2D([], [], color="#444444", linestyle="-", label="validation"),
                Line2D([], [], color="#444444", linestyle="--", linewidth=1.1, label="train")]
    if any_stages:
        handles.append(Line2D([], [], color="#999999", linestyle=":", label="layer-wise stage boundary"))
    ax_acc.hlines(CHANCE, 0, 1, transform=ax_acc.get_yaxis_transform(), colors="#999999",
                  linestyles=(0, (1, 2)), linewidth=0.9, gid="chance")
    handles.append(Line2D([], [], color="#999999", linestyle=(0, (1, 2)), label=f"chance ({CHANCE:g})"))
    ax_acc.set_ylim(0, 1)
    ax_acc.set_ylabel("accuracy (fraction correct)", fontsize=8.5)
    ax_acc.set_title("Accuracy", fontsize=10)
    positive = [v for v in losses if v > 0]
    if positive and max(positive) / min(positive) > 30:
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("cross-entropy loss (log scale)", fontsize=8.5)
    else:
        ax_loss.set_ylabel("cross-entropy loss (nats)", fontsize=8.5)
    ax_loss.set_title("Loss", fontsize=10)
    if not losses:
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "not trained yet", transform=ax.transAxes, ha="center", va="center",
                    fontsize=10, color=NOTE_COLOR)
    for ax in (ax_loss, ax_acc):
        ax.set_xlim(0, max(last_epoch, 1))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8,
               frameon=False)
    fig.suptitle("Training curves", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------- predictions

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


# ---------------------------------------------------------------------------------------------- rendering

def figure_to_png(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered to PNG bytes (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
    return buf.getvalue()
