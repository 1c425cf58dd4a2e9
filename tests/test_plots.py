"""core.plots: the figures are checked through their artists (bar heights, lines, colours, notes), on
small synthetic metrics dicts shaped like metrics.json, so no dataset or training is needed. The values
they draw are read by core.history (test_history.py); the results table's figures are in
test_results_plots.py."""
from __future__ import annotations

import ast
import copy
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import same_color
from matplotlib.figure import Figure

from core import history, plots
from core.data import CLASSES
from core.methods import METHODS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------- fixtures

def make_metrics(method: str = "baseline", depth: int = 7, epochs: int = 3, activation: str = "sigmoid",
                 stages: list[dict] | None = None, title: str | None = None, new_stats: bool = False) -> dict:
    """A metrics.json-shaped dict with distinct, known values: layer i's grad_mean_abs at epoch e is
    10**-(depth - i + 2) * (1 + e) (so hidden1 << output), rel_weight_change is 0 at init. new_stats adds
    error_mean_abs and activation_std, which metrics.json files written before them lack."""
    names = [f"hidden{i + 1}" for i in range(depth)] + ["output"]
    history = []
    for e in range(epochs + 1):
        layers = []
        for i, name in enumerate(names):
            g = 10.0 ** -(len(names) - 1 - i + 2) * (1 + e)
            layers.append({"name": name, "grad_mean_abs": g, "grad_max_abs": 8 * g, "grad_norm": 100 * g,
                           "weight_std": 0.05, "rel_weight_change": 0.0 if e == 0 else g * e * 3,
                           "update_ratio": None if e == 0 else g / 10,
                           "saturation": None if name == "output" or activation == "relu" else 0.1 * i})
            if new_stats:
                layers[-1].update(error_mean_abs=g / 2, activation_std=None if name == "output" else 0.3 - 0.02 * i)
        history.append({"epoch": e, "stage": 1, "train_loss": 2.3 - 0.1 * e, "train_acc": 0.1 + 0.05 * e,
                        "val_loss": 2.31 - 0.09 * e, "val_acc": 0.1 + 0.04 * e, "layers": layers})
    m = {"method": method, "seed": 42,
         "config": {"depth": depth, "activation": activation, "stages": stages or [], "epochs": epochs},
         "epochs": epochs, "train_seconds": 1.0, "test_acc": 0.1, "test_loss": 2.3, "stopped": None,
         "history": history}
    if title:
        m["title"] = title
    return m


def make_layerwise(per_stage: int = 2) -> dict:
    """Layer-wise shape: stage 1 trains hidden1-2 (hidden3..7 null), stage 2 freezes hidden1-2 and trains
    hidden3-4, stage 3 fine-tunes hidden1-4."""
    m = make_metrics("layerwise", epochs=3 * per_stage,
                     stages=[{"depth": 2, "frozen": 0}, {"depth": 4, "frozen": 2}, {"depth": 4, "frozen": 0}])
    for row in m["history"]:
        stage = 1 if row["epoch"] <= per_stage else 2 if row["epoch"] <= 2 * per_stage else 3
        row["stage"] = stage
        used = {1: (1, 2), 2: (3, 4), 3: (1, 2, 3, 4)}[stage]
        for layer in row["layers"]:
            if layer["name"] != "output" and int(layer["name"][6:]) not in used:
                for k in ("grad_mean_abs", "grad_max_abs", "grad_norm", "update_ratio"):
                    layer[k] = None
                if stage == 1 or int(layer["name"][6:]) > 4:
                    layer["rel_weight_change"] = 0.0
    return m


def layer(m: dict, epoch: int, name: str) -> dict:
    row = next(r for r in m["history"] if r["epoch"] == epoch)
    return next(entry for entry in row["layers"] if entry["name"] == name)


def bars(ax) -> dict[str, float]:
    """gid -> height of every bar drawn in `ax`."""
    return {p.get_gid(): p.get_height() for p in ax.patches if p.get_gid()}


