"""The Playground's share and take away: a registry method as Playground settings (from_method), the settings in
the page's address (to_query / from_query) and a run exported as a checkpoint that core.checkpoint loads back."""
import json
import os
import threading
from dataclasses import replace

import pytest
import torch

import ui.playground as pg
from core.checkpoint import CONFIG, METRICS, WEIGHTS, load_checkpoint
from core.evaluate import evaluate
from core.methods import METHODS, variant
from core.train import train_method
from ui import pages

SMALL = dict(depth=3, width=16, epochs=2, train_size=500)  # real data, about a second


# ------------------------------------------------------------------------------------------- from_method

@pytest.mark.parametrize("name", list(METHODS))
def test_from_method_carries_every_expressible_part_of_each_recipe(name):
    """Every registry method: its model and recipe where the Playground has the setting, the Playground's
    own epochs and images, and a phrase for each thing it cannot express (never silently dropped)."""
    method = METHODS[name]
    settings, left_out = pg.from_method(method)
    m = method.model
    assert (settings.depth, settings.width, settings.activation, settings.init_std, settings.norm,
            settings.grad_norm, settings.lr, settings.batch_size, settings.seed) == \
           (m.depth, m.width, m.activation, m.init_std, m.norm, m.grad_norm, method.lr, method.batch_size, method.seed)
    assert (settings.epochs, settings.train_size) == (pg.PlaygroundSettings().epochs, pg.DEFAULT_TRAIN_SIZE)
    # the skips the Playground builds are exactly the method's (skip and best: 1->3, 4->7)
    assert pg.to_method(settings).model.skips == m.skips
    said = " ".join(left_out)
    assert f"its {method.epochs * max(1, len(method.stages)):,} epochs" in said
    assert ("adamw (Adam here)" in said) == (method.optimizer == "adamw")
    assert settings.optimizer == ("adam" if method.optimizer == "adamw" else method.optimizer)
    assert ("weight decay" in said) == bool(method.weight_decay)
    assert ("cosine" in said) == (method.schedule == "cosine")
    assert (f"layer-wise training in {len(method.stages)} stages" in said) == bool(method.stages)
    assert ("default init" in said) == (method.head_init == "default")
    notice = pages.opened_from_method(method.title, left_out)
    assert method.title in notice and all(phrase in notice for phrase in left_out)


def test_from_method_says_what_it_cannot_build():
    """Skips the Playground's blocks cannot make, and a batch size the tab does not offer, are said."""
    odd = variant("odd", "Odd", "Skips 2->5, batch 100.", skips=((2, 5),), batch_size=100)
    settings, left_out = pg.from_method(odd)
    assert settings.skips and settings.batch_size == pg.PlaygroundSettings().batch_size
    assert any("skip connections 2→5" in p and "1→3, 4→7" in p for p in left_out), left_out
    assert any("batch size 100" in p for p in left_out), left_out


# ------------------------------------------------------------------------------------------------- the URL

def test_the_address_round_trips_the_settings():
    settings = pg.PlaygroundSettings(depth=5, width=64, activation="tanh", init_std=0.3, norm="custom", skips=True,
                                     grad_norm=True, optimizer="adam", lr=0.0012345678, epochs=3,
                                     train_size=1500, batch_size=64)
    query = pg.to_query(settings, "relu")
    assert query["tab"] == "playground" and query["ref"] == "relu" and query["skips"] == "1"
    assert not {"left", "right", "stat", "epoch"} & set(query)  # the Compare chart's keys are its own
    assert pg.from_query(query) == (settings, [])


@pytest.mark.parametrize("key,text,message", [
    ("depth", "40", "Depth (hidden layers) must be a whole number from 1 to 10"),
    ("depth", "7.5", "Depth (hidden layers) must be a whole number"),
    ("depth", "seven", "Depth (hidden layers) must be a whole number"),
    ("width", "9" * 5000, "too long"),  # never int() of a huge digit string
    ("act", "<b>gelu</b>", "Activation must be one of sigmoid, tanh, relu"),
    ("std", "inf", "Init std must be a finite number"),
    ("lr", "nan", "Learning rate must be a finite number"),
    ("lr", "abc", "Learning rate must be a number greater than 0"),
    ("skips", "yes", "expected 1 or 0"),
    ("bs", "16", "Batch size must be one of 32, 64"),  # allowed by POLICY, not offered by the tab
    ("n", "100", "Training images must be a whole number from 500"),
    ("opt", "adamw", "Optimizer must be one of sgd, adam"),
])
def test_a_bad_value_in_the_address_is_ignored_and_said(key, text, message):
    """Each bad parameter keeps its setting's default, the others still apply, and the phrase names it."""
    settings, ignored = pg.from_query({key: text, "epochs": "3", "tab": "playground", "left": "relu"})
    assert settings == pg.PlaygroundSettings(epochs=3)
    assert len(ignored) == 1 and ignored[0].startswith(f"{key}=") and message in ignored[0], ignored


