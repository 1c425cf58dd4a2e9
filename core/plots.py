"""Every figure the app shows, drawn from metrics dicts (metrics.json) and arrays: pure functions, no Gradio.

Figures are built with matplotlib.figure.Figure, never pyplot, so no global state is touched and the
functions are safe to call from a server's worker threads. Each returns the Figure; figure_to_png()
renders one to PNG bytes.

Conventions shared by every figure:
- The left method is drawn in LEFT_COLOR, the right one in RIGHT_COLOR, in every figure.
- A missing value (None, NaN, or a method that is not trained yet) draws nothing and leaves a small grey
  note where the bar would be ("frozen", "not trained yet", ...): the functions never raise on them.
- Log axes never see a value <= 0: such a value draws no bar and is marked "0" instead.
"""
from __future__ import annotations

import io
import math
from typing import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .data import CLASSES

LEFT_COLOR = "#1f6fb4"  # blue
RIGHT_COLOR = "#e0620d"  # orange
NEUTRAL_COLOR = "#8a94a6"  # methods that are neither left nor right
NOTE_COLOR = "#7a7a7a"  # the small grey notes that stand in for missing values
RIGHT_MARK = "#1a9641"  # predictions: right
WRONG_MARK = "#d7191c"  # predictions: wrong
CHANCE = 0.1  # 10 classes
BENCHMARK_BEST_MLP = 0.8833  # best MLP in the FashionMNIST benchmark (zalandoresearch/fashion-mnist)
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
}

# statistics spanning decades get a log axis; the others (saturation, weight_std) a linear one
LOG_KEYS = frozenset({"grad_mean_abs", "grad_max_abs", "grad_norm", "update_ratio", "rel_weight_change"})

__all__ = ["LEFT_COLOR", "RIGHT_COLOR", "CHANCE", "BENCHMARK_BEST_MLP", "KEY_LABELS", "method_title",
           "gradient_ratio", "gradient_flow_figure", "weight_change_figure", "training_curves_figure",
           "predictions_figure", "results_figure", "depth_figure", "figure_to_png"]


# ----------------------------------------------------------------------------------------------- helpers

def _new_figure(width: float = 6.0, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.04, hspace=0.04)
    return fig


def _style(ax: Axes, grid_axis: str = "y") -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.grid(True, axis=grid_axis, which="major", color="#e4e4e4", linewidth=0.7)
    ax.set_axisbelow(True)


def _lighten(color: str, amount: float = 0.55) -> tuple[float, float, float]:
    """`color` mixed with white (amount 0 = unchanged, 1 = white)."""
    from matplotlib.colors import to_rgb
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _number(x) -> float | None:
    """A finite float, or None for None / NaN / inf / anything non-numeric."""
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _placeholder(ax: Axes, text: str) -> None:
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


def method_title(metrics: dict | None) -> str:
    """The display name of a metrics dict: its "title" if it has one, else the registry's, else its name."""
    if not metrics:
        return "(none)"
    if metrics.get("title"):
        return str(metrics["title"])
    name = str(metrics.get("method", "?"))
    from .methods import METHODS
    return METHODS[name].title if name in METHODS else name


def _history(metrics: dict | None) -> list[dict]:
    return list((metrics or {}).get("history") or [])


def _row_at(metrics: dict | None, epoch: int | None) -> dict | None:
    """The history row of `epoch`, clamped to what was recorded (None = the last); None if no history.

    Epochs beyond the last give the last; negative ones give the first (init). If the exact epoch is
    missing the latest row before it is used.
    """
    hist = _history(metrics)
    if not hist:
        return None
    if epoch is None:
        return hist[-1]
    epoch = int(epoch)
    before = [r for r in hist if r.get("epoch", 0) <= epoch]
    return max(before, key=lambda r: r.get("epoch", 0)) if before else hist[0]


def _layer_value(row: dict | None, name: str, key: str) -> float | None:
    for layer in (row or {}).get("layers") or []:
        if layer.get("name") == name:
            return _number(layer.get(key))
    return None


def _layer_names(row: dict | None) -> list[str]:
    return [layer.get("name", f"layer{i + 1}") for i, layer in enumerate((row or {}).get("layers") or [])]


