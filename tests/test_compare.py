"""The Compare tab's data and figures: ui.chart_data (the browser chart's data: values, reasons, shared axes),
ui.compare (a pair's cards, PNG figures composed from per-method layers on shared axes, made once), and
/compare's chart output for a pair the app has never shown. Latency is the bench's (bench/latency.py), not
checked here."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from core import history
from core.data import CLASSES
from core.methods import METHODS
from tests.helpers import BROKEN, ROOT
from tests.test_figures import make_layerwise, make_metrics
from ui import chart_data, compare, figures, pages
from ui.lab import Lab

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
    data = chart_data.method_data("baseline", "Baseline", m)
    assert data["layers"] == ["hidden1", "hidden2", "hidden3", "hidden4", "output"]
    assert data["epochs"] == [0, 1, 2, 3]
    assert stat_values(data, key, epoch) == expected(m, key, epoch)
    assert data["labels"] == [history.epoch_label(m, r) for r in m["history"]]


def test_missing_values_carry_their_reason():
    m, relu = make_metrics(), make_metrics("relu", activation="relu")
    data = chart_data.method_data("baseline", "Baseline", m)
    assert set(stat_values(data, "update_ratio", 0)) == {"no update yet"}  # no step before init
    assert stat_values(data, "saturation", 2)[-1] == "n/a"  # the output has no activation
    *hidden, output = chart_data.method_data("relu", "ReLU", relu)["stats"]["saturation"]["values"][1]
    assert set(hidden) == {"n/a (ReLU)"} and output == "n/a"
    # statistics this record never had: one explicit reason for the whole statistic, not rows of it
    assert data["stats"]["error_mean_abs"] == {"missing": chart_data.NOT_RECORDED} == {"missing": "not recorded"}
    assert data["stats"]["activation_std"] == {"missing": "not recorded"}
    assert "error_mean_abs" not in data["range"]
    # recorded in some rows only (a record resumed by newer code): each gap says so
    partial = make_metrics(depth=2, new_stats=True)
    for layer in partial["history"][0]["layers"]:
        del layer["error_mean_abs"]
    values = chart_data.method_data("baseline", "Baseline", partial)["stats"]["error_mean_abs"]["values"]
    assert set(values[0]) == {"not recorded"} and all(isinstance(v, float) for v in values[1])


def test_layerwise_reasons_equal_history_on_the_full_record():
    """The compact record charts uses for missing_reason answers like the full one (frozen, not trained yet)."""
    for m in (make_layerwise(), committed("layerwise")):
        data = chart_data.method_data("layerwise", "Layer-wise", m)
        epochs = sorted({history.epoch_of(r) for r in m["history"][::23]} | {0, 1, 2, 3, 5, 101, 201, 700})
        for key in ("grad_mean_abs", "update_ratio", "saturation", "rel_weight_change"):
            for epoch in epochs:
                assert stat_values(data, key, epoch) == expected(m, key, epoch), (key, epoch)
        words = {v for key in ("grad_mean_abs", "update_ratio") for r in data["stats"][key]["values"] for v in r
                 if isinstance(v, str)}
        assert {"frozen", "no update yet"} <= words


def test_an_untrained_or_broken_method_has_no_rows_and_says_why():
    assert chart_data.method_data("adam", "Adam", None)["problem"] == "not trained yet"
    broken = chart_data.method_data("skip", "Skip", None, "weights are not safetensors")
    assert broken["problem"] == "weights are not safetensors" and broken["epochs"] == [] and broken["stats"] == {}
    pair = chart_data.pair_data(broken, chart_data.method_data("baseline", "Baseline", make_metrics(epochs=5)))
    assert pair["max_epoch"] == pair["epoch"] == 5
    # (all but the statistics this synthetic record never had)
    unrecorded = ("error_mean_abs", "activation_std", "signal_std", "gain_backward", "gain_forward")
    assert all(s["limits"] for s in pair["stats"] if s["key"] not in unrecorded)


def test_curves_are_the_recorded_series_with_nan_as_null():
    m = make_metrics(epochs=4)
    m["history"][2]["val_loss"] = float("nan")
    data = chart_data.method_data("baseline", "Baseline", m)
    for key in chart_data.CURVES:
        want = [None if math.isnan(v) else v for v in history.series(m, key)[1]]
        assert data["curves"][key] == want
    assert data["curves"]["val_loss"][2] is None


# ------------------------------------------------------------------------------------------------ a pair

LOG = {"grad_mean_abs", "error_mean_abs", "update_ratio", "rel_weight_change", "signal_std", "gain_backward",
       "gain_forward"}  # the statistics spanning decades


def _numbers(data: dict, key: str) -> list[float]:
    s = data["stats"].get(key, {})
    return [v for row in s.get("values", []) for v in row if not isinstance(v, str)]


@pytest.mark.parametrize("pair", [("baseline", "batchnorm"), ("layerwise", "relu"), ("weight_std_10", "tanh")])
def test_shared_axis_limits_cover_both_methods_at_every_epoch(pair):
    left, right = (chart_data.method_data(n, n, committed(n)) for n in pair)
    data = chart_data.pair_data(left, right)
    assert data["max_epoch"] == max(left["epochs"][-1], right["epochs"][-1]) == data["epoch"]
    assert [s["key"] for s in data["stats"]] == list(chart_data.STATS)
    for s in data["stats"]:
        values = _numbers(left, s["key"]) + _numbers(right, s["key"])
        if not values:  # a statistic neither checkpoint recorded: a placeholder axis, never an error
            assert s["limits"] is None or s["limits"] == [0.0, 1.0]
            continue
        lo, hi = s["limits"]
        assert s["log"] == (s["key"] in LOG)
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
    side = chart_data.method_data
    flat = chart_data.pair_data(*(side(n, n, make_metrics(epochs=2)) for n in "ab"))["curves"]["loss"]
    wide = chart_data.pair_data(side("a", "a", m), side("b", "b", low))["curves"]["loss"]
    assert flat["log"] is False and flat["limits"][0] == 0
    assert wide["log"] is True and wide["limits"][0] <= 0.01 and wide["limits"][1] >= 2.31


# ----------------------------------------------------------------------------------------- PNG figures

@pytest.fixture(scope="module")
def lab(app_checkpoints):
    return Lab(app_checkpoints)  # every committed method, BROKEN's weights corrupt


def test_a_pair_has_both_cards_every_figure_and_the_chart_once(lab):
    c = compare.comparison(lab, "baseline", "relu")
    assert c.cards == (compare.card(lab, "baseline"), compare.card(lab, "relu"))
    assert c.cards[1].startswith(f"### {lab.entry('relu').method.title}\n") and "Over 10 seeds" in c.cards[1]
    sizes = {c.gradient_flow: figures.FLOW_SIZE, c.curves: figures.CURVES_SIZE, c.weight_change: figures.CHANGE_SIZE}
    for path, size in sizes.items():
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == tuple(round(v * figures.DPI) for v in size), path
            assert im.convert("RGB").tobytes() == compare.figure(lab, kind_of(path), "baseline", "relu").tobytes()
    assert c.max_epoch == 100 and c.chart == chart_data.pair_data(compare.method_chart(lab, "baseline"),
                                                                 compare.method_chart(lab, "relu"))
    assert compare.comparison(lab, "baseline", "relu") is c  # composed once, then kept
    with pytest.raises(ValueError, match="'nope' is not a method here; choose one of: baseline"):
        compare.comparison(lab, "baseline", "nope")


def kind_of(path: str) -> str:
    """The figure a pair's PNG file holds, from its name (flow-baseline-relu.png)."""
    return {"flow": "gradient_flow", "curves": "curves", "change": "weight_change"}[Path(path).name.split("-")[0]]