def test_skips_from_the_address_follow_its_depth():
    assert pg.from_query({"depth": "3", "skips": "1"})[0].skips
    settings, ignored = pg.from_query({"depth": "2", "skips": "1"})
    assert settings == pg.PlaygroundSettings(depth=2) and "need at least 3 hidden layers" in ignored[0]


def test_the_notice_shows_a_visitors_value_as_plain_text():
    _, ignored = pg.from_query({"act": "<img src=x onerror=alert(1)>**`x`**"})
    text = pages.restored_from_link(ignored)
    said = text.split("Ignored", 1)[1]  # (after the notice's own bold words)
    assert "img src=x" in said and not set("<>*`[]") & set(said), text


# ------------------------------------------------------------------------------------------------ export

@pytest.fixture(scope="module")
def finished():
    return list(pg.stream_training(pg.PlaygroundSettings(**SMALL)))[-1]


def back_to_a_checkpoint(paths, folder):
    """The downloaded files under their checkpoint names, as a visitor would save them."""
    folder.mkdir()
    for name, path in zip(pg.EXPORT_NAMES, paths):
        (folder / name).write_bytes(path.read_bytes())
    return folder


def test_an_exported_run_loads_back_with_the_same_predictions(finished, tmp_path, fashion):
    paths = pg.export_run(finished, tmp_path / "run")
    assert [p.name for p in paths] == ["playground-metrics.json", "playground-model.safetensors",
                                       "playground-config.json"]
    model, metrics = load_checkpoint(back_to_a_checkpoint(paths, tmp_path / "back"), "playground")
    x = fashion.test.x[:256]
    assert torch.equal(model(x), finished.model(x))
    assert metrics["epochs"] == 2 and metrics["limit"] == 500 and metrics["stopped"] is None
    assert metrics["config"] == pg.to_method(finished.settings).hyperparameters()
    assert metrics["history"] == json.loads(json.dumps(list(finished.history)))
    loss, acc = evaluate(model, fashion.test)
    assert metrics["test_acc"] == acc == finished.final_test_acc and metrics["test_loss"] == pytest.approx(loss)
    # the three are the checkpoint's own files (links), complete: no temp file is left beside them
    assert {p.name for p in (tmp_path / "run" / "checkpoint").iterdir()} == {CONFIG, METRICS, WEIGHTS}
    assert all(os.path.samefile(p, tmp_path / "run" / "checkpoint" / n) for p, n in zip(paths, pg.EXPORT_NAMES))


def test_a_stopped_run_exports_its_last_finished_epoch(tmp_path):
    """Stopped mid-epoch: the model exported is the one after the last finished epoch (the update's
    snapshot), not the half-trained network, and the metrics say why it stopped."""
    stop = threading.Event()
    updates = []
    for update in pg.stream_training(pg.PlaygroundSettings(**{**SMALL, "epochs": 5, "batch_size": 32}), stop):
        updates.append(update)
        if update.epoch == 1:
            stop.set()
    last = updates[-1]
    assert last.stopped and last.epoch == 1 and last.done
    assert last.model is updates[1].model  # the epoch-1 snapshot
    paths = pg.export_run(last, tmp_path / "run")
    model, metrics = load_checkpoint(back_to_a_checkpoint(paths, tmp_path / "back"), "playground")
    assert metrics["epochs"] == 1 and metrics["stopped"].startswith("stopped at your request")
    for key, value in model.state_dict().items():
        assert torch.equal(value, updates[1].model.state_dict()[key]), key


def test_the_snapshot_is_the_model_core_train_makes(finished):
    """The exported model is the network `python -m core train` makes of the same recipe and data, weight for
    weight: copying it every epoch draws nothing from torch's RNG and leaves the run alone."""
    data, _ = pg.playground_data(finished.settings.train_size, finished.settings.seed)
    model, _ = train_method(pg.to_method(finished.settings), data)
    for key, value in model.state_dict().items():
        assert torch.equal(value, finished.model.state_dict()[key]), key


def test_a_diverged_run_has_no_model_to_export(finished, tmp_path):
    broken = pg._snapshot(finished.model)
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        pg.export_run(replace(finished, model=broken), tmp_path / "run")


def test_one_epoch_is_said_in_the_singular():
    assert pages.settings_summary(pg.PlaygroundSettings(epochs=1)).endswith("1 epoch on 10,000 images")
    assert pages.settings_summary(pg.PlaygroundSettings(epochs=2)).endswith("2 epochs on 10,000 images")
