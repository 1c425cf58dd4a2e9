"""The Compare tab's data and figures: core.charts (the browser chart's data: values, reasons, shared axes),
core.panels (PNG figures composed from per-method panels on shared axes), and /compare's chart output for a
pair the app has never shown. Latency is the bench's (bench/latency.py), not checked here."""
from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from core import charts, history, panels, plots
from tests.helpers import ROOT
from tests.test_plots import make_layerwise, make_metrics

COMMITTED = ROOT / "checkpoints"


def committed(name: str) -> dict:
    return json.loads((COMMITTED / name / "metrics.json").read_text())


def stat_values(data: dict, key: str, epoch: int) -> list:
    """The chart's entries of `key` at `epoch`, picked the way the browser picks them (history.row_at)."""
    i = max(i for i, e in enumerate(data["epochs"]) if e <= epoch) if epoch >= data["epochs"][0] else 0
    return data["stats"][key]["values"][i]


def expected(metrics: dict, key: str, epoch: int) -> list:
    row = history.row_at(metrics, epoch)
    return [v if (v := history.layer_value(row, n, key)) is not None else history.missing_reason(metrics, row, n, key)
            for n in history.all_layer_names(history.rows(metrics))]


# ------------------------------------------------------------------------------------------ method data

@pytest.mark.parametrize("epoch", [0, 1, 2, 3, 99])
@pytest.mark.parametrize("key", ["grad_mean_abs", "error_mean_abs", "update_ratio", "saturation", "activation_std",
                                 "rel_weight_change"])
def test_values_are_history_values_at_every_epoch(key, epoch):
    m = make_metrics(depth=4, new_stats=True)
    data = charts.method_data("baseline", "Baseline", m)
    assert data["layers"] == ["hidden1", "hidden2", "hidden3", "hidden4", "output"]
    assert data["epochs"] == [0, 1, 2, 3]
    assert stat_values(data, key, epoch) == expected(m, key, epoch)
    assert data["labels"] == [history.epoch_label(m, r) for r in m["history"]]


def test_missing_values_carry_their_reason():
    m, relu = make_metrics(), make_metrics("relu", activation="relu")
    data = charts.method_data("baseline", "Baseline", m)
    assert set(stat_values(data, "update_ratio", 0)) == {"no update yet"}  # no step before init
    assert stat_values(data, "saturation", 2)[-1] == "n/a"  # the output has no activation
    *hidden, output = charts.method_data("relu", "ReLU", relu)["stats"]["saturation"]["values"][1]
    assert set(hidden) == {"n/a (ReLU)"} and output == "n/a"
    # statistics this record never had: one explicit reason for the whole statistic, not rows of it
    assert data["stats"]["error_mean_abs"] == {"missing": charts.NOT_RECORDED} == {"missing": "not recorded"}
    assert data["stats"]["activation_std"] == {"missing": "not recorded"}
    assert "error_mean_abs" not in data["range"]
    # recorded in some rows only (a record resumed by newer code): each gap says so
    partial = make_metrics(depth=2, new_stats=True)
    for layer in partial["history"][0]["layers"]:
        del layer["error_mean_abs"]
    values = charts.method_data("baseline", "Baseline", partial)["stats"]["error_mean_abs"]["values"]
    assert set(values[0]) == {"not recorded"} and all(isinstance(v, float) for v in values[1])


def test_layerwise_reasons_equal_history_on_the_full_record():
    """The compact record charts uses for missing_reason answers like the full one (frozen, not trained yet)."""
    for m in (make_layerwise(), committed("layerwise")):
        data = charts.method_data("layerwise", "Layer-wise", m)
        epochs = sorted({history.epoch_of(r) for r in m["history"][::23]} | {0, 1, 2, 3, 5, 101, 201, 700})
        for key in ("grad_mean_abs", "update_ratio", "saturation", "rel_weight_change"):
            for epoch in epochs:
                assert stat_values(data, key, epoch) == expected(m, key, epoch), (key, epoch)
        words = {v for key in ("grad_mean_abs", "update_ratio") for r in data["stats"][key]["values"] for v in r
                 if isinstance(v, str)}
        assert {"frozen", "no update yet"} <= words


def test_an_untrained_or_broken_method_has_no_rows_and_says_why():
    assert charts.method_data("adam", "Adam", None)["problem"] == "not trained yet"
    broken = charts.method_data("skip", "Skip", None, "weights are not safetensors")
    assert broken["problem"] == "weights are not safetensors" and broken["epochs"] == [] and broken["stats"] == {}
    pair = charts.pair_data(broken, charts.method_data("baseline", "Baseline", make_metrics(epochs=5)))
    assert pair["max_epoch"] == pair["epoch"] == 5
    assert all(s["limits"] for s in pair["stats"] if s["key"] not in ("error_mean_abs", "activation_std"))


def test_curves_are_the_recorded_series_with_nan_as_null():
    m = make_metrics(epochs=4)
    m["history"][2]["val_loss"] = float("nan")
    data = charts.method_data("baseline", "Baseline", m)
    for key in charts.CURVES:
        want = [None if math.isnan(v) else v for v in history.series(m, key)[1]]
        assert data["curves"][key] == want
    assert data["curves"]["val_loss"][2] is None


# ------------------------------------------------------------------------------------------------ a pair

def _numbers(data: dict, key: str) -> list[float]:
    s = data["stats"].get(key, {})
    return [v for row in s.get("values", []) for v in row if not isinstance(v, str)]