def notes(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == "note"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------------------------ gradient flow

def test_gradient_flow_two_log_panels_share_y_and_show_the_chosen_epoch():
    left, right = make_metrics(depth=7), make_metrics("relu", depth=7, activation="relu")
    right["history"] = right["history"][:3]  # right trained fewer epochs: 0..2
    fig = plots.gradient_flow_figure(left, right, epoch=1)
    assert isinstance(fig, Figure)
    ax_l, ax_r = fig.axes
    assert ax_l.get_yscale() == ax_r.get_yscale() == "log"
    assert ax_l.get_ylim() == ax_r.get_ylim()
    assert ax_l.get_shared_y_axes().joined(ax_l, ax_r)
    for ax, m in ((ax_l, left), (ax_r, right)):
        heights = bars(ax)
        assert len(heights) == 16  # 8 layers x (init, epoch 1)
        for name in [f"hidden{i}" for i in range(1, 8)] + ["output"]:
            assert heights[f"epoch:{name}"] == pytest.approx(layer(m, 1, name)["grad_mean_abs"])
            assert heights[f"init:{name}"] == pytest.approx(layer(m, 0, name)["grad_mean_abs"])
        assert "epoch 1" in ax.get_title()
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"hidden{i}" for i in range(1, 8)] + ["output"]
    assert history.method_title(left) in ax_l.get_title() and METHODS["relu"].title in ax_r.get_title()
    # every bar fits inside the shared limits
    lo, hi = ax_l.get_ylim()
    assert all(lo < h < hi for ax in fig.axes for h in bars(ax).values())
    # init bars lighter than the chosen epoch's, left and right in their own colours
    assert same_color(next(p for p in ax_l.patches if p.get_gid() == "epoch:output").get_facecolor(),
                      plots.LEFT_COLOR)
    assert same_color(next(p for p in ax_r.patches if p.get_gid() == "epoch:output").get_facecolor(),
                      plots.RIGHT_COLOR)
    assert not same_color(next(p for p in ax_l.patches if p.get_gid() == "init:output").get_facecolor(),
                          plots.LEFT_COLOR)


def test_gradient_flow_epoch_none_is_last_and_beyond_range_is_clamped():
    left, right = make_metrics(epochs=3), make_metrics("relu", epochs=5, activation="relu")
    for epoch in (None, 99):
        ax_l, ax_r = plots.gradient_flow_figure(left, right, epoch=epoch).axes
        assert bars(ax_l)["epoch:hidden1"] == pytest.approx(layer(left, 3, "hidden1")["grad_mean_abs"])
        assert bars(ax_r)["epoch:hidden1"] == pytest.approx(layer(right, 5, "hidden1")["grad_mean_abs"])
        assert "epoch 3 (last)" in ax_l.get_title() and "epoch 5 (last)" in ax_r.get_title()
    # epoch 4 exists only on the right: the left is clamped to its last
    ax_l, ax_r = plots.gradient_flow_figure(left, right, epoch=4).axes
    assert "epoch 3" in ax_l.get_title() and "epoch 4" in ax_r.get_title()
    assert bars(ax_r)["epoch:output"] == pytest.approx(layer(right, 4, "output")["grad_mean_abs"])


def test_gradient_flow_epoch_zero_draws_init_only_and_negative_is_clamped_to_init():
    m = make_metrics()
    for epoch in (0, -5):
        ax = plots.gradient_flow_figure(m, m, epoch=epoch).axes[0]
        heights = bars(ax)
        assert set(heights) == {f"epoch:{n}" for n in [f"hidden{i}" for i in range(1, 8)] + ["output"]}
        assert heights["epoch:hidden4"] == pytest.approx(layer(m, 0, "hidden4")["grad_mean_abs"])
        assert "epoch 0 (init)" in ax.get_title()


def test_gradient_flow_annotates_first_over_output_ratio():
    m = make_metrics(depth=3)
    ax = plots.gradient_flow_figure(m, m).axes[0]
    ratio = layer(m, 3, "hidden1")["grad_mean_abs"] / layer(m, 3, "output")["grad_mean_abs"]
    init_ratio = layer(m, 0, "hidden1")["grad_mean_abs"] / layer(m, 0, "output")["grad_mean_abs"]
    assert history.gradient_ratio(m, None) == pytest.approx(ratio)
    assert history.gradient_ratio(m, 0) == pytest.approx(init_ratio)
    (text,) = [t.get_text() for t in ax.texts if t.get_gid() == "ratio"]
    assert "hidden1 / output" in text and f"{ratio:.1e}" in text and f"init {init_ratio:.1e}" in text


