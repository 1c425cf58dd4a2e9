"""ui.figures: every PNG figure, checked through its artists (bar heights, lines, colours, notes) on small
synthetic metrics dicts shaped like metrics.json and rows shaped like core.results.summarize()'s, so no dataset
or training is needed; and the Compare figures as composed, by their pixels. The values they draw are read by
core.history (test_history.py)."""
from __future__ import annotations

import ast
import copy
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import same_color, to_rgb
from PIL import Image

from core import history
from core.data import CLASSES
from core.methods import METHODS
from ui import figures

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

HIDDEN7 = [f"hidden{i}" for i in range(1, 8)] + ["output"]


def flow(left, right=None):
    """The two gradient-flow layers of a pair on axes shared by both, and the base."""
    axes = figures.shared_axes([left, right])
    return figures.flow_layer(axes, left, "left"), figures.flow_layer(axes, right, "right"), axes


def test_gradient_flow_layers_share_one_log_axis_and_show_init_and_the_last_epoch():
    left, right = make_metrics(depth=7), make_metrics("relu", depth=7, activation="relu")
    right["history"] = right["history"][:3]  # right trained fewer epochs: 0..2
    fig_l, fig_r, axes = flow(left, right)
    for fig, m, last in ((fig_l, left, 3), (fig_r, right, 2)):
        (ax,) = fig.axes
        assert ax.get_yscale() == "log" and ax.get_ylim() == pytest.approx(axes.flow)
        heights = bars(ax)
        assert len(heights) == 16  # 8 layers x (init, last epoch)
        for name in HIDDEN7:
            assert heights[f"epoch:{name}"] == pytest.approx(layer(m, last, name)["grad_mean_abs"])
            assert heights[f"init:{name}"] == pytest.approx(layer(m, 0, name)["grad_mean_abs"])
        assert f"epoch {last} (last)" in ax.get_title()
        assert [t.get_text() for t in ax.get_xticklabels()] == HIDDEN7
        lo, hi = axes.flow
        assert all(lo < h < hi for h in heights.values())  # every bar inside the axis every method shares
    assert history.method_title(left) in fig_l.axes[0].get_title()
    assert METHODS["relu"].title in fig_r.axes[0].get_title()
    # init bars lighter than the last epoch's, left and right in their own colours
    colour = lambda fig, gid: next(p for p in fig.axes[0].patches if p.get_gid() == gid).get_facecolor()
    assert same_color(colour(fig_l, "epoch:output"), figures.LEFT_COLOR)
    assert same_color(colour(fig_r, "epoch:output"), figures.RIGHT_COLOR)
    assert same_color(colour(fig_l, "init:output"), figures.lighten(figures.LEFT_COLOR))
    base = figures.flow_base(axes)
    assert [a.get_ylim() for a in base.axes] == [pytest.approx(axes.flow)] * 2 and not bars(base.axes[0])
    assert "same for every method" in base.axes[0].get_ylabel()


def test_gradient_flow_of_an_untrained_record_draws_init_only():
    m = make_metrics(epochs=0)
    (ax,) = flow(m)[0].axes
    assert set(bars(ax)) == {f"epoch:{n}" for n in HIDDEN7}
    assert bars(ax)["epoch:hidden4"] == pytest.approx(layer(m, 0, "hidden4")["grad_mean_abs"])
    assert "epoch 0 (init)" in ax.get_title()


def test_gradient_flow_annotates_first_over_output_ratio():
    m = make_metrics(depth=3)
    ax = flow(m)[0].axes[0]
    ratio = layer(m, 3, "hidden1")["grad_mean_abs"] / layer(m, 3, "output")["grad_mean_abs"]
    init_ratio = layer(m, 0, "hidden1")["grad_mean_abs"] / layer(m, 0, "output")["grad_mean_abs"]
    assert history.gradient_ratio(m, None) == pytest.approx(ratio)
    (text,) = [t.get_text() for t in ax.texts if t.get_gid() == "ratio"]
    assert "hidden1 / output mean|grad|" in text and f"{ratio:.1e}" in text and f"init {init_ratio:.1e}" in text


