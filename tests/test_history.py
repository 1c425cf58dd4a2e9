"""core.history: reading a metrics.json dict, checked value by value on small hand-written records."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from core import history, results
from core.methods import METHODS
from ui import chart_data, figures


def layer(name: str, **stats) -> dict:
    return {"name": name, **stats}


def row(epoch: int, *layers: dict, **fields) -> dict:
    return {"epoch": epoch, "layers": list(layers), **fields}


def record(*rows: dict, **fields) -> dict:
    return {"method": "baseline", "config": {"activation": "sigmoid", "stages": []}, "history": list(rows),
            **fields}


def three_layers(epoch: int, scale: float = 1.0) -> dict:
    """hidden1, hidden2, output with grad_mean_abs 1e-6, 1e-4, 1e-2 (times `scale`)."""
    return row(epoch, *(layer(n, grad_mean_abs=g * scale) for n, g in
                        (("hidden1", 1e-6), ("hidden2", 1e-4), ("output", 1e-2))))


# ------------------------------------------------------------------------------------------------- rows

def test_rows_and_row_at_clamp_to_the_recorded_epochs():
    m = record(three_layers(0), three_layers(1), three_layers(3))  # epoch 2 was not recorded
    assert history.rows(None) == [] and history.rows({}) == [] and history.rows({"history": None}) == []
    assert [history.epoch_of(r) for r in history.rows(m)] == [0, 1, 3]
    assert history.row_at(None, 0) is None and history.row_at(record(), None) is None
    assert history.row_at(m, None) is m["history"][-1]  # None = the last
    assert history.row_at(m, 99) is m["history"][-1]
    assert history.row_at(m, -5) is m["history"][0]
    assert history.row_at(m, 2) is m["history"][1]  # the latest row before a missing epoch
    assert history.row_at(m, 3.0) is m["history"][2]
    assert history.epoch_of({}) == 0


# ----------------------------------------------------------------------------------------------- layers

def test_layer_order_puts_hidden10_after_hidden9_and_output_last():
    names = ["output", "hidden10", "hidden2", "hidden9", "hidden1", "norm"]
    assert sorted(names, key=history.layer_sort_key) == ["hidden1", "hidden2", "hidden9", "hidden10", "norm",
                                                          "output"]
    deep = row(1, *(layer(f"hidden{i}") for i in range(1, 11)), layer("output"))
    shallow = row(1, layer("hidden1"), layer("hidden2"), layer("output"))
    assert history.layer_names(shallow) == ["hidden1", "hidden2", "output"]  # as recorded
    assert history.all_layer_names([shallow, None, deep]) == [f"hidden{i}" for i in range(1, 11)] + ["output"]
    assert history.all_layer_names([None]) == []
    shuffled = row(1, layer("hidden10"), layer("output"), layer("hidden2"))
    assert history.hidden_layer_names(shuffled) == ["hidden2", "hidden10"]
    assert history.layer_names(row(0, {"grad_mean_abs": 1.0})) == ["layer1"]  # a nameless layer


def test_layer_value_is_a_finite_float_or_none():
    r = row(1, layer("hidden1", a=2, b=None, c=float("nan"), d=float("inf"), e=True, f="0.5", g="x"))
    assert history.layer_value(r, "hidden1", "a") == 2.0 and isinstance(history.layer_value(r, "hidden1", "a"), float)
    assert history.layer_value(r, "hidden1", "f") == 0.5
    for key in ("b", "c", "d", "e", "g", "missing"):
        assert history.layer_value(r, "hidden1", key) is None, key
    assert history.layer_value(r, "hidden2", "a") is None and history.layer_value(None, "hidden1", "a") is None


# -------------------------------------------------------------------------------------------- the ratio

def test_gradient_ratio_is_first_over_output():
    m = record(three_layers(0), three_layers(1, scale=10.0))
    m["history"][1]["layers"][0]["grad_mean_abs"] = 1e-3  # hidden1 caught up after an epoch
    assert history.gradient_ratio(m) == pytest.approx(1e-4)  # default: init
    assert history.gradient_ratio(m, 0) == pytest.approx(1e-6 / 1e-2)
    assert history.gradient_ratio(m, None) == pytest.approx(1e-3 / 1e-1)
    assert history.gradient_ratio(m, 50) == history.gradient_ratio(m, None)  # clamped
    m["history"][0]["layers"][0]["grad_norm"] = 4.0
    m["history"][0]["layers"][2]["grad_norm"] = 2.0
    assert history.gradient_ratio(m, 0, "grad_norm") == 2.0


@pytest.mark.parametrize("first, output", [(None, 1e-2), (1e-6, 0.0), (1e-6, None), (float("nan"), 1.0)])
def test_gradient_ratio_none_when_a_side_is_missing_or_output_is_zero(first, output):
    m = record(row(0, layer("hidden1", grad_mean_abs=first), layer("output", grad_mean_abs=output)))
    assert history.gradient_ratio(m, 0) is None


def test_gradient_ratio_none_without_two_layers():
    assert history.gradient_ratio(None) is None and history.gradient_ratio(record()) is None
    assert history.gradient_ratio(record(row(0, layer("output", grad_mean_abs=1.0)))) is None
    assert history.gradient_ratio(record(three_layers(0)), 0, "not_a_key") is None
    assert history.gradient_ratio(record(row(0, layer("hidden1", grad_mean_abs=0.0),
                                             layer("output", grad_mean_abs=1.0)))) == 0.0


# ------------------------------------------------------------------------------------- missing reasons

def layerwise() -> dict:
    """Stage 1 trains hidden1 (hidden2 not added yet); stage 2 freezes hidden1 and trains hidden2. Epoch 0 is the
    whole network at init: both layers have a gradient there."""
    def at(epoch, h1, h2, stage):
        return row(epoch, layer("hidden1", grad_mean_abs=h1, update_ratio=None if epoch == 0 else h1,
                                weight_std=0.05, saturation=0.2),
                   layer("hidden2", grad_mean_abs=h2, update_ratio=None if epoch == 0 else h2,
                         weight_std=None, saturation=0.1),
                   layer("output", grad_mean_abs=1e-2, update_ratio=None if epoch == 0 else 1e-3, weight_std=0.05,
                         saturation=None,
                         activation_std=None), stage=stage)
    return record(at(0, 1e-4, 1e-6, 1), at(1, 1e-4, None, 1), at(2, None, 1e-3, 2), method="layerwise",
                  config={"activation": "sigmoid", "stages": [{"depth": 1}, {"depth": 2, "frozen": 1}]})


@pytest.mark.parametrize("epoch, name, key, reason", [
    (2, "hidden1", "grad_mean_abs", "frozen"),  # had a gradient before, none now
    (1, "hidden2", "grad_mean_abs", "not trained yet"),  # not added yet (its epoch-0 gradient is no training)
    (0, "hidden1", "update_ratio", "no update yet"),
    (0, "output", "update_ratio", "no update yet"),
    (2, "output", "saturation", "n/a"),  # the output layer has no activation
    (2, "output", "activation_std", "n/a"),  # recorded as null for the output
    (1, "hidden1", "error_mean_abs", "not recorded"),  # a statistic older files lack
    (1, "hidden1", "signal_std", "not recorded"),
    (1, "hidden1", "norm_gain", "not recorded"),
    (2, "hidden2", "weight_std", "n/a"),  # trained now, yet the value is null: no better reason
])
def test_missing_reason(epoch, name, key, reason):
    m = layerwise()
    assert history.missing_reason(m, history.row_at(m, epoch), name, key) == reason


def test_missing_reason_relu_saturation_and_not_recorded_first():
    m = record(three_layers(0), config={"activation": "relu"})
    for r in m["history"]:
        for entry in r["layers"]:
            entry["saturation"] = None
    r = m["history"][0]
    assert history.missing_reason(m, r, "hidden1", "saturation") == "n/a (ReLU)"
    assert history.missing_reason(m, r, "output", "saturation") == "n/a"
    assert history.missing_reason(m, r, "hidden1", "activation_std") == "not recorded"
    for entry in r["layers"]:
        entry.update(signal_std=0.1, derivative_mean=None if entry["name"] == "output" else 0.5, norm_gain=None)
    assert history.missing_reason(m, r, "output", "derivative_mean") == "n/a"
    assert history.missing_reason(m, r, "hidden1", "norm_gain") == "n/a (no normalization)"
    assert history.missing_reason(m, r, "output", "norm_gain") == "n/a"


def test_unchanged_reason():
    m = layerwise()
    rows = m["history"]
    assert history.unchanged_reason(m, rows[0], "hidden2") == "unchanged (0)"  # init: nothing moved yet
    assert history.unchanged_reason(m, rows[1], "hidden1") == "unchanged (0)"  # trained, yet 0
    assert history.unchanged_reason(m, rows[1], "hidden2") == "not trained yet"
    assert history.unchanged_reason(m, rows[2], "hidden2") == "unchanged (0)"


# -------------------------------------------------------------------------------------------- labelling

def test_method_title():
    assert history.method_title(None) == "(none)" and history.method_title({}) == "(none)"
    assert history.method_title({"method": "relu"}) == METHODS["relu"].title == "ReLU activation"
    assert history.method_title({"method": "relu", "title": "Mine"}) == "Mine"  # its own title wins
    assert history.method_title({"method": "not_in_registry"}) == "not_in_registry"
    assert history.method_title({"seed": 1}) == "?"


def test_epoch_label():
    m = layerwise()
    rows = m["history"]
    assert history.epoch_label(m, rows[0]) == "epoch 0 (init), stage 1/2"
    assert history.epoch_label(m, rows[1]) == "epoch 1, stage 1/2"
    assert history.epoch_label(m, rows[2]) == "epoch 2 (last), stage 2/2"
    m["stopped"] = "early"
    assert history.epoch_label(m, rows[2]) == "epoch 2 (stopped early), stage 2/2"
    plain = record(three_layers(0), three_layers(1))
    assert history.epoch_label(plain, plain["history"][1]) == "epoch 1 (last)"


# ----------------------------------------------------------------------------------------------- curves

def test_stage_boundaries_fall_between_stages():
    m = record(*(row(e, stage=s) for e, s in ((0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3))))
    assert history.stage_boundaries(m) == [2.5, 4.5]
    assert history.stage_boundaries(record(three_layers(0), three_layers(1))) == []
    assert history.stage_boundaries(None) == []


def test_series_gives_nan_for_missing_values():
    m = record(row(0, val_loss=2.3), row(1, val_loss=None), row(2, val_loss=float("nan")), row(3), row(4, val_loss=1))
    x, y = history.series(m, "val_loss")
    assert list(x) == [0, 1, 2, 3, 4]
    assert y[0] == 2.3 and y[4] == 1.0 and all(math.isnan(v) for v in y[1:4])
    x, y = history.series({"history": [{"acc": 0.5}, {"acc": 0.6}]}, "acc")  # rows without epochs: their index
    assert list(x) == [0, 1] and list(y) == [0.5, 0.6]
    x, y = history.series(None, "acc")
    assert x.size == y.size == 0 and x.dtype == y.dtype == np.float64


# ---------------------------------------------------------------------------------------- data flow

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """The project modules a file imports, type-only imports included, as dotted names (ui.lab, core.history)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - n.level + 1] + ([base] if base else []))
            out |= {base} | {f"{base}.{a.name}" for a in n.names}
    return {m for m in out if (ROOT / (m.replace(".", "/") + ".py")).is_file()}