def test_gradient_flow_layerwise_nulls_draw_no_bar_but_a_note():
    m = make_layerwise(per_stage=2)
    # epoch 3 = stage 2: hidden1-2 frozen, hidden3-4 trained, hidden5-7 not yet added
    ax = plots.gradient_flow_figure(m, m, epoch=3).axes[0]
    heights = bars(ax)
    assert {"epoch:hidden3", "epoch:hidden4", "epoch:output"} <= set(heights)
    for name in ("hidden1", "hidden2", "hidden5", "hidden6", "hidden7"):
        assert f"epoch:{name}" not in heights
    for name in ("hidden3", "hidden4", "hidden5", "hidden6", "hidden7"):
        assert f"init:{name}" not in heights  # not part of the model at init
    texts = notes(ax)
    assert texts.count("frozen") == 2
    assert texts.count("not trained yet") == 3 + 2  # hidden5-7 (one note per group) + hidden3-4 at init
    assert "stage 2/3" in ax.get_title()
    ratio_text = next(t.get_text() for t in ax.texts if t.get_gid() == "ratio")
    assert "n/a" in ratio_text and "frozen" in ratio_text
    plots.figure_to_png(plots.gradient_flow_figure(m, m, epoch=3))


def test_gradient_flow_zero_and_nan_values_never_reach_the_log_axis():
    m = make_metrics()
    layer(m, 3, "hidden2")["grad_mean_abs"] = 0.0
    layer(m, 3, "hidden3")["grad_mean_abs"] = float("nan")
    ax = plots.gradient_flow_figure(m, None).axes[0]
    heights = bars(ax)
    assert "epoch:hidden2" not in heights and "epoch:hidden3" not in heights
    assert all(h > 0 for h in heights.values())
    assert "0" in notes(ax)
    png_size(plots.figure_to_png(ax.figure))


def test_gradient_flow_update_ratio_at_init_is_explained():
    m = make_metrics()
    ax = plots.gradient_flow_figure(m, m, epoch=0, key="update_ratio").axes[0]
    assert bars(ax) == {}
    assert notes(ax).count("no update yet") == 8
    # after training: no init bars (init has no update_ratio at all), only the chosen epoch's
    ax = plots.gradient_flow_figure(m, m, key="update_ratio").axes[0]
    assert set(bars(ax)) == {f"epoch:{n}" for n in [f"hidden{i}" for i in range(1, 8)] + ["output"]}
    assert bars(ax)["epoch:hidden1"] == pytest.approx(layer(m, 3, "hidden1")["update_ratio"])
    assert "init" not in next(t.get_text() for t in ax.texts if t.get_gid() == "ratio")


def test_gradient_flow_fractions_use_a_linear_axis_without_ratio():
    m, relu = make_metrics(), make_metrics("relu", activation="relu")
    fig = plots.gradient_flow_figure(m, relu, key="saturation")
    ax, ax_relu = fig.axes
    assert ax.get_yscale() == "linear" and ax.get_ylim() == ax_relu.get_ylim() and ax.get_ylim()[0] == 0
    heights = bars(ax)
    assert heights["epoch:hidden1"] == 0.0  # a real 0 is a (flat) bar on a linear axis
    assert heights["epoch:hidden5"] == pytest.approx(layer(m, 3, "hidden5")["saturation"])
    assert "epoch:output" not in heights and notes(ax) == ["n/a"]  # the output has no activation
    assert bars(ax_relu) == {} and notes(ax_relu).count("n/a (ReLU)") == 7
    assert not [t for a in fig.axes for t in a.texts if t.get_gid() == "ratio"]
    png_size(plots.figure_to_png(fig))