def test_gradient_flow_layerwise_nulls_draw_no_bar_but_a_note():
    m = make_layerwise(per_stage=2)
    m["history"] = m["history"][:4]  # ends at epoch 3, stage 2: hidden1-2 frozen, hidden3-4 trained, 5-7 not added
    ax = flow(m)[0].axes[0]
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
    assert "n/a" in ratio_text and "(hidden1 frozen)" in ratio_text


def test_gradient_flow_zero_and_nan_values_never_reach_the_log_axis():
    m = make_metrics()
    layer(m, 3, "hidden2")["grad_mean_abs"] = 0.0
    layer(m, 3, "hidden3")["grad_mean_abs"] = float("nan")
    ax = flow(m)[0].axes[0]
    heights = bars(ax)
    assert "epoch:hidden2" not in heights and "epoch:hidden3" not in heights
    assert all(h > 0 for h in heights.values())
    assert notes(ax) == ["0", "frozen"]  # a NaN where earlier epochs had a gradient: as history words it


def test_gradient_flow_different_depths_and_a_missing_side():
    shallow, deep = make_metrics("baseline_3", depth=3), make_metrics(depth=7)
    fig_l, fig_r, _ = flow(shallow, deep)
    assert [t.get_text() for t in fig_l.axes[0].get_xticklabels()] == ["hidden1", "hidden2", "hidden3", "output"]
    assert len(fig_r.axes[0].get_xticklabels()) == 8
    assert len(bars(fig_l.axes[0])) == 8 and len(bars(fig_r.axes[0])) == 16
    for missing in (None, {"method": "x", "history": []}):
        (ax,) = flow(deep, missing)[1].axes
        assert not bars(ax) and [t.get_text() for t in ax.texts] == ["not trained yet"]


# ----------------------------------------------------------------------------------------- weight change

def test_weight_change_bars_match_metrics_in_their_halves_of_shared_slots():
    left, right = make_metrics(depth=7), make_metrics("baseline_3", depth=3)
    axes = figures.shared_axes([left, right])
    assert axes.slots == tuple(HIDDEN7)  # every layer either method has, in order
    fig_l, fig_r = (figures.change_layer(axes, m, side) for m, side in ((left, "left"), (right, "right")))
    (ax_l,), (ax_r,) = fig_l.axes, fig_r.axes
    assert ax_l.get_yscale() == "log" and ax_l.get_ylim() == pytest.approx(axes.change) == ax_r.get_ylim()
    for name in HIDDEN7:
        assert bars(ax_l)[f"left:{name}"] == pytest.approx(layer(left, 3, name)["rel_weight_change"])
    assert set(bars(ax_r)) == {"right:hidden1", "right:hidden2", "right:hidden3", "right:output"}
    assert notes(ax_r).count("no layer") == 4  # the 3-layer net has no hidden4..7
    x = {p.get_gid(): p.get_x() + p.get_width() / 2 for ax in (ax_l, ax_r) for p in ax.patches if p.get_gid()}
    assert x["left:hidden1"] < 0 < x["right:hidden1"] < 1 and x["right:output"] > 6  # side by side per slot
    assert all(same_color(p.get_facecolor(), figures.RIGHT_COLOR) for p in ax_r.patches if p.get_gid())
    (legend,) = fig_r.legends
    assert [t.get_text() for t in legend.get_texts()] == [f"{METHODS['baseline_3'].title}, epoch 3 (last)"]
    base = figures.change_base(axes)
    assert [t.get_text() for t in base.axes[0].get_xticklabels()] == list(axes.slots)


def test_weight_change_at_init_and_before_a_layer_trains_is_explained():
    m = make_metrics(epochs=0)
    axes = figures.shared_axes([m])
    ax = figures.change_layer(axes, m, "left").axes[0]
    assert bars(ax) == {} and notes(ax) == ["unchanged (0)"] * 8
    lw = make_layerwise()
    lw["history"] = lw["history"][:2]  # epoch 1, stage 1: hidden3..7 never moved
    ax = figures.change_layer(figures.shared_axes([lw]), lw, "left").axes[0]
    assert notes(ax).count("not trained yet") == 5
    assert set(bars(ax)) == {"left:hidden1", "left:hidden2", "left:output"}
    (legend,) = figures.change_layer(axes, None, "right").legends
    assert [t.get_text() for t in legend.get_texts()] == ["not trained yet"]