def test_the_science_never_imports_the_ui_and_no_module_imports_itself_back():
    files = sorted((ROOT / "core").glob("*.py")) + sorted((ROOT / "ui").glob("*.py")) + [ROOT / "app.py"]
    graph = {".".join(f.relative_to(ROOT).with_suffix("").parts): _imports(f) for f in files}
    assert "core.history" in graph["ui.figures"] and "ui.lab" in graph["ui.pages"]  # (the reader reads them)
    for module, imported in graph.items():
        if module.startswith("core."):
            assert not {m for m in imported if m.startswith("ui.") or m == "app"}, module
    # no circle, type-only imports included: a depth-first walk never meets a module still on its path
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in graph.get(module, ()):
            assert state.get(other) != "open", " -> ".join(path + [module, other])
            if other not in state:
                visit(other, path + [module])
        state[module] = "done"
    for module in graph:
        if module not in state:
            visit(module, [])


def test_shared_values_are_defined_once():
    assert results.gradient_ratio is history.gradient_ratio
    assert figures.BENCHMARK_BEST_MLP is results.BENCHMARK_BEST_MLP
    assert chart_data.LEFT_COLOR is figures.LEFT_COLOR and chart_data.CHANCE is figures.CHANCE
    for module in (figures, chart_data):  # drawn from results' and figures' constants, not copies
        tree = ast.parse(Path(module.__file__).read_text())
        assigned = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}
        assert "BENCHMARK_BEST_MLP" not in assigned and (module is figures or "LEFT_COLOR" not in assigned)
