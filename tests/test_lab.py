"""The app's methods without Gradio (ui.lab) and what Compare makes of them (ui.compare): broken and missing
checkpoints, cards, the start-up work, the made-once store. On checkpoints trained for one epoch here."""
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from core.checkpoint import save_checkpoint
from core.methods import METHODS
from core.results import LEARNS_AT, method_runs, results_rows
from core.train import train_method
from ui import classify, compare, pages
from ui.lab import Lab, Once

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
    c = compare.comparison(lab, "baseline", "batchnorm")
    for card, name in zip(c.cards, ("baseline", "batchnorm"), strict=True):
        e = lab.entry(name)
        assert card.startswith(f"### {e.method.title}\n{e.method.description}\n\n*{pages.hyperparameters(e.method)}*")
        assert f"**Test accuracy {e.metrics['test_acc']:.2%}** (10,000 test images, seed 42)" in card
        assert f"trained {e.metrics['epochs']} epochs in " in card
    assert c.max_epoch == 1 and c.chart["max_epoch"] == 1
    assert (c.chart["left"]["name"], c.chart["right"]["name"]) == ("baseline", "batchnorm")


def test_a_missing_method_is_a_card_and_a_chart_that_say_so(lab):
    c = compare.comparison(lab, "adam", "baseline")
    assert c.cards[0].startswith("### Adam optimizer") and "**Unavailable:** adam/config.json: missing" in c.cards[0]
    assert c.chart["left"]["problem"] == lab.entry("adam").error and c.chart["left"]["epochs"] == []
    assert c.max_epoch == 1  # the baseline's epochs


def test_unknown_method_is_a_clear_error(lab):
    for call in (lambda: compare.comparison(lab, "baseline", "nope"), lambda: compare.card(lab, "nope"),
                 lambda: classify.read(lab, np.zeros((28, 28), np.uint8), "nope", "baseline")):
        with pytest.raises(ValueError, match="'nope' is not a method here; choose one of: baseline"):
            call()


def test_results_rows_and_the_about_page(lab):
    # the table reads metrics.json, which is intact for relu (only its weights are corrupt)
    assert [r["method"] for r in lab.rows] == list(TRAINED)
    assert lab.row("relu")["test_acc"] == lab.rows[1]["test_acc"] and lab.row("adam") is None
    listed = pages.methods_list().split("\n")
    assert listed == [f"- **{m.title}** (`{m.name}`): {m.description}" for m in METHODS.values()]
    assert pages.about().endswith("\n\n" + pages.methods_list())


def test_warm_waits_for_its_pause_before_every_step(lab):
    """The app holds its start-up drawing back while a Playground run trains: warm() waits for `pause` before
    each step (the default pair, then each method's chart data, then its layers and grid)."""
    gate, calls = threading.Event(), []
    pause = lambda: calls.append(1) or gate.wait()
    worker = threading.Thread(target=compare.warm, args=(lab,), kwargs={"pause": pause}, daemon=True)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive() and len(calls) == 1  # held before its first step
    gate.set()
    worker.join(120)
    assert not worker.is_alive() and len(calls) == 1 + 2 * len(lab.entries)
    drawn = [compare.figure(lab, kind, "relu", "layerwise") for kind in ("gradient_flow", "curves", "weight_change")]
    assert all(image.size[0] >= 700 for image in drawn)  # any pair now, from what warm() drew


def test_once_makes_a_value_once_even_when_asked_twice_at_once():
    calls = []
    once = Once()

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
    assert once.get("other", lambda: 2) == 2 and len(calls) == 1


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
    lab = Lab()
    rows = {r["method"]: r for r in results_rows()}
    for name in ("grad_norm", "grad_norm_lr1e3", "relu"):
        runs, left_out = method_runs(name)
        assert left_out == []
        accs = [r["test_acc"] for r in runs]
        card = compare.card(lab, name)
        n, learned = len(accs), sum(r["history"][-1]["val_acc"] >= LEARNS_AT for r in runs)
        assert rows[name]["learned"] == learned and n == 10
        assert f"Over {n} seeds" in card and f"on {learned} of {n}." in card
        assert f"range {min(accs):.1%} – {max(accs):.1%}" in card
        assert f"Where this checkpoint (seed 42) sits: {rows[name]['seed42_rank']}." in card
    # several groups are listed as groups, one group gets its mean and 95% interval
    assert "in 4 groups (6 at 10.0%, 1 at 20.0%, 2 at 29.1% – 29.3%, 1 at 47.2%)" in compare.card(lab, "grad_norm")
    lo, hi = rows["relu"]["acc_ci"]
    relu = compare.card(lab, "relu")
    assert f"mean {rows['relu']['acc_mean']:.1%} (95% confidence interval {lo:.1%} – {hi:.1%})" in relu
    assert "sits: weakest of 10." in compare.card(lab, "grad_norm_lr1e3")
    assert "Over " not in pages.card(lab.entry("grad_norm"))  # the checkpoint alone knows only its own seed