def _layer_order(name: str) -> tuple[int, str]:
    """hidden1 < hidden2 < ... < hidden10 < output."""
    if name.startswith("hidden") and name[6:].isdigit():
        return int(name[6:]), name
    return (10**6, name) if name == "output" else (10**5, name)


def _missing_reason(metrics: dict, row: dict, name: str, key: str) -> str:
    """Why a layer statistic is None, in two words, for the note under the missing bar."""
    if key == "saturation":
        activation = (metrics.get("config") or {}).get("activation")
        if name == "output" or activation == "relu":
            return "n/a" if name == "output" else "n/a (ReLU)"
    epoch = row.get("epoch", 0)
    if key == "update_ratio" and epoch == 0:
        return "no update yet"
    trained_before = any(_number(_layer_value(r, name, "grad_mean_abs")) is not None
                         for r in _history(metrics) if r.get("epoch", 0) < epoch)
    if trained_before:
        return "frozen"
    if _layer_value(row, name, "grad_mean_abs") is None:
        return "not trained yet"
    return "n/a"


def _epoch_label(metrics: dict, row: dict) -> str:
    hist = _history(metrics)
    epoch = row.get("epoch", 0)
    label = f"epoch {epoch}"
    if epoch == 0:
        label += " (init)"
    elif hist and row is hist[-1]:
        label += " (stopped early)" if metrics.get("stopped") else " (last)"
    stages = (metrics.get("config") or {}).get("stages") or []
    if stages and "stage" in row:
        label += f", stage {row['stage']}/{len(stages)}"
    return label


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


def gradient_ratio(metrics: dict | None, epoch: int | None = 0, key: str = "grad_mean_abs") -> float | None:
    """First layer's statistic over the output layer's at `epoch` (0 = init, None = last, clamped): the
    vanishing-gradient indicator (~4e-7 for the 7-layer baseline at init, ~0.1 for ReLU). None when
    either value is missing or the output's is 0."""
    row = _row_at(metrics, epoch)
    names = _layer_names(row)
    if len(names) < 2:
        return None
    first, last = _layer_value(row, names[0], key), _layer_value(row, names[-1], key)
    if first is None or not last:
        return None
    return first / last


# ------------------------------------------------------------------------------------------ gradient flow