def test_a_method_looks_the_same_whatever_its_partner(lab):
    """Fixed axes shared by every method: the left half of the gradient flow is the left method's panel."""
    def left_half(right):
        image = compare.figure(lab, "gradient_flow", "baseline", right)
        return image.crop((0, 0, image.width // 2, image.height)).tobytes()
    assert left_half("relu") == left_half("baseline_3") == left_half(BROKEN)
    assert compare.figure(lab, "gradient_flow", "relu", "baseline").tobytes() != \
        compare.figure(lab, "gradient_flow", "baseline", "relu").tobytes()  # side colours differ


def test_a_broken_method_still_composes_and_says_why(lab):
    c = compare.comparison(lab, BROKEN, "baseline")
    assert "**Unavailable:**" in c.cards[0] and c.max_epoch == 100  # the baseline's epochs: the broken one has none
    assert c.chart["left"]["problem"] == lab.entry(BROKEN).error
    assert len({c.gradient_flow, c.curves, c.weight_change, *c.predictions}) == 5  # five different files
    with Image.open(c.predictions[0]) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_prediction_grid_is_the_first_image_of_each_class_and_two_more(lab):
    grid = compare._grid(lab)
    assert len(grid) == compare.GRID_SIZE == 12 and set(lab.sample.y[grid[:10]].tolist()) == set(range(10))
    with Image.open(compare.prediction_grid(lab, "best").path) as im:
        assert im.format == "PNG" and im.size == (440, 510)  # 4 columns x 3 rows: readable on a phone


def test_shared_axes_cover_every_method(lab):
    metrics = [e.metrics for e in lab.entries.values()]
    axes = figures.shared_axes(metrics)
    values = [history.layer_value(r, n, "grad_mean_abs") for m in metrics if m
              for r in (m["history"][0], m["history"][-1]) for n in history.layer_names(r)]
    positive = [v for v in values if v and v > 0]
    assert axes.flow[0] <= min(positive) and max(positive) <= axes.flow[1]
    assert axes.slots == ("hidden1", "hidden2", "hidden3", "hidden4", "hidden5", "hidden6", "hidden7", "output")


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
        data = chart_data.unpacked(chart[side])  # (each word is sent once: chart_data.packed)
        assert data["title"] and data["epochs"] == [r["epoch"] for r in m["history"]]
        for key in chart_data.STATS:
            if key in chart_data.THEORY:  # computed from the record (test_theory_rows_are_core_theorys_gains...)
                assert data["stats"][key] == chart_data.theory_rows(m, key)
                continue
            if not any(key in layer for r in m["history"] for layer in r["layers"]):
                assert data["stats"][key] == {"missing": "not recorded"}  # said once, for the whole statistic
                continue
            for epoch in (0, 37, 100):
                assert stat_values(data, key, epoch) == expected(m, key, epoch), (key, epoch)


# ------------------------------------------------------------------------------------------ theory, thinning

@pytest.mark.parametrize("name", ["baseline", "batchnorm", "relu", "layerwise"])
def test_theory_rows_are_core_theorys_gains_layer_by_layer(name):
    """The chart's "Why" statistics are core.theory's numbers (to 4 digits), its verdicts and its reasons, per
    layer and epoch; the UI computes none of it."""
    from core import theory
    m = committed(name)
    for key, gains_of in (("gain_backward", theory.backward_gains), ("gain_forward", theory.forward_gains)):
        rows = chart_data.theory_rows(m, key)
        layers = history.all_layer_names(history.rows(m))
        for r in (0, 1, len(m["history"]) // 2, len(m["history"]) - 1):
            gains = {g.layer: g for g in gains_of(m["history"][r], m["config"])}
            notes = rows["notes"][r] or [-1] * len(layers)  # None: no disagreement in the row
            for i, layer in enumerate(layers):
                g, v, p, n = gains.get(layer), rows["values"][r][i], rows["predicted"][r][i], notes[i]
                if g is None:
                    assert isinstance(v, str) and p is None and n == -1
                    continue
                if g.measured is None:
                    assert v == g.reason
                else:
                    assert v == pytest.approx(g.measured, rel=1e-3)
                assert (p is None) == (g.predicted is None) and (p is None or p == pytest.approx(g.predicted, rel=1e-3))
                assert (n >= 0) == (g.agree is False) and (n < 0 or rows["reasons"][n] == g.reason)


def test_batchnorm_at_init_is_flagged_and_baseline_agrees():
    bn, base = (chart_data.theory_rows(committed(n), "gain_backward") for n in ("batchnorm", "baseline"))
    assert all(k >= 0 for k in bn["notes"][0][:7]) and "BatchNorm's running statistics" in bn["reasons"][0]
    assert all(row is None for row in base["notes"])


def test_a_layerwise_method_is_thinned_to_about_a_hundred_epochs_and_keeps_every_stage_edge():
    full = chart_data.method_data("layerwise", "Layer-wise", committed("layerwise"))
    thin = chart_data.thinned(full)
    assert len(full["epochs"]) == 701 and 80 <= len(thin["epochs"]) <= chart_data.MAX_ROWS
    assert thin["epochs"][0] == 0 and thin["epochs"][-1] == 700
    for boundary in full["stages"]:  # the last epoch of a stage and the first of the next are both kept
        assert math.floor(boundary) in thin["epochs"] and math.ceil(boundary) in thin["epochs"]
    for j, epoch in enumerate(thin["epochs"]):  # every kept row is the full data's row of that epoch, unchanged
        i = full["epochs"].index(epoch)
        assert thin["labels"][j] == full["labels"][i]
        for key, stat in full["stats"].items():
            if "values" in stat:
                assert thin["stats"][key]["values"][j] == stat["values"][i]
    hundred = chart_data.method_data("baseline", "Baseline", committed("baseline"))
    assert chart_data.thinned(hundred) is hundred  # 101 epochs: nothing to thin


@pytest.mark.parametrize("name", ["baseline", "layerwise", "relu"])
def test_packed_data_sends_each_word_once_and_unpacks_to_the_same_data(name):
    data = chart_data.thinned(chart_data.method_data(name, name, committed(name)))
    sent = chart_data.packed(data)
    assert chart_data.unpacked(sent) == data
    assert len(sent["words"]) == len(set(sent["words"]))  # each word once
    for stat in sent["stats"].values():
        for row in stat.get("values", []):
            assert not any(isinstance(v, str) for v in row)  # words only by reference


def test_a_layerwise_pair_sends_under_a_fifth_of_a_megabyte(lab):
    """Issue 22: a layer-wise pair's chart data was 0.55-0.89 MB (0.7-2.6 s per pair change in the browser)."""
    for pair in (("baseline", "layerwise"), ("layerwise", "layerwise_6"), ("baseline", "batchnorm")):
        chart = chart_data.pair_data(*(compare.method_chart(lab, n) for n in pair))  # as comparison() makes it
        size = len(json.dumps(chart, separators=(",", ":"), allow_nan=False))
        assert size < 200_000, (pair, size)


def test_a_pair_of_unequal_runs_is_drawn_against_each_ones_share_of_its_training():
    base, layerwise, six = (chart_data.method_data(n, n, committed(n)) for n in ("baseline", "layerwise",
                                                                                  "layerwise_6"))
    unequal = chart_data.pair_data(base, layerwise)
    assert (unequal["x"], unequal["ends"]) == ("share", [100, 700])
    assert unequal["max_epoch"] == unequal["epoch"] == 700  # the API's epoch range stays in epochs
    close = chart_data.pair_data(layerwise, six)  # 700 and 600 epochs: one epoch axis
    assert (close["x"], close["ends"]) == ("epoch", [700, 600])
    assert chart_data.pair_data(base, base)["x"] == "epoch"
    # a Playground run (its planned epochs given) always has an epoch axis
    assert chart_data.pair_data(base, chart_data.until(layerwise, 10), max_epoch=100)["x"] == "epoch"


def test_prediction_grids_in_words_list_every_image_and_answer(lab):
    """The grid's text alternative (its alt on the page): the method, how many right, each image's class and answer,
    from the same model call as the drawn grid."""
    g = compare.prediction_grid(lab, "batchnorm")
    words = compare.predictions_text(lab, "batchnorm")
    right = sum(p == t for p, t in zip(g.predicted, g.truth, strict=True))
    assert words.startswith(f"{METHODS['batchnorm'].title}'s predictions on 12 test images: {right} of 12 right; ")
    pairs = words.split("; ", 1)[1].split(", ")
    assert len(pairs) == 12 and pairs[0].startswith(f"{CLASSES[g.truth[0]]} → {CLASSES[g.predicted[0]]}")
    assert pages.predictions_text("M", ["Bag", "Coat"], ["Bag", "Shirt"]) == (
        "M's predictions on 2 test images: 1 of 2 right; Bag → Bag ✓, Coat → Shirt ✗")
    assert pages.predictions_text("M", ["Bag", "Coat"], None) == "M is not trained yet: 2 test images, Bag, Coat"
