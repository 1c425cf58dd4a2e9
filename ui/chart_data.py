"""The data behind the browser chart of Compare and the Playground (assets/charts.js): every recorded epoch's
per-layer statistics and training curves of a method, from its metrics dict, and a pair's payload with the axes
both methods share. JSON-ready dicts, no Gradio, no drawing (its colours and axis words are ui.figures').

A method's data holds, per statistic, one row per recorded epoch with one entry per layer (input to output): the
value as recorded (a finite float), or, where there is none, the reason as core.history words it ("frozen",
"no update yet", "n/a (ReLU)", ...). A statistic the checkpoint never recorded at all is {"missing": "not
recorded"} instead of rows of the same words. The browser picks the row of any epoch itself (the last one at
or before it, like history.row_at), so the statistic selector and the epoch player never call the server.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass

from core import history, theory

from .figures import CHANCE, KEY_LABELS, LEFT_COLOR, RIGHT_COLOR, lighten

__all__ = ["CURVES", "DEFAULT_STAT", "NOT_RECORDED", "STATS", "Stat", "THEORY", "log_limits", "method_data",
           "packed", "pair_data", "reasons_like_history", "theory_rows", "thinned", "unpacked", "until"]

NOT_RECORDED = "not recorded"
MAX_ROWS = 101  # epochs a method sends to the chart: all of a 100-epoch run's (thinned)
ROWS = ("values", "predicted", "notes")  # a statistic's per-epoch rows (the theory statistics have all three)
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc")


@dataclass(frozen=True)
class Stat:
    """One choice of the chart's statistic selector."""
    key: str  # the per-layer key in metrics.json
    name: str  # the selector's button
    axis: str  # what the axis measures
    about: str  # one sentence under the selector
    log: bool
    guide: float | None = None  # a reference line (the healthy update ratio)
    guide_label: str = ""
    init: bool = True  # draw the init (epoch 0) bars beside the chosen epoch's
    fixed: tuple[float, float] | None = None  # axis limits whatever the values (a share: 0 to 1)


STATS = {s.key: s for s in (
    Stat("grad_mean_abs", "Weight gradient", KEY_LABELS["grad_mean_abs"][1],
         "How much gradient reaches each layer's weights. It scales with the layer's input, so hidden1 "
         "(fed raw pixels) is not like the others.", log=True),
    Stat("error_mean_abs", "Error |∂L/∂z|", KEY_LABELS["error_mean_abs"][1],
         "The error signal arriving at each layer's pre-activation z, per image: unlike the weight gradient it "
         "does not scale with the layer's input.", log=True),
    Stat("update_ratio", "Update / weight", KEY_LABELS["update_ratio"][1],
         "How far one step's update moves the weights relative to their size: around 1e-3 is healthy, far below "
         "it the layer barely learns (unless a schedule has taken the learning rate down).", log=True, guide=1e-3,
         guide_label="healthy ≈ 1e-3"),
    Stat("saturation", "Saturation", KEY_LABELS["saturation"][1],
         "The share of units stuck where the activation is flat (its derivative ~0): saturated units pass "
         "almost no gradient back.", log=False, fixed=(0.0, 1.0)),
    Stat("activation_std", "Activation std", KEY_LABELS["activation_std"][1],
         "The spread of each layer's outputs: shrinking or exploding from layer to layer is the forward side "
         "of a vanishing or exploding gradient.", log=False),
    Stat("rel_weight_change", "Weight change", KEY_LABELS["rel_weight_change"][1],
         "How far each layer's weights have moved from their initial values (0 at init).", log=True, init=False),
    Stat("signal_std", "Forward signal", KEY_LABELS["signal_std"][1],
         "Does each layer's output still depend on the image? Each unit's spread across the probe images, the "
         "median over units (output: the logits). Near 0 the layer says the same thing for every image.", log=True),
    Stat("gain_backward", "Why ← (theory)", KEY_LABELS["gain_backward"][1],
         "The error's gain from the layer above down to this one, measured (bars), beside what first principles "
         "predict from the recorded derivative, weight scale and normalization (◆: derivative × std(W) × √fan). "
         "Below 1 the error shrinks on its way back.", log=True, guide=1.0, guide_label="gain 1: nothing lost"),
    Stat("gain_forward", "Why → (theory)", KEY_LABELS["gain_forward"][1],
         "The signal's gain from the layer below up to this one, measured (bars), beside the prediction (◆). "
         "Below 1 the image-to-image differences fade on the way up.", log=True, guide=1.0,
         guide_label="gain 1: nothing lost"),
)}
THEORY = {"gain_backward": theory.backward_gains, "gain_forward": theory.forward_gains}
DEFAULT_STAT = "grad_mean_abs"


