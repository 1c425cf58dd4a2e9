"""The app's computations without Gradio: comparisons, classification, broken checkpoints."""
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from core import pages
from core.checkpoint import save_checkpoint
from core.lab import Lab, RenderedComparison
from core.methods import METHODS
from core.train import train_method
from core.upload import ImageError

TRAINED = ("baseline", "relu", "batchnorm", "layerwise")


@pytest.fixture(scope="session")
def checkpoint_root(tmp_path_factory, tiny):
    root = tmp_path_factory.mktemp("checkpoints")
    for name in TRAINED:
        model, metrics = train_method(replace(METHODS[name], epochs=1), tiny)
        save_checkpoint(model, metrics, root / name)
    (root / "relu" / "model.safetensors").write_bytes(b"not safetensors")  # a corrupt one
    return root


@pytest.fixture(scope="session")
def lab(checkpoint_root):
    return Lab(checkpoint_root)


def test_broken_and_missing_checkpoints_are_reported_not_fatal(lab, checkpoint_root):
    assert lab.entry("baseline").model is not None and lab.entry("layerwise").model is not None
    relu = lab.entry("relu")
    assert relu.model is None and relu.error.startswith("relu/model.safetensors: not a readable safetensors file")
    assert str(checkpoint_root) not in relu.error  # files are named relative to the checkpoints folder
    assert "python -m core train --method relu" in relu.error
    assert "missing" in lab.entry("adam").error
    card = pages.card(relu)
    assert card.startswith(f"### {METHODS['relu'].title}\n") and card.endswith(f"**Unavailable:** {relu.error}")
    labels = dict((name, label) for label, name in lab.choices())
    assert labels["relu"].endswith("(unavailable)") and not labels["baseline"].endswith("(unavailable)")


def test_compare_shows_both_methods(lab):
    c = lab.compare("baseline", "batchnorm")
    for card, name in zip(c.cards, ("baseline", "batchnorm"), strict=True):
        e = lab.entry(name)
        assert card.startswith(f"### {e.method.title}\n{e.method.description}\n\n*{pages.hyperparameters(e.method)}*")
        assert f"**Test accuracy {e.metrics['test_acc']:.2%}** (10,000 test images, seed 42)" in card
        assert f"trained {e.metrics['epochs']} epochs in " in card
    assert c.max_epoch == 1
    flow_axes = c.gradient_flow.axes
    assert len(flow_axes) == 2 and all(ax.get_yscale() == "log" for ax in flow_axes)
    assert flow_axes[0].get_ylim() == flow_axes[1].get_ylim()  # same axis on both sides
    # the grid shows the first image of each class and marks the model's predictions
    assert len(lab.grid) == 12 and set(lab.sample.y[lab.grid[:10]].tolist()) == set(range(10))


def test_compare_with_a_broken_method_still_renders(lab):
    r = lab.rendered_comparison("relu", "baseline")
    c = lab.compare("relu", "baseline")
    assert isinstance(r, RenderedComparison) and r.cards == c.cards
    assert r.cards[0].startswith("### ReLU activation") and "**Unavailable:**" in r.cards[0]
    assert r.max_epoch == 1  # the baseline's epochs: relu has none
    # each path holds its own figure: a PNG of the size that figure renders at
    figures = {r.gradient_flow: c.gradient_flow, r.curves: c.curves, r.weight_change: c.weight_change,
               r.predictions[0]: lab.predictions("relu"), r.predictions[1]: lab.predictions("baseline")}
    assert len(figures) == 5  # five different files
    for path, fig in figures.items():
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == tuple(round(v * fig.dpi) for v in fig.get_size_inches())
    assert lab.rendered_comparison("relu", "baseline") is r  # rendered once, then kept


def test_unknown_method_is_a_clear_error(lab):
    with pytest.raises(ValueError, match="Unknown method 'nope'; choose one of: baseline"):
        lab.compare("baseline", "nope")
    with pytest.raises(ValueError, match="Unknown method"):
        lab.classify(np.zeros((28, 28), np.uint8), "nope", "baseline")


