"""Reads the training record (a metrics.json dict): rows by epoch, layers, per-layer values and why one is missing."""
from __future__ import annotations

import itertools
import math

import numpy as np

from .methods import METHODS

OUTPUT = "output"
_HIDDEN = "hidden"

__all__ = ["OUTPUT", "all_layer_names", "epoch_label", "epoch_of", "finite_number", "gradient_ratio",
           "hidden_layer_names", "layer_names", "layer_sort_key", "layer_value", "method_title", "missing_reason",
           "row_at", "rows", "series", "stage_boundaries", "unchanged_reason"]


def finite_number(x) -> float | None:
    """A finite float, or None for None / NaN / inf / bool / anything non-numeric."""
    if x is None or isinstance(x, bool):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        return None
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------------- rows

def rows(metrics: dict | None) -> list[dict]:
    """The history rows, one per recorded epoch (epoch 0 = init first); [] for None or no history."""
    return list((metrics or {}).get("history") or [])


def row_at(metrics: dict | None, epoch: int | None) -> dict | None:
    """The history row of `epoch`, clamped to what was recorded (None = the last); None if no history.

    Epochs beyond the last give the last; negative ones give the first (init). If the exact epoch is
    missing the latest row before it is used.
    """
    hist = rows(metrics)
    if not hist:
        return None
    if epoch is None:
        return hist[-1]
    epoch = int(epoch)
    before = [r for r in hist if epoch_of(r) <= epoch]
    return max(before, key=epoch_of) if before else hist[0]


def epoch_of(row: dict) -> int:
    """The row's epoch (0 = init; a row without one counts as init)."""
    return row.get("epoch", 0)


# ----------------------------------------------------------------------------------------------- layers

def _layer(row: dict | None, name: str) -> dict | None:
    return next((layer for layer in (row or {}).get("layers") or [] if layer.get("name") == name), None)


def layer_names(row: dict | None) -> list[str]:
    """The row's Linear layers as recorded, input to output (hidden1 ... output); [] for None."""
    return [layer.get("name", f"layer{i + 1}") for i, layer in enumerate((row or {}).get("layers") or [])]


def _hidden_index(name: str) -> int | None:
    """N of "hiddenN", else None: the one place layer names are parsed."""
    return int(name[len(_HIDDEN):]) if name.startswith(_HIDDEN) and name[len(_HIDDEN):].isdigit() else None


def layer_sort_key(name: str) -> tuple[int, str]:
    """Sort key putting hidden1 < hidden2 < ... < hidden10 < other names < output."""
    n = _hidden_index(name)
    if n is not None:
        return n, name
    return (10**6, name) if name == OUTPUT else (10**5, name)


def all_layer_names(row_list: list[dict | None]) -> list[str]:
    """Every layer name found in `row_list` (None rows skipped), each once, in layer order."""
    return sorted({n for row in row_list for n in layer_names(row)}, key=layer_sort_key)


def hidden_layer_names(row: dict | None) -> list[str]:
    """The row's hidden layers (hidden1 ... hiddenN) in depth order, without the output layer."""
    return sorted((n for n in layer_names(row) if _hidden_index(n) is not None), key=layer_sort_key)


def layer_value(row: dict | None, name: str, key: str) -> float | None:
    """Layer `name`'s statistic `key` in the row as a finite float; None if missing, null or not finite."""
    layer = _layer(row, name)
    return None if layer is None else finite_number(layer.get(key))


def gradient_ratio(metrics: dict | None, epoch: int | None = 0, key: str = "grad_mean_abs") -> float | None:
    """First layer's statistic over the output layer's at `epoch` (0 = init, None = last, clamped): the
    vanishing-gradient indicator (~4e-7 for the 7-layer baseline at init, ~0.1 for ReLU). None when
    either value is missing or the output's is 0."""
    row = row_at(metrics, epoch)
    names = layer_names(row)
    if len(names) < 2:
        return None
    first, last = layer_value(row, names[0], key), layer_value(row, names[-1], key)
    if first is None or not last:
        return None
    return first / last