# ------------------------------------------------------------------------------------------------ one method

def _compact(metrics: dict, names: list[str]) -> dict:
    """The part of `metrics` history.missing_reason reads, small: the config and, per layer, the first row
    in which it had a gradient. missing_reason asks whether a layer "had a gradient in an earlier epoch", which
    the first such row answers exactly; on the full history that question costs a scan per missing value
    (seconds for the 701 epochs of layer-wise training)."""
    first = {}
    for row in history.rows(metrics):
        for name in names:
            if name not in first and history.layer_value(row, name, "grad_mean_abs") is not None:
                first[name] = {"epoch": history.epoch_of(row),
                               "layers": [{"name": name, "grad_mean_abs": 1.0}]}
    return {"config": metrics.get("config"), "history": list(first.values())}


def reasons_like_history(metrics: dict, key: str) -> list[list]:
    """`key` for every row and layer (history.all_layer_names order): the value, or history.missing_reason's
    words for a missing one (the same words as on the full history; see _compact)."""
    hist = history.rows(metrics)
    names = history.all_layer_names(hist)
    compact = _compact(metrics, names)
    out = []
    for row in hist:
        values = []
        for name in names:
            v = history.layer_value(row, name, key)
            values.append(v if v is not None else history.missing_reason(compact, row, name, key))
        out.append(values)
    return out


def _recorded(metrics: dict, key: str) -> bool:
    return any(key in layer for row in history.rows(metrics) for layer in row.get("layers") or [])


def _range(rows_of_values: list[list]) -> list[float] | None:
    """[smallest positive, largest] of the numbers, for shared axes; None if no number is positive."""
    numbers = [v for row in rows_of_values for v in row if isinstance(v, (int, float))]  # not a word (or its ref)
    positive = [v for v in numbers if v > 0]
    return [min(positive), max(numbers)] if positive else None


def _numbers(values) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def _sig(x: float | None) -> float | None:
    """4 significant digits: a ratio of two recorded 6-digit values has no more to say, and the JSON is shorter."""
    return None if x is None else float(f"{x:.4g}")


def theory_rows(metrics: dict, key: str) -> dict:
    """A THEORY statistic of every row: the measured gain per layer (or why there is none), core.theory's
    prediction (or None), and, where the two disagree, the index of core.theory's reason in `reasons` (else -1;
    a row where they agree at every layer is None)."""
    gains_of, config = THEORY[key], metrics.get("config") or {}
    hist = history.rows(metrics)
    names = history.all_layer_names(hist)
    none_here = "no layer above" if key == "gain_backward" else "input: pixels"
    edge = names[-1] if key == "gain_backward" else names[0]
    values, predicted, notes, reasons = [], [], [], []
    for row in hist:
        gains = {g.layer: g for g in gains_of(row, config)}
        v, p, n = [], [], []
        for layer in names:
            g = gains.get(layer)
            if g is None:
                v.append(none_here if layer == edge else "not in use")
                p.append(None)
                n.append(-1)
                continue
            v.append(_sig(g.measured) if g.measured is not None else g.reason)
            p.append(_sig(g.predicted))
            if g.agree is False:
                if g.reason not in reasons:
                    reasons.append(g.reason)
                n.append(reasons.index(g.reason))
            else:
                n.append(-1)
        values.append(v)
        predicted.append(p)
        notes.append(n if any(k >= 0 for k in n) else None)  # None: theory and measurement agree at every layer
    return {"values": values, "predicted": predicted, "notes": notes, "reasons": reasons}