@pytest.mark.parametrize("pair", [("baseline", "batchnorm"), ("layerwise", "relu"), ("weight_std_10", "tanh")])
def test_shared_axis_limits_cover_both_methods_at_every_epoch(pair):
    left, right = (charts.method_data(n, n, committed(n)) for n in pair)
    data = charts.pair_data(left, right)
    assert data["max_epoch"] == max(left["epochs"][-1], right["epochs"][-1]) == data["epoch"]
    assert [s["key"] for s in data["stats"]] == list(charts.STATS)
    for s in data["stats"]:
        values = _numbers(left, s["key"]) + _numbers(right, s["key"])
        if not values:  # a statistic neither checkpoint recorded: a placeholder axis, never an error
            assert s["limits"] is None or s["limits"] == [0.0, 1.0]
            continue
        lo, hi = s["limits"]
        assert s["log"] == (s["key"] in plots.LOG_KEYS)  # the same axes as the matplotlib figures
        if s["log"]:
            positive = [v for v in values if v > 0]
            assert lo <= min(positive) and max(positive) <= hi
            assert math.log10(lo).is_integer() and math.log10(hi).is_integer()  # decades
        else:
            assert lo == 0 and max(values) <= hi
            assert s["key"] != "saturation" or hi == 1  # a share: 0 to 1 for every pair
        if s["guide"]:
            assert lo <= s["guide"] <= hi
    assert next(s for s in data["stats"] if s["key"] == "update_ratio")["guide"] == 1e-3
    json.dumps(data, allow_nan=False)  # the browser gets plain JSON


def test_the_loss_axis_turns_log_when_losses_span_decades():
    m, low = make_metrics(epochs=2), make_metrics(epochs=2)
    for r in low["history"]:
        r["train_loss"] = r["val_loss"] = 0.01
    flat = charts.pair_data(*(charts.method_data(n, n, make_metrics(epochs=2)) for n in "ab"))["curves"]["loss"]
    wide = charts.pair_data(charts.method_data("a", "a", m), charts.method_data("b", "b", low))["curves"]["loss"]
    assert flat["log"] is False and flat["limits"][0] == 0
    assert wide["log"] is True and wide["limits"][0] <= 0.01 and wide["limits"][1] >= 2.31


# ----------------------------------------------------------------------------------------- PNG figures

@pytest.fixture(scope="module")
def figures():
    names = ["baseline", "relu", "layerwise", "baseline_3"]
    return panels.Panels({n: committed(n) for n in names} | {"adam": None})


def test_pair_figures_have_the_size_of_the_matplotlib_pair_figures(figures):
    m = {n: figures.metrics[n] for n in ("baseline", "relu")}
    sizes = {"gradient_flow": plots.gradient_flow_figure(m["baseline"], m["relu"]),
             "curves": plots.training_curves_figure(m["baseline"], m["relu"]),
             "weight_change": plots.weight_change_figure(m["baseline"], m["relu"])}
    for kind, fig in sizes.items():
        image = figures.figure(kind, "baseline", "relu")
        assert image.mode == "RGB" and image.size == tuple(round(v * fig.dpi) for v in fig.get_size_inches())


def test_a_method_looks_the_same_whatever_its_partner(figures):
    """Fixed axes shared by every method: the left half of the gradient flow is the left method's panel."""
    def left_half(right):
        image = figures.figure("gradient_flow", "baseline", right)
        return image.crop((0, 0, image.width // 2, image.height)).tobytes()
    assert left_half("relu") == left_half("baseline_3") == left_half("adam")
    assert figures.figure("gradient_flow", "relu", "baseline").tobytes() != \
        figures.figure("gradient_flow", "baseline", "relu").tobytes()  # side colours differ


def test_shared_axes_cover_every_method(figures):
    axes = figures.axes
    values = [history.layer_value(r, n, "grad_mean_abs") for m in figures.metrics.values() if m
              for r in (m["history"][0], m["history"][-1]) for n in history.layer_names(r)]
    positive = [v for v in values if v and v > 0]
    assert axes.flow[0] <= min(positive) and max(positive) <= axes.flow[1]
    assert axes.slots == ("hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "hidden6", "hidden7", "output")


def test_panels_are_made_once_even_when_asked_twice_at_once():
    import threading
    calls = []
    once = panels.Once()

    def make():
        calls.append(1)
        threading.Event().wait(0.05)
        return object()
    results = []
    threads = [threading.Thread(target=lambda: results.append(once.get("k", make))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


# --------------------------------------------------------------------------------------- the launched app

@pytest.mark.app
def test_compare_returns_chart_data_for_a_never_seen_pair(server, app_checkpoints):
    """A pair no one asked for yet: the usual outputs, then the chart's data, whose values are the metrics'."""
    client = server.client()
    out = client.predict("tanh", "weight_std_1", api_name="/compare")
    assert len(out) == 9
    card_l, _, flow, curves, change, preds_l, _, slider, chart = out
    assert card_l.startswith("### ") and slider["maximum"] == 100
    for path in (flow, curves, change, preds_l):
        with Image.open(path) as im:
            assert im.format == "PNG"
    if isinstance(chart, str):
        chart = json.loads(chart)
    assert (chart["left"]["name"], chart["right"]["name"]) == ("tanh", "weight_std_1")
    assert chart["max_epoch"] == chart["epoch"] == 100
    for side, name in (("left", "tanh"), ("right", "weight_std_1")):
        m = json.loads((app_checkpoints / name / "metrics.json").read_text())
        data = chart[side]
        assert data["title"] and data["epochs"] == [r["epoch"] for r in m["history"]]
        for key in charts.STATS:
            if not any(key in layer for r in m["history"] for layer in r["layers"]):
                assert data["stats"][key] == {"missing": "not recorded"}  # said once, for the whole statistic
                continue
            for epoch in (0, 37, 100):
                assert stat_values(data, key, epoch) == expected(m, key, epoch), (key, epoch)