# --------------------------------------------------------------------------------------- training curves

def test_training_curves_lines_styles_and_axis():
    left, right = make_metrics(epochs=3), make_metrics("relu", epochs=6, activation="relu")
    axes = figures.shared_axes([left, right])
    fig = figures.curves_layer(axes, left, "left", last_epoch=6)
    ax_loss, ax_acc = fig.axes
    for ax, what in ((ax_loss, "loss"), (ax_acc, "acc")):
        by = {ln.get_gid(): ln for ln in ax.lines}
        assert set(by) == {f"train_{what}", f"val_{what}"}
        assert by[f"train_{what}"].get_linestyle() == "--" and by[f"val_{what}"].get_linestyle() == "-"
        assert all(same_color(ln.get_color(), figures.LEFT_COLOR) for ln in ax.lines)
        assert list(by[f"val_{what}"].get_xdata()) == [0, 1, 2, 3]
        assert list(by[f"val_{what}"].get_ydata()) == pytest.approx([r[f"val_{what}"] for r in left["history"]])
        assert ax.get_xlim() == (0, 6)  # the pair's longer run
        assert not [c for c in ax.collections if c.get_gid() == "stage_boundaries"]
    assert ax_acc.get_ylim() == (0, 1) and ax_loss.get_ylim() == pytest.approx(axes.loss)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [history.method_title(left)]
    base = figures.curves_base(axes, 6)
    assert [t.get_text() for t in base.legends[0].get_texts()] == ["validation", "train", "chance (0.1)"]


def test_training_curves_layerwise_stage_boundaries_and_missing_values():
    lw = make_layerwise(per_stage=2)
    lw["history"][3]["val_loss"] = None  # a gap, not a crash
    lw["history"][4]["train_loss"] = float("nan")
    fig = figures.curves_layer(figures.shared_axes([lw]), lw, "right", last_epoch=6)
    ax_loss, ax_acc = fig.axes
    for ax in (ax_loss, ax_acc):
        (vl,) = [c for c in ax.collections if c.get_gid() == "stage_boundaries"]
        assert isinstance(vl, LineCollection)
        assert sorted(seg[0][0] for seg in vl.get_segments()) == [2.5, 4.5]  # between stages 1|2 and 2|3
    val = next(ln for ln in ax_loss.lines if ln.get_gid() == "val_loss")
    assert np.isnan(val.get_ydata()[3])
    assert fig.legends[0].get_texts()[0].get_text().endswith("(dotted: stage boundaries)")
    fig = figures.curves_layer(figures.shared_axes([None]), None, "left", last_epoch=1)
    assert all(len(ax.lines) == 0 for ax in fig.axes)
    assert fig.legends[0].get_texts()[0].get_text() == "not trained yet (not trained yet)"


def test_training_curves_switch_loss_to_log_when_losses_span_decades():
    m = make_metrics(epochs=3)
    for r, v in zip(m["history"], (40.0, 5.0, 0.5, 0.3)):
        r["train_loss"] = r["val_loss"] = v
    wide, flat = figures.shared_axes([m, make_metrics()]), figures.shared_axes([make_metrics()])
    assert wide.loss_log and wide.loss[0] < 0.3 and wide.loss[1] > 40 and not flat.loss_log
    assert figures.curves_base(wide, 3).axes[0].get_yscale() == "log"
    assert figures.curves_layer(wide, m, "left", 3).axes[0].get_yscale() == "log"
    assert figures.curves_base(flat, 3).axes[0].get_yscale() == "linear"


# ------------------------------------------------------------------------------------ a pair, composed

def _pixels(image) -> set[tuple[int, int, int]]:
    return set(map(tuple, np.asarray(image.convert("RGB")).reshape(-1, 3)))