def test_gradient_flow_different_depths_and_missing_side():
    shallow, deep = make_metrics("baseline_3", depth=3), make_metrics(depth=7)
    ax_l, ax_r = plots.gradient_flow_figure(shallow, deep).axes
    assert [t.get_text() for t in ax_l.get_xticklabels()] == ["hidden1", "hidden2", "hidden3", "output"]
    assert len(ax_r.get_xticklabels()) == 8
    assert ax_l.get_ylim() == ax_r.get_ylim()
    assert len(bars(ax_l)) == 8 and len(bars(ax_r)) == 16
    for left, right in ((deep, None), (None, deep), (None, None), (deep, {"method": "x", "history": []})):
        fig = plots.gradient_flow_figure(left, right)
        empty = [ax for ax in fig.axes if not bars(ax)]
        assert any("not trained yet" in t.get_text() for ax in empty for t in ax.texts)
        png_size(plots.figure_to_png(fig))


def test_gradient_flow_backpropagated_error_on_a_log_axis_with_its_ratio():
    m = make_metrics(depth=3, new_stats=True)
    ax = plots.gradient_flow_figure(m, m, key="error_mean_abs").axes[0]
    assert ax.get_yscale() == "log"
    assert bars(ax)["epoch:hidden2"] == pytest.approx(layer(m, 3, "hidden2")["error_mean_abs"])
    assert bars(ax)["init:output"] == pytest.approx(layer(m, 0, "output")["error_mean_abs"])
    ratio = layer(m, 3, "hidden1")["error_mean_abs"] / layer(m, 3, "output")["error_mean_abs"]
    (text,) = [t.get_text() for t in ax.texts if t.get_gid() == "ratio"]
    assert text.startswith("hidden1 / output mean|error|") and f"{ratio:.1e}" in text
    assert "∂ℓ/∂z" in ax.get_ylabel()


def test_gradient_flow_activation_std_on_a_linear_axis_without_output():
    m = make_metrics(new_stats=True)
    fig = plots.gradient_flow_figure(m, None, epoch=2, key="activation_std")
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert bars(ax)["epoch:hidden3"] == pytest.approx(layer(m, 2, "hidden3")["activation_std"])
    assert "epoch:output" not in bars(ax) and notes(ax) == ["n/a"]  # the output layer has no activation
    assert not [t for t in ax.texts if t.get_gid() == "ratio"]
    png_size(plots.figure_to_png(fig))


@pytest.mark.parametrize("key", ["error_mean_abs", "activation_std"])
def test_gradient_flow_statistic_missing_from_older_metrics_is_noted_not_raised(key):
    old, new = make_metrics(), make_metrics("relu", activation="relu", new_stats=True)
    fig = plots.gradient_flow_figure(old, new, key=key)
    ax_old, ax_new = fig.axes
    assert bars(ax_old) == {} and notes(ax_old) == ["not recorded"] * 8  # one note per layer group
    assert bars(ax_new)
    if key in plots.LOG_KEYS:
        assert "(hidden1 not recorded)" in next(t.get_text() for t in ax_old.texts if t.get_gid() == "ratio")
    png_size(plots.figure_to_png(fig))


# ----------------------------------------------------------------------------------------- weight change

def test_weight_change_bars_match_metrics_with_method_colours():
    left, right = make_metrics(depth=7), make_metrics("baseline_3", depth=3)
    fig = plots.weight_change_figure(left, right, epoch=2)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    heights = bars(ax)
    for i in range(1, 8):
        assert heights[f"0:hidden{i}"] == pytest.approx(layer(left, 2, f"hidden{i}")["rel_weight_change"])
    for name in ("hidden1", "hidden2", "hidden3", "output"):
        assert heights[f"1:{name}"] == pytest.approx(layer(right, 2, name)["rel_weight_change"])
    assert len(heights) == 8 + 4
    assert notes(ax).count("no layer") == 4  # the 3-layer net has no hidden4..7
    colors = {p.get_gid()[0]: p.get_facecolor() for p in ax.patches if p.get_gid()}
    assert same_color(colors["0"], plots.LEFT_COLOR) and same_color(colors["1"], plots.RIGHT_COLOR)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("epoch 2" in t for t in legend) and len(legend) == 2
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "output"