def _gradient_panel(ax: Axes, metrics: dict | None, epoch: int | None, key: str, color: str,
                    log: bool) -> list[float]:
    """Grouped bars (init, chosen epoch) per layer; returns the values drawn, for the shared y limits.
    The init bars are left out when init has no value of `key` at all (update_ratio)."""
    row = _row_at(metrics, epoch)
    if row is None:
        ax.set_title(method_title(metrics) if metrics else "not trained yet", fontsize=9.5)
        _placeholder(ax, "not trained yet")
        return []
    names = _layer_names(row)
    ax.set_title(f"{method_title(metrics)}\n{_epoch_label(metrics, row)}", fontsize=9.5)
    if not names:
        _placeholder(ax, "no per-layer diagnostics recorded")
        return []
    init = _history(metrics)[0]
    series = [("epoch", row, color, f"epoch {row.get('epoch', 0)}")]
    if row is not init and any(_layer_value(init, n, key) is not None for n in names):
        series.insert(0, ("init", init, _lighten(color), "init (epoch 0)"))
    width = 0.8 / len(series)
    x = np.arange(len(names))
    drawn: list[float] = []
    labelled: set[str] = set()
    for i, name in enumerate(names):
        values = [_layer_value(r, name, key) for _, r, _, _ in series]
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
        ratio = gradient_ratio(metrics, row.get("epoch", 0), key)
        text = f"{names[0]} / {names[-1]} {short}\n= {_fmt_ratio(ratio)}"
        first = _layer_value(row, names[0], key)
        if ratio is None and first is None:
            text += f" ({names[0]} {_missing_reason(metrics, row, names[0], key)})"
        init_ratio = gradient_ratio(metrics, 0, key)
        if row is not init and init_ratio is not None:
            text += f"  (init {_fmt_ratio(init_ratio)})"
        ax.text(0.02, 0.97, text, transform=ax.transAxes, ha="left", va="top", fontsize=7.5, gid="ratio",
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#cccccc", linewidth=0.6))
    if drawn:
        ax.legend(loc="upper right", fontsize=7, frameon=True, framealpha=0.9, handlelength=1.2)
    return drawn


def _note_text(metrics: dict, row: dict, name: str, key: str, value: float | None) -> str:
    return "0" if value is not None else _missing_reason(metrics, row, name, key)


def gradient_flow_figure(metrics_left: dict | None, metrics_right: dict | None, epoch: int | None = None,
                         key: str = "grad_mean_abs") -> Figure:
    """Per-layer gradient magnitude (hidden1 ... output) of two methods, side by side on one shared log axis.

    Each panel groups two bars per layer: init (epoch 0, lighter) and `epoch` (full colour). `epoch` is
    used for both methods, clamped to each one's recorded range (None = each one's last epoch); at epoch 0
    only the init bars are drawn. Each panel notes first-layer / output-layer `key`, the vanishing
    indicator. `key` is any per-layer statistic of metrics.json (see KEY_LABELS); those in LOG_KEYS get the
    log axis, saturation and weight_std a linear one (and no ratio). Missing values (frozen or
    not-yet-added layers of layer-wise training, saturation of the output) draw a grey note instead of a
    bar, as do zeros on the log axis.
    """
    log = key in LOG_KEYS
    fig = _new_figure(8.0, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    drawn: list[float] = []
    for ax, metrics, color in zip(axes, (metrics_left, metrics_right), (LEFT_COLOR, RIGHT_COLOR)):
        _style(ax)
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
    fig = _new_figure(7.0, 3.6)
    ax = fig.subplots()
    _style(ax)
    ax.set_yscale("log")
    sides = [(m, _row_at(m, epoch), c) for m, c in ((metrics_left, LEFT_COLOR), (metrics_right, RIGHT_COLOR))]
    names = sorted({n for _, row, _ in sides for n in _layer_names(row)}, key=_layer_order)
    if not names:
        _placeholder(ax, "not trained yet" if all(r is None for _, r, _ in sides)
                     else "no per-layer diagnostics recorded")
        fig.suptitle("Relative weight change per layer", fontsize=11)
        return fig
    x = np.arange(len(names))
    width = 0.4
    drawn: list[float] = []
    handles = []
    for s, (metrics, row, color) in enumerate(sides):
        offset = (s - 0.5) * width
        title = method_title(metrics) if metrics else "not trained yet"
        if row is None:
            handles.append(Patch(facecolor="none", edgecolor=color, label=f"{title}"))
            continue
        have = set(_layer_names(row))
        for i, name in enumerate(names):
            v = _layer_value(row, name, "rel_weight_change")
            if name not in have:
                _note(ax, x[i] + offset, "no layer")
            elif v is None:
                _note(ax, x[i] + offset, _missing_reason(metrics, row, name, "rel_weight_change"))
            elif v <= 0:  # log axis: no bar for 0; say whether the layer was ever trained
                trained = any(_layer_value(r, name, "grad_mean_abs") is not None
                              for r in _history(metrics) if 0 < r.get("epoch", 0) <= row.get("epoch", 0))
                _note(ax, x[i] + offset, "unchanged (0)" if trained or row.get("epoch", 0) == 0
                      else "not trained yet")
            else:
                ax.bar(x[i] + offset, v, width * 0.95, color=color, gid=f"{s}:{name}")
                drawn.append(v)
        handles.append(Patch(facecolor=color, label=f"{title}, {_epoch_label(metrics, row)}"))
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

def _series(hist: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([r.get("epoch", i) for i, r in enumerate(hist)], dtype=float)
    y = np.array([np.nan if _number(r.get(key)) is None else float(r[key]) for r in hist], dtype=float)
    return x, y


def _stage_boundaries(metrics: dict) -> list[float]:
    """Epochs between layer-wise stages (half-way between a stage's last epoch and the next one's first)."""
    hist = _history(metrics)
    return [(a.get("epoch", 0) + b.get("epoch", 0)) / 2 for a, b in zip(hist, hist[1:])
            if a.get("stage") is not None and b.get("stage") is not None and a["stage"] != b["stage"]]


def training_curves_figure(metrics_left: dict | None, metrics_right: dict | None) -> Figure:
    """Loss and accuracy vs epoch of both methods overlaid: colour = method, solid = validation,
    dashed = train; epoch 0 is the untrained model. ax.lines holds exactly these curves (2 per trained
    method per panel); layer-wise stage boundaries are faint vertical lines (a LineCollection), chance
    accuracy a dotted one. A loss spanning more than 30x switches that panel to a log axis."""
    fig = _new_figure(8.0, 3.8)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax in (ax_loss, ax_acc):
        _style(ax, "both")
        ax.set_xlabel("epoch", fontsize=8.5)
    handles = []
    any_stages = False
    last_epoch = 0.0
    losses: list[float] = []
    for metrics, color in ((metrics_left, LEFT_COLOR), (metrics_right, RIGHT_COLOR)):
        hist = _history(metrics)
        if not hist:
            handles.append(Line2D([], [], color=color, alpha=0.4, label=f"{method_title(metrics)} (not trained yet)"
                                  if metrics else "not trained yet"))
            continue
        for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
            for split, style in (("train", "--"), ("val", "-")):
                x, y = _series(hist, f"{split}_{what}")
                ax.plot(x, y, style, color=color, linewidth=1.6 if split == "val" else 1.1,
                        alpha=1.0 if split == "val" else 0.85, gid=f"{split}_{what}")
                if what == "loss":
                    losses += [v for v in y if np.isfinite(v)]
            last_epoch = max(last_epoch, float(hist[-1].get("epoch", len(hist) - 1)))
        boundaries = _stage_boundaries(metrics)
        if boundaries:
            any_stages = True
            for ax in (ax_loss, ax_acc):
                ax.vlines(boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors=color,
                          linestyles=":", linewidth=0.8, alpha=0.5, gid="stage_boundaries")
        handles.append(Line2D([], [], color=color, linewidth=2.2, label=method_title(metrics)))
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
    fig = _new_figure(max(4.0, 1.05 * min(columns, max(n, 1)) + 0.2), 1.55 * rows + 0.45)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
    if n == 0:
        ax = fig.subplots()
        _placeholder(ax, "no images")
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


# ----------------------------------------------------------------------------------------------- results

def _accuracy(row: dict) -> tuple[float | None, float]:
    """(shown accuracy, error bar): the seed mean ± std when known, else the seed-42 test accuracy."""
    mean = _number(row.get("acc_mean"))
    if mean is not None:
        return mean, _number(row.get("acc_std")) or 0.0
    return _number(row.get("test_acc")), 0.0


def results_figure(rows: Sequence[dict], left: str | None = None, right: str | None = None) -> Figure:
    """Test accuracy per method as horizontal bars, best at the top: the mean over seeds ± std (error bar)
    when known, else the seed-42 accuracy; a black tick marks the seed-42 run. Dashed lines at chance (0.1)
    and at the best MLP of the FashionMNIST benchmark (0.8833). The methods named `left` and `right` are
    drawn in the left/right colours; rows without an accuracy are listed last as "not trained yet"."""
    rows = list(rows)
    scored = sorted((r for r in rows if _accuracy(r)[0] is not None), key=lambda r: -_accuracy(r)[0])
    pending = [r for r in rows if _accuracy(r)[0] is None]
    ordered = scored + pending
    fig = _new_figure(7.0, max(2.4, 0.3 * len(ordered) + 1.5))
    ax = fig.subplots()
    _style(ax, "x")
    if not ordered:
        _placeholder(ax, "no results yet")
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
        ax.barh(yi, acc, height=0.7, color=color, xerr=err if err else None, gid=str(r.get("method")),
                error_kw=dict(ecolor="#333333", elinewidth=1, capsize=2.5))
        seed = _number(r.get("test_acc"))
        if seed is not None and _number(r.get("acc_mean")) is not None:
            ax.plot([seed], [yi], marker="|", markersize=9, markeredgewidth=1.6, color="black", gid="seed42")
            seed_marked = True
        text = f"{acc:.3f}" + (f" ± {err:.3f}" if err else "")
        if acc > 0.35:
            ax.text(acc - 0.015, yi, text, va="center", ha="right", fontsize=7.5, color="white",
                    fontweight="bold")
        else:
            ax.text(acc + err + 0.015, yi, text, va="center", ha="left", fontsize=7.5, color="#333333")
    ax.axvline(CHANCE, color="#888888", linestyle="--", linewidth=1, label=f"chance ({CHANCE:g})")
    ax.axvline(BENCHMARK_BEST_MLP, color="#2b8a3e", linestyle="--", linewidth=1.2,
               label=f"best MLP in the FashionMNIST benchmark ({BENCHMARK_BEST_MLP})")
    handles = ax.get_legend_handles_labels()[0]
    if seed_marked:
        handles.append(Line2D([], [], marker="|", markersize=9, markeredgewidth=1.6, color="black",
                              linestyle="none", label="seed 42 run (bar: mean ± std over seeds)"))
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlim(0, 1)
    ax.set_xlabel("test accuracy (fraction of 10,000 test images correct)", fontsize=8.5)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7.5, frameon=False)
    fig.suptitle("Test accuracy per method", fontsize=11)
    return fig


# ------------------------------------------------------------------------------------------------- depth

def depth_figure(rows: Sequence[dict]) -> Figure:
    """The depth study: test accuracy (mean ± std over seeds, else test_acc) vs number of hidden layers,
    and beside it first-layer / output mean|grad| at init vs depth on a log axis (how much of the gradient
    reaches the first layer). Missing or non-positive values are skipped."""
    fig = _new_figure(8.0, 3.5)
    ax_acc, ax_ratio = fig.subplots(1, 2)
    for ax in (ax_acc, ax_ratio):
        _style(ax, "both")
    pts = sorted((r for r in rows if _number(r.get("depth")) is not None), key=lambda r: float(r["depth"]))
    depths = [int(r["depth"]) for r in pts]
    acc = [(int(r["depth"]), *_accuracy(r)) for r in pts if _accuracy(r)[0] is not None]
    ratio = [(int(r["depth"]), _number(r.get("grad_ratio_init"))) for r in pts]
    ratio = [(d, v) for d, v in ratio if v is not None and v > 0]
    if acc:
        d, a, e = zip(*acc)
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
        _placeholder(ax_acc, "not trained yet")
    if ratio:
        d, v = zip(*ratio)
        ax_ratio.plot(d, v, color=RIGHT_COLOR, marker="s", linewidth=1.8, gid="grad_ratio")
        ax_ratio.set_yscale("log")
        lo, hi = math.log10(min(v)), math.log10(max(v))
        ax_ratio.set_ylim(10 ** math.floor(lo - 0.5), 10 ** math.ceil(hi + 0.5))
        for di, vi in zip(d, v):
            ax_ratio.annotate(f"{vi:.1e}", (di, vi), textcoords="offset points", xytext=(6, 4), fontsize=7.5)
    else:
        _placeholder(ax_ratio, "not trained yet")
    for ax in (ax_acc, ax_ratio):
        if depths:
            ax.set_xticks(sorted(set(depths)))
            ax.set_xlim(min(depths) - 0.7, max(depths) + 1.1)  # room for the point labels
        ax.set_xlabel("hidden layers (sigmoid, 128 units each)", fontsize=8.5)
    ax_acc.set_ylabel("test accuracy (fraction correct)", fontsize=8.5)
    ax_acc.set_title("Accuracy vs depth (mean ± std over seeds)", fontsize=9.5)
    ax_ratio.set_ylabel("hidden1 / output mean|grad| at init\n(log scale)", fontsize=8.5)
    ax_ratio.set_title("Gradient reaching the first layer vs depth", fontsize=9.5)
    fig.suptitle("Depth study: deeper sigmoid nets pass less gradient back", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------- rendering

def figure_to_png(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered to PNG bytes (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
    return buf.getvalue()