def method_data(name: str, title: str, metrics: dict | None, problem: str | None = None) -> dict:
    """Everything the chart shows of one method, at every recorded epoch (see the module docstring).
    `problem`: why there is no data (a broken checkpoint's error); no metrics and no problem = not trained."""
    hist = history.rows(metrics)
    if not hist:
        return {"name": name, "title": title, "problem": problem or "not trained yet", "layers": [],
                "epochs": [], "labels": [], "stats": {}, "range": {}, "curves": {}, "stages": []}
    stats, ranges = {}, {}
    for key in STATS:
        if key in THEORY:
            if not (_recorded(metrics, "derivative_mean") and _recorded(metrics, "signal_std")):
                stats[key] = {"missing": NOT_RECORDED}
                continue
            stats[key] = theory_rows(metrics, key)
            ranges[key] = _range(stats[key]["values"] + [[p for p in r if p] for r in stats[key]["predicted"]])
            continue
        if not _recorded(metrics, key):
            stats[key] = {"missing": NOT_RECORDED}
            continue
        values = reasons_like_history(metrics, key)
        stats[key] = {"values": values}
        ranges[key] = _range(values)
    return {
        "name": name, "title": title, "problem": None,
        "layers": history.all_layer_names(hist),
        "epochs": [history.epoch_of(r) for r in hist],
        "labels": [history.epoch_label(metrics, r) for r in hist],
        "stats": stats, "range": ranges,
        "curves": {key: _numbers(history.series(metrics, key)[1]) for key in CURVES},
        "stages": history.stage_boundaries(metrics),
        "schedule": (metrics.get("config") or {}).get("schedule", "constant"),
    }


def until(data: dict, last_epoch: int) -> dict:
    """A method's data (method_data) cut to its rows at epochs <= last_epoch, with the ranges of what is left:
    a pre-trained method beside a Playground run of last_epoch epochs, on axes fitted to what both show."""
    keep = bisect.bisect_right(data["epochs"], last_epoch)
    if data["problem"] or keep == len(data["epochs"]):
        return data
    stats, ranges = {}, {}
    for key, stat in data["stats"].items():
        if "values" in stat:
            stats[key] = {**stat, **{k: stat[k][:keep] for k in ROWS if k in stat}}
            ranges[key] = _range(stats[key]["values"] + [[p for p in r if p] for r in stats[key].get("predicted", [])])
        else:
            stats[key] = stat
    return {**data, "epochs": data["epochs"][:keep], "labels": data["labels"][:keep], "stats": stats,
            "range": ranges, "curves": {key: values[:keep] for key, values in data["curves"].items()},
            "stages": [b for b in data["stages"] if b <= last_epoch]}


def thinned(data: dict, max_rows: int = MAX_ROWS) -> dict:
    """A method's data (method_data) with at most `max_rows` of its epochs: every k-th, the last, and both
    sides of every stage change. The chart shows the last kept row at or before the chosen epoch, and labels it
    with its own epoch, so nothing is shown as another epoch's. A 100-epoch method is unchanged; a layer-wise
    one's 701 epochs become ~95, as many as a 100-epoch method sends."""
    n = len(data["epochs"])
    if n <= max_rows:
        return data
    step = math.ceil(n / max(1, max_rows - 2 * len(data["stages"]) - 1))  # room for both sides of each stage edge
    keep = set(range(0, n, step)) | {n - 1}
    for boundary in data["stages"]:
        i = bisect.bisect_right(data["epochs"], boundary) - 1
        keep |= {i, i + 1} & set(range(n))
    idx = sorted(keep)
    pick = lambda rows: [rows[i] for i in idx]  # noqa: E731
    stats = {key: {**stat, **{k: pick(stat[k]) for k in ROWS if k in stat}} for key, stat in data["stats"].items()}
    return {**data, "epochs": pick(data["epochs"]), "labels": pick(data["labels"]), "stats": stats,
            "curves": {key: pick(values) for key, values in data["curves"].items()}, "thinned": step}


# --------------------------------------------------------------------------------------------------- a pair

def log_limits(low: float, high: float) -> list[float]:
    """Decade-aligned log-axis limits around [low, high] (both > 0)."""
    lo, hi = math.floor(math.log10(low) + 1e-9), math.ceil(math.log10(high) - 1e-9)
    return [10.0**lo, 10.0**max(hi, lo + 1)]


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= x (x > 0)."""
    k = 10.0 ** math.floor(math.log10(x))
    return next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= x * (1 - 1e-9))


def _limits(stat: Stat, ranges: list[list[float] | None]) -> list[float] | None:
    """Axis limits covering both methods' values at every epoch (the axis never moves while playing)."""
    if stat.fixed:
        return list(stat.fixed)
    known = [r for r in ranges if r]
    if stat.log:
        if stat.guide is not None:
            known.append([stat.guide, stat.guide])
        return log_limits(min(r[0] for r in known), max(r[1] for r in known)) if known else None
    top = max((r[1] for r in known), default=0.0)
    return [0.0, _nice_ceiling(top * 1.05)] if top > 0 else [0.0, 1.0]