def test_weight_change_at_init_is_all_zero_and_handled():
    m = make_metrics()
    fig = plots.weight_change_figure(m, m, epoch=0)
    ax = fig.axes[0]
    assert bars(ax) == {}
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0
    assert any("all changes are 0" in t.get_text() for t in ax.texts)
    lw = make_layerwise()
    ax = plots.weight_change_figure(lw, None, epoch=1).axes[0]
    assert notes(ax).count("not trained yet") == 5  # hidden3..7 never moved in stage 1
    assert set(bars(ax)) == {"0:hidden1", "0:hidden2", "0:output"}
    png_size(plots.figure_to_png(plots.weight_change_figure(None, None)))


# --------------------------------------------------------------------------------------- training curves

def test_training_curves_lines_styles_and_ranges():
    left, right = make_metrics(epochs=3), make_metrics("relu", epochs=6, activation="relu")
    fig = plots.training_curves_figure(left, right)
    ax_loss, ax_acc = fig.axes
    for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
        assert len(ax.lines) == 4  # 2 methods x (train, val)
        by = {(same_color(ln.get_color(), plots.LEFT_COLOR), ln.get_gid()): ln for ln in ax.lines}
        assert set(by) == {(True, f"train_{what}"), (True, f"val_{what}"),
                           (False, f"train_{what}"), (False, f"val_{what}")}
        for line in ax.lines:
            assert line.get_linestyle() == ("--" if line.get_gid().startswith("train") else "-")
        left_val = by[(True, f"val_{what}")]
        assert list(left_val.get_xdata()) == [0, 1, 2, 3]
        assert list(left_val.get_ydata()) == pytest.approx([r[f"val_{what}"] for r in left["history"]])
        assert max(by[(False, f"val_{what}")].get_xdata()) == 6
        assert ax.get_xlim() == (0, 6)
        assert not [c for c in ax.collections if c.get_gid() == "stage_boundaries"]
    assert ax_acc.get_ylim() == (0, 1)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert history.method_title(left) in labels and METHODS["relu"].title in labels
    assert {"validation", "train"} <= set(labels)


def test_training_curves_layerwise_stage_boundaries_and_missing_values():
    lw = make_layerwise(per_stage=2)
    lw["history"][3]["val_loss"] = None  # a gap, not a crash
    lw["history"][4]["train_loss"] = float("nan")
    fig = plots.training_curves_figure(lw, None)
    ax_loss, ax_acc = fig.axes
    assert len(ax_loss.lines) == 2 and len(ax_acc.lines) == 2
    for ax in (ax_loss, ax_acc):
        (vl,) = [c for c in ax.collections if c.get_gid() == "stage_boundaries"]
        assert isinstance(vl, LineCollection)
        xs = sorted(seg[0][0] for seg in vl.get_segments())
        assert xs == [2.5, 4.5]  # between stage 1|2 and 2|3
    val = next(ln for ln in ax_loss.lines if ln.get_gid() == "val_loss")
    assert np.isnan(val.get_ydata()[3])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "layer-wise stage boundary" in labels and "not trained yet" in labels
    png_size(plots.figure_to_png(fig))
    fig = plots.training_curves_figure(None, None)
    assert all(len(ax.lines) == 0 for ax in fig.axes)
    png_size(plots.figure_to_png(fig))


def test_training_curves_switch_loss_to_log_when_it_spans_decades():
    m = make_metrics(epochs=3)
    for r, v in zip(m["history"], (40.0, 5.0, 0.5, 0.3)):
        r["train_loss"] = r["val_loss"] = v
    assert plots.training_curves_figure(m, None).axes[0].get_yscale() == "log"
    assert plots.training_curves_figure(make_metrics(), None).axes[0].get_yscale() == "linear"


# ------------------------------------------------------------------------------------------- predictions