def test_classify_gives_top5_for_both_and_the_model_view(lab):
    img = lab.examples()[7]  # a real sneaker
    left, right, seen = lab.classify(img, "baseline", "batchnorm")
    assert len(left) == 5 and len(right) == 5
    assert list(left.values()) == sorted(left.values(), reverse=True) and 0 < sum(right.values()) <= 1.0001
    assert seen.shape == (28, 28) and seen.dtype == np.uint8
    big = lab.enlarged(seen)
    assert big.shape == (224, 224) and (big[::8, ::8] == seen).all() and (big[7::8, 7::8] == seen).all()
    # a broken method gives no probabilities rather than failing the other side
    broken, ok, _ = lab.classify(img, "relu", "baseline")
    assert broken == {} and len(ok) == 5


def test_classify_refuses_non_images(lab, tmp_path):
    bad = tmp_path / "shirt.png"
    bad.write_text("this is not a png")
    with pytest.raises(ImageError):
        lab.classify(str(bad), "baseline", "batchnorm")


def test_results_views(lab):
    # the table reads metrics.json, which is intact for relu (only its weights are corrupt)
    assert [r["method"] for r in lab.rows] == list(TRAINED)
    assert "`baseline`" in lab.results_markdown()
    assert lab.results_figure("baseline", "batchnorm").axes
    listed = pages.methods_list().split("\n")
    assert listed == [f"- **{m.title}** (`{m.name}`): {m.description}" for m in METHODS.values()]
    assert pages.about().endswith("\n\n" + pages.methods_list())


def test_warm_waits_for_its_pause_before_every_step(lab):
    """The app holds its start-up drawing back while a Playground run trains: warm() waits for `pause` before
    each step (the default pair, then each method's chart data, then its panels and grid)."""
    gate, calls = threading.Event(), []
    worker = threading.Thread(target=lab.warm, kwargs={"pause": lambda: calls.append(1) or gate.wait()}, daemon=True)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive() and len(calls) == 1  # held before its first step
    gate.set()
    worker.join(120)
    assert not worker.is_alive() and len(calls) == 1 + 2 * len(lab.entries)


def test_one_hyperparameter_line_for_cards_and_the_playground():
    assert pages.hyperparameters(METHODS["baseline"]) == \
        "7x128 sigmoid · init N(0, 0.05) · sgd lr 0.01 · batch 512 · 100 epochs"
    assert pages.hyperparameters(METHODS["best"]) == (
        "7x128 relu · init N(0, 0.05) · adamw lr 0.001 · batch 512 · batchnorm norm · skips 1→3, 4→7 · "
        "weight decay 0.01 · cosine lr schedule · 100 epochs")
    assert pages.hyperparameters(METHODS["layerwise"]).endswith(" · 7 stages x 100 epochs")
    assert pages.hyperparameters(METHODS["grad_norm"], train_size=10_000).endswith(
        " · gradient normalization · 100 epochs on 10,000 images")


def test_card_says_what_every_committed_seed_reached():
    """A checkpoint is one draw: the card gives the spread over every committed seed, from the results table,
    where this checkpoint sits among them, and how many learn (judged on validation)."""
    from core.results import LEARNS_AT, results_rows, seed_runs
    lab = Lab()
    rows = {r["method"]: r for r in results_rows()}
    for name in ("grad_norm", "grad_norm_lr1e3", "relu"):
        runs = seed_runs(name)
        accs = [r["test_acc"] for r in runs]
        card = lab.card(name)
        n, learned = len(accs), sum(r["history"][-1]["val_acc"] >= LEARNS_AT for r in runs)
        assert rows[name]["learned"] == learned and n == 10
        assert f"Over {n} seeds" in card and f"on {learned} of {n}." in card
        assert f"range {min(accs):.1%} – {max(accs):.1%}" in card
        assert f"Where this checkpoint (seed 42) sits: {rows[name]['seed42_rank']}." in card
    # several groups are listed as groups, one group gets its mean and 95% interval
    assert "in 4 groups (6 at 10.0%, 1 at 20.0%, 2 at 29.1% – 29.3%, 1 at 47.2%)" in lab.card("grad_norm")
    lo, hi = rows["relu"]["acc_ci"]
    assert f"mean {rows['relu']['acc_mean']:.1%} (95% confidence interval {lo:.1%} – {hi:.1%})" in lab.card("relu")
    assert "sits: weakest of 10." in lab.card("grad_norm_lr1e3")
    assert "Over " not in pages.card(lab.entry("grad_norm"))  # the checkpoint alone knows only its own seed