def test_a_pair_is_its_base_with_both_layers_in_their_colours():
    left, right = make_metrics(), make_metrics("relu", activation="relu")
    axes = figures.shared_axes([left, right])
    for kind in figures.KINDS:
        base = figures.decoded(figures.base(kind, axes, 3))
        layers = [figures.cropped(figures.layer(kind, axes, m, side, 3)) for m, side in ((left, "left"),
                                                                                      (right, "right"))]
        pair = figures.compose(base, layers)
        assert pair.mode == "RGB" and pair.size == base.size
        size = {"gradient_flow": figures.FLOW_SIZE, "curves": figures.CURVES_SIZE,
                "weight_change": figures.CHANGE_SIZE}[kind]
        assert pair.size == tuple(round(v * figures.DPI) for v in size)
        colours = _pixels(pair)
        for colour in (figures.LEFT_COLOR, figures.RIGHT_COLOR):  # each method's own colour, exactly, somewhere
            assert tuple(round(c * 255) for c in to_rgb(colour)) in colours, (kind, colour)
        assert tuple(round(c * 255) for c in to_rgb(figures.LEFT_COLOR)) not in _pixels(base), kind
        (x, y), data = layers[0]
        assert (x, y) > (0, 0) and png_size(data)[0] < pair.width  # a layer is kept cropped to what it draws


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
    fig = figures.predictions_figure(images, labels, preds, "ReLU activation", columns=6)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 12
    wrong = [i for i, ax in enumerate(image_axes) if ax.get_gid() == "wrong"]
    assert wrong == [1, 4, 7]
    red_frames = [i for i, ax in enumerate(image_axes)
                  if all(same_color(s.get_edgecolor(), figures.WRONG_MARK) for s in ax.spines.values())]
    assert red_frames == [1, 4, 7]
    red_captions = [i for i, ax in enumerate(image_axes)
                    if same_color(ax.xaxis.label.get_color(), figures.WRONG_MARK)]
    green_captions = [i for i, ax in enumerate(image_axes)
                      if same_color(ax.xaxis.label.get_color(), figures.RIGHT_MARK)]
    assert red_captions == [1, 4, 7] and len(green_captions) == 9
    cap = image_axes[1].get_xlabel()
    assert cap == f"pred: {figures.SHORT_CLASSES[4]}\ntrue: {CLASSES[1]}"
    assert image_axes[0].get_xlabel() == f"pred: {figures.SHORT_CLASSES[0]}"  # no "true:" when right
    assert "true" not in image_axes[2].get_xlabel()
    assert "9/12 correct (75%)" in fig._suptitle.get_text() and "ReLU activation" in fig._suptitle.get_text()
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in image_axes)
    assert image_axes[0].images[0].get_cmap().name == "gray"
    png_size(figures.png(fig))


def test_predictions_partial_grid_floats_and_untrained():
    images, labels, preds = _predictions_inputs(n=7, wrong=())
    floats = images.astype(np.float32) / 255
    fig = figures.predictions_figure(floats.reshape(7, 784), labels, preds, "m", columns=4)
    assert len([ax for ax in fig.axes if ax.images]) == 7
    assert len([ax for ax in fig.axes if not ax.axison]) == 1  # 8 cells, 7 images
    assert "7/7 correct (100%)" in fig._suptitle.get_text()
    assert fig.axes[0].images[0].get_clim() == (0, 1.0)
    fig = figures.predictions_figure(images, labels, None, "m")
    assert "not trained yet" in fig._suptitle.get_text()
    assert all(ax.get_xlabel().startswith("true: ") for ax in fig.axes if ax.images)
    fig = figures.predictions_figure(np.zeros((0, 28, 28), np.uint8), np.zeros(0), np.zeros(0), "empty")
    png_size(figures.png(fig))


# ---------------------------------------------------------------------------------------------- colours

def test_lighten_mixes_with_white_as_hex():
    assert figures.lighten("#000000", 0.5) == "#808080"
    assert figures.lighten("#1f6fb4", 0.0) == "#1f6fb4" and figures.lighten("#1f6fb4", 1.0) == "#ffffff"
    assert figures.lighten(figures.LEFT_COLOR) == "#9abedd"  # the init bars' shade (default amount 0.55)
    assert figures.lighten("tab:blue", 0.5) == "#8fbbda"  # any matplotlib colour