def _predictions_inputs(n=12, wrong=(1, 4, 7)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % 10
    preds = labels.copy()
    preds[list(wrong)] = (preds[list(wrong)] + 3) % 10
    return images, labels, preds


def test_predictions_marks_exactly_the_wrong_ones():
    images, labels, preds = _predictions_inputs()
    fig = plots.predictions_figure(images, labels, preds, "ReLU activation", columns=6)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 12
    wrong = [i for i, ax in enumerate(image_axes) if ax.get_gid() == "wrong"]
    assert wrong == [1, 4, 7]
    red_frames = [i for i, ax in enumerate(image_axes)
                  if all(same_color(s.get_edgecolor(), plots.WRONG_MARK) for s in ax.spines.values())]
    assert red_frames == [1, 4, 7]
    red_captions = [i for i, ax in enumerate(image_axes)
                    if same_color(ax.xaxis.label.get_color(), plots.WRONG_MARK)]
    green_captions = [i for i, ax in enumerate(image_axes)
                      if same_color(ax.xaxis.label.get_color(), plots.RIGHT_MARK)]
    assert red_captions == [1, 4, 7] and len(green_captions) == 9
    cap = image_axes[1].get_xlabel()
    assert cap == f"pred: {plots.SHORT_CLASSES[4]}\ntrue: {CLASSES[1]}"
    assert image_axes[0].get_xlabel() == f"pred: {plots.SHORT_CLASSES[0]}"  # no "true:" when right
    assert "true" not in image_axes[2].get_xlabel()
    assert "9/12 correct (75%)" in fig._suptitle.get_text() and "ReLU activation" in fig._suptitle.get_text()
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in image_axes)
    assert image_axes[0].images[0].get_cmap().name == "gray"
    png_size(plots.figure_to_png(fig))


def test_predictions_partial_grid_floats_and_untrained():
    images, labels, preds = _predictions_inputs(n=7, wrong=())
    floats = images.astype(np.float32) / 255
    fig = plots.predictions_figure(floats.reshape(7, 784), labels, preds, "m", columns=4)
    assert len([ax for ax in fig.axes if ax.images]) == 7
    assert len([ax for ax in fig.axes if not ax.axison]) == 1  # 8 cells, 7 images
    assert "7/7 correct (100%)" in fig._suptitle.get_text()
    assert fig.axes[0].images[0].get_clim() == (0, 1.0)
    fig = plots.predictions_figure(images, labels, None, "m")
    assert "not trained yet" in fig._suptitle.get_text()
    assert all(ax.get_xlabel().startswith("true: ") for ax in fig.axes if ax.images)
    fig = plots.predictions_figure(np.zeros((0, 28, 28), np.uint8), np.zeros(0), np.zeros(0), "empty")
    png_size(plots.figure_to_png(fig))


# ---------------------------------------------------------------------------------------------- colours

def test_lighten_mixes_with_white_as_hex():
    assert plots.lighten("#000000", 0.5) == "#808080"
    assert plots.lighten("#1f6fb4", 0.0) == "#1f6fb4" and plots.lighten("#1f6fb4", 1.0) == "#ffffff"
    assert plots.lighten(plots.LEFT_COLOR) == "#9abedd"  # the init bars' shade (default amount 0.55)
    assert plots.lighten("tab:blue", 0.5) == "#8fbbda"  # any matplotlib colour


# --------------------------------------------------------------------------------------------- rendering

def test_every_figure_renders_to_png_at_web_size(tmp_path: Path):
    left, right = make_metrics(), make_layerwise()
    images, labels, preds = _predictions_inputs()
    figs = {
        "gradient_flow": plots.gradient_flow_figure(left, right),
        "weight_change": plots.weight_change_figure(left, right),
        "training_curves": plots.training_curves_figure(left, right),
        "predictions": plots.predictions_figure(images, labels, preds, "x"),
    }
    for name, fig in figs.items():
        data = plots.figure_to_png(fig)
        assert data[:8] == PNG_MAGIC and len(data) > 5_000, name
        w, h = png_size(data)
        assert (w, h) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi)), name
        assert 300 <= w <= 1000 and 200 <= h <= 900, (name, w, h)
        (tmp_path / f"{name}.png").write_bytes(data)


def test_inputs_are_not_mutated_and_module_avoids_pyplot():
    left, right = make_layerwise(), make_metrics()
    before = copy.deepcopy((left, right))
    plots.gradient_flow_figure(left, right, epoch=2)
    plots.weight_change_figure(left, right)
    plots.training_curves_figure(left, right)
    assert (left, right) == before
    tree = ast.parse(Path(plots.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
        {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any("pyplot" in m for m in imported)
    assert "methods" not in imported  # titles come through core.history, never from the registry here