def _loss_axis(sides: list[dict]) -> dict:
    """The loss panel's axis: log when the pair's losses span more than 30x (as the PNG curves' figure)."""
    losses = [v for side in sides for key in ("train_loss", "val_loss") for v in side["curves"].get(key, [])
              if v is not None and v > 0]
    if not losses:
        return {"log": False, "limits": [0.0, 1.0]}
    lo, hi = min(losses), max(losses)
    if hi / lo > 30:
        return {"log": True, "limits": log_limits(lo, hi)}
    return {"log": False, "limits": [0.0, _nice_ceiling(hi * 1.05)]}


def _values_mapped(data: dict, f) -> dict:
    """`data` with f applied to every entry of every statistic's values."""
    return {**data, "stats": {key: {**stat, "values": [[f(v) for v in row] for row in stat["values"]]}
                              if "values" in stat else stat for key, stat in data["stats"].items()}}


def packed(data: dict) -> dict:
    """A method's data as it is sent: every word among a statistic's values (a reason there is no number) once,
    in data["words"], and in its place {"w": its index}; the chart puts the words back on arrival (charts.js
    unpack). A layer-wise method repeats a few reasons ("frozen", "not trained yet", ...) hundreds of times:
    a quarter of its data."""
    words: list[str] = []
    index: dict[str, int] = {}

    def ref(v):
        if not isinstance(v, str):
            return v
        if v not in index:
            index[v] = len(words)
            words.append(v)
        return {"w": index[v]}
    return {**_values_mapped(data, ref), "words": words}


def unpacked(data: dict) -> dict:
    """packed's inverse (the chart's own in JavaScript): what tests and API callers compare with method_data."""
    words = data.get("words")
    if words is None:
        return data
    back = _values_mapped(data, lambda v: words[v["w"]] if isinstance(v, dict) else v)
    return {k: v for k, v in back.items() if k != "words"}


SHARE_RATIO = 2.0  # a pair whose runs' lengths differ by this factor or more is drawn against each one's share


def pair_data(left: dict, right: dict, stat: str = DEFAULT_STAT, max_epoch: int | None = None,
              epoch: int | None = None) -> dict:
    """The chart's value for a pair: both methods' data (method_data, maybe packed), their colours, the statistics
    with axes shared by both sides, the epoch range and the shared curve axes.

    max_epoch: the end of the epoch axis (default: the last epoch either side recorded); epoch: the epoch shown
    first, also the last one the slider and the player reach (default: max_epoch). A Playground run in
    progress has epoch < max_epoch: its axis spans the planned epochs, its slider the ones trained so far.

    x: "epoch", or "share" for a pair of unequal runs (layer-wise training's 700 epochs beside a 100-epoch
    method, SHARE_RATIO): on one epoch axis the shorter run would fill its first seventh and then stand still,
    so the slider and the curves run over each method's share of its own training (0-100 %), each side at its
    own epoch (ends: each side's last epoch)."""
    sides = [left, right]
    ends = [d["epochs"][-1] if d["epochs"] else 0 for d in sides]
    share = max_epoch is None and min(ends) > 0 and max(ends) >= SHARE_RATIO * min(ends)
    if max_epoch is None:
        max_epoch = max(ends)
    epoch = max_epoch if epoch is None else epoch
    return {
        "left": left, "right": right,
        "x": "share" if share else "epoch", "ends": ends,
        "colors": {"left": [LEFT_COLOR, lighten(LEFT_COLOR)], "right": [RIGHT_COLOR, lighten(RIGHT_COLOR)]},
        "stats": [{**asdict(s), "limits": _limits(s, [d["range"].get(s.key) for d in sides])}
                  for s in STATS.values()],
        "stat": stat if stat in STATS else DEFAULT_STAT,
        "max_epoch": max_epoch, "epoch": epoch, "last_epoch": epoch,
        "curves": {"loss": _loss_axis(sides), "acc": {"log": False, "limits": [0.0, 1.0]}, "chance": CHANCE},
    }