# ----------------------------------------------------------------------------------------------- results

RESULT_ROWS = [
    {"method": "baseline", "title": "Baseline", "test_acc": 0.1, "acc_mean": 0.1, "acc_std": 0.0},
    {"method": "relu", "title": "ReLU", "test_acc": 0.87, "acc_mean": 0.868, "acc_std": 0.003,
     "acc_ci": [0.86, 0.876]},
    {"method": "tanh", "title": "Tanh", "test_acc": 0.85, "acc_mean": None, "acc_std": None},
    {"method": "adam", "title": "Adam", "test_acc": 0.86, "acc_mean": 0.875, "acc_std": 0.002,
     "acc_ci": [0.87, 0.88]},
    {"method": "grad_norm", "title": "Grad norm", "test_acc": 0.1, "acc_mean": 0.2, "acc_std": 0.15,
     "acc_ci": None, "groups": [{"n": 6, "min": 0.1, "max": 0.1}, {"n": 4, "min": 0.2, "max": 0.47}]},
    {"method": "skip", "title": "Skip", "test_acc": None, "acc_mean": None, "acc_std": None},
]


def test_results_sorted_with_error_bars_and_reference_lines():
    fig = figures.results_figure(RESULT_ROWS, left="baseline", right="relu")
    (ax,) = fig.axes
    bars_ = sorted((p for p in ax.patches if p.get_gid()), key=lambda p: -p.get_y())  # top to bottom
    assert [p.get_gid() for p in bars_] == ["adam", "relu", "tanh", "grad_norm", "baseline"]
    assert [p.get_width() for p in bars_] == pytest.approx([0.875, 0.868, 0.85, 0.2, 0.1])  # mean when known
    ticks = [t.get_text() for _, t in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda p: p[0])]
    assert ticks == ["Skip", "Baseline", "Grad norm", "Tanh", "ReLU", "Adam"]  # bottom to top; untrained last
    assert "not trained yet" in notes(ax)
    reference = [ln for ln in ax.lines if not ln.get_label().startswith("_")]  # the labelled lines
    vlines = {round(ln.get_xdata()[0], 4): ln.get_label() for ln in reference}
    assert vlines == {0.8833: "best MLP in the FashionMNIST benchmark (0.8833)", 0.1: "chance (0.1)"}
    assert all(ln.get_linestyle() == "--" and list(ln.get_ydata()) == [0, 1] for ln in reference)  # full height
    seed_marks = sorted(ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "seed42")
    assert seed_marks == pytest.approx([0.1, 0.1, 0.86, 0.87])  # rows with a seed mean also mark seed 42
    colors = {p.get_gid(): p.get_facecolor() for p in bars_}
    assert same_color(colors["baseline"], figures.LEFT_COLOR) and same_color(colors["relu"], figures.RIGHT_COLOR)
    assert same_color(colors["adam"], figures.NEUTRAL_COLOR)
    # whiskers: the 95% CI of each row with one; the split one gets each group's range instead
    whiskers = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(whiskers) == 2
    spans = sorted(tuple(c.get_segments()[0][:, 0]) for c in whiskers)
    assert spans == [pytest.approx((0.86, 0.876)), pytest.approx((0.87, 0.88))]
    groups = sorted(tuple(ln.get_xdata()) for ln in ax.lines if ln.get_gid() == "group")
    assert groups == [(0.1, 0.1), (0.2, 0.47)]
    assert ax.get_xlim() == (0, 1)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("0.8833" in t for t in legend)


def test_results_empty_and_all_untrained_say_so():
    (ax,) = figures.results_figure([]).axes
    assert [t.get_text() for t in ax.texts] == ["no results yet"] and not ax.patches
    (ax,) = figures.results_figure([{"method": "x", "title": "X", "test_acc": None}]).axes
    assert notes(ax) == ["not trained yet"] and not [p for p in ax.patches if p.get_gid()]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["X"]


# ------------------------------------------------------------------------------------------------- depth