def _trained(metrics: dict, name: str, epochs) -> bool:
    """Whether layer `name` had a gradient in any row whose epoch passes `epochs`."""
    return any(layer_value(r, name, "grad_mean_abs") is not None for r in rows(metrics) if epochs(epoch_of(r)))


def missing_reason(metrics: dict, row: dict, name: str, key: str) -> str:
    """Why layer `name`'s `key` is None in `row`, in two words, for the note under the missing bar."""
    layer = _layer(row, name)
    if layer is not None and key not in layer:
        return "not recorded"  # metrics.json written before the statistic existed
    if key in ("saturation", "activation_std", "derivative_mean", "norm_gain") and name == OUTPUT:
        return "n/a"  # the output layer has no activation and no normalization
    config = metrics.get("config") or {}
    if key == "saturation" and config.get("activation") == "relu":
        return "n/a (ReLU)"
    if key == "norm_gain" and config.get("norm", "none") == "none":
        return "n/a (no normalization)"
    epoch = epoch_of(row)
    if key == "update_ratio" and epoch == 0:
        return "no update yet"
    stages, i = config.get("stages") or [], _hidden_index(name)
    if i is not None and 1 <= row.get("stage", 0) <= len(stages):
        # a layer-wise stage says which layers it trains; no scan of earlier rows, where epoch 0 (the whole
        # network at init) has a gradient for layers the first stage does not train yet
        stage = stages[row["stage"] - 1]
        if epoch > 0 and i <= stage.get("frozen", 0):
            return "frozen"
        return "not trained yet" if i > stage["depth"] or layer_value(row, name, "grad_mean_abs") is None else "n/a"
    if _trained(metrics, name, lambda e: e < epoch):
        return "frozen"
    if layer_value(row, name, "grad_mean_abs") is None:
        return "not trained yet"
    return "n/a"


def unchanged_reason(metrics: dict, row: dict, name: str) -> str:
    """Why layer `name`'s weights have not moved (rel_weight_change 0) by `row`: "unchanged (0)" if it was
    trained in some epoch up to the row's (or the row is init), else "not trained yet"."""
    epoch = epoch_of(row)
    if epoch == 0 or _trained(metrics, name, lambda e: 0 < e <= epoch):
        return "unchanged (0)"
    return "not trained yet"


# -------------------------------------------------------------------------------------------- labelling

def method_title(metrics: dict | None) -> str:
    """The display name of a metrics dict: its "title" if it has one, else the registry's, else its name."""
    if not metrics:
        return "(none)"
    if metrics.get("title"):
        return str(metrics["title"])
    name = str(metrics.get("method", "?"))
    return METHODS[name].title if name in METHODS else name


def epoch_label(metrics: dict, row: dict) -> str:
    """ "epoch 3", with "(init)", "(last)" or "(stopped early)" and ", stage 2/7" for layer-wise runs."""
    hist = rows(metrics)
    epoch = epoch_of(row)
    label = f"epoch {epoch}"
    if epoch == 0:
        label += " (init)"
    elif hist and row is hist[-1]:
        label += " (stopped early)" if metrics.get("stopped") else " (last)"
    stages = (metrics.get("config") or {}).get("stages") or []
    if stages and "stage" in row:
        label += f", stage {row['stage']}/{len(stages)}"
    return label


# ------------------------------------------------------------------------------------------------ curves

def stage_boundaries(metrics: dict | None) -> list[float]:
    """Epochs between layer-wise stages (half-way between a stage's last epoch and the next one's first)."""
    hist = rows(metrics)
    return [(epoch_of(a) + epoch_of(b)) / 2 for a, b in itertools.pairwise(hist)
            if a.get("stage") is not None and b.get("stage") is not None and a["stage"] != b["stage"]]


def series(metrics: dict | None, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a per-epoch number such as "val_loss"; missing or non-finite values are NaN."""
    hist = rows(metrics)
    x = np.array([r.get("epoch", i) for i, r in enumerate(hist)], dtype=float)
    y = np.array([np.nan if finite_number(r.get(key)) is None else float(r[key]) for r in hist], dtype=float)
    return x, y