def test_depth_accuracy_and_log_gradient_ratio():
    rows = [{"depth": 7, "acc_mean": 0.1, "acc_std": 0.0, "grad_ratio_init": 5e-7},
            {"depth": 3, "acc_mean": 0.85, "acc_std": 0.01, "grad_ratio_init": 2e-3},
            {"depth": 5, "acc_mean": 0.6, "acc_std": 0.1, "grad_ratio_init": 3e-5}]
    fig = figures.depth_figure(rows)
    ax_acc, ax_ratio = fig.axes
    (acc_line,) = [ln for ln in ax_acc.lines if ln.get_gid() == "accuracy"]
    assert list(acc_line.get_xdata()) == [3, 5, 7]
    assert list(acc_line.get_ydata()) == pytest.approx([0.85, 0.6, 0.1])
    assert ax_ratio.get_yscale() == "log"
    (ratio_line,) = ax_ratio.lines
    assert list(ratio_line.get_ydata()) == pytest.approx([2e-3, 3e-5, 5e-7])
    lo, hi = ax_ratio.get_ylim()
    assert lo < 5e-7 and hi > 2e-3
    assert list(ax_acc.get_xticks()) == [3, 5, 7]


def test_depth_skips_missing_and_non_positive():
    rows = [{"depth": 3, "acc_mean": None, "acc_std": None, "test_acc": 0.84, "grad_ratio_init": 0.0},
            {"depth": 5, "acc_mean": None, "acc_std": None, "grad_ratio_init": None},
            {"depth": 7, "acc_mean": 0.1, "acc_std": None, "grad_ratio_init": 4e-7}]
    ax_acc, ax_ratio = figures.depth_figure(rows).axes
    (acc_line,) = [ln for ln in ax_acc.lines if ln.get_gid() == "accuracy"]
    assert list(acc_line.get_xdata()) == [3, 7] and list(acc_line.get_ydata()) == pytest.approx([0.84, 0.1])
    assert list(ax_ratio.lines[0].get_xdata()) == [7]
    assert all([t.get_text() for t in ax.texts] == ["not trained yet"] for ax in figures.depth_figure([]).axes)


# --------------------------------------------------------------------------------------------- rendering

def test_every_figure_renders_to_png_at_web_size(tmp_path: Path):
    left, right = make_metrics(), make_layerwise()
    axes = figures.shared_axes([left, right])
    images, labels, preds = _predictions_inputs()
    figs = {"flow_base": figures.flow_base(axes), "flow_layer": figures.flow_layer(axes, right, "right"),
            "curves_base": figures.curves_base(axes, 6), "change_layer": figures.change_layer(axes, left, "left"),
            "predictions": figures.predictions_figure(images, labels, preds, "x"),
            "results": figures.results_figure(RESULT_ROWS),
            "depth": figures.depth_figure([{"depth": 3, "acc_mean": 0.8, "acc_std": 0.01, "grad_ratio_init": 1e-3}])}
    for name, fig in figs.items():
        data = figures.png(fig, transparent=name.endswith("layer"))
        assert data[:8] == PNG_MAGIC and len(data) > 4_000, name
        w, h = png_size(data)
        assert (w, h) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi)), name
        assert 300 <= w <= 1000 and 200 <= h <= 900, (name, w, h)
        (tmp_path / f"{name}.png").write_bytes(data)
    assert np.asarray(figures.decoded(figs["flow_base"]))[..., 3].min() == 255  # a base is opaque; a layer
    transparent = np.asarray(Image.open(tmp_path / "flow_layer.png"))  # is transparent where it draws nothing
    assert transparent[..., 3].min() == 0 and transparent[..., 3].max() == 255
    assert figures.image(figs["results"]).mode == "RGB"


def test_inputs_are_not_mutated_and_the_module_avoids_pyplot_and_the_registry():
    left, right = make_layerwise(), make_metrics()
    before = copy.deepcopy((left, right))
    axes = figures.shared_axes([left, right])
    for kind in figures.KINDS:
        figures.layer(kind, axes, left, "left", 6)
        figures.layer(kind, axes, right, "right", 6)
    assert (left, right) == before
    tree = ast.parse(Path(figures.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
        {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any("pyplot" in m for m in imported)
    assert "core.methods" not in imported  # titles come through core.history, never from the registry here
