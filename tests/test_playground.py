"""The Playground: bounds, one streamed update per epoch through core's own trainer, stop, and the tab via the API."""
import itertools
import json
import math
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

import ui.playground as pg
from core import history
from core.data import DatasetError
from core.diagnostics import LAYER_KEYS
from core.methods import BASELINE, METHODS
from core.models import DeepMLP, ModelConfig
from core.train import train_epochs, train_method
from tests.helpers import ROOT
from ui import chart_data, pages, playground_tab

SMALL = dict(depth=3, width=32, epochs=2, train_size=500)  # real data, about a second


# ---------------------------------------------------------------------------------------------- bounds

@pytest.mark.parametrize("field,value,message", [
    ("depth", 0, "Depth (hidden layers) must be a whole number from 1 to 10"),
    ("depth", 11, "Depth (hidden layers) must be a whole number from 1 to 10"),
    ("depth", 2.5, "Depth (hidden layers) must be a whole number"),
    ("depth", "7", "Depth (hidden layers) must be a number, got '7'"),
    ("depth", True, "Depth (hidden layers) must be a number"),
    ("depth", None, "Depth (hidden layers) must be a number, got None"),
    ("width", 4, "Width (units per layer) must be a whole number from 8 to 512"),
    ("width", 513, "Width (units per layer) must be a whole number from 8 to 512"),
    ("activation", "gelu", "Activation must be one of sigmoid, tanh, relu"),
    ("activation", None, "Activation must be one of"),
    ("init_std", 0, "Init std must be greater than 0 and at most 20"),
    ("init_std", -1, "Init std must be greater than 0"),
    ("init_std", 25, "Init std must be greater than 0 and at most 20"),
    ("init_std", math.nan, "Init std must be a finite number, got nan"),
    ("norm", "layernorm", "Normalization must be one of none, batchnorm, custom"),
    ("skips", "yes", "Skip connections must be on or off"),
    ("skips", 1, "Skip connections must be on or off"),
    ("grad_norm", None, "Gradient normalization must be on or off"),
    ("optimizer", "adamw", "Optimizer must be one of sgd, adam"),
    ("lr", 0, "Learning rate must be greater than 0 and at most 1"),
    ("lr", 1.5, "Learning rate must be greater than 0 and at most 1"),
    ("lr", math.inf, "Learning rate must be a finite number"),
    ("lr", "0.1", "Learning rate must be a number"),
    ("epochs", 0, "Epochs must be a whole number from 1 to 20"),
    ("epochs", 21, "Epochs must be a whole number from 1 to 20"),
    ("train_size", 499, "Training images must be a whole number from 500 to 54,000"),
    ("train_size", 60_000, "Training images must be a whole number from 500 to 54,000"),
    ("batch_size", 8, "Batch size must be a whole number from 16 to 4,096"),
])
def test_each_bad_value_is_refused_with_a_message_naming_the_control(field, value, message):
    with pytest.raises(ValueError) as e:
        pg.PlaygroundSettings(**{field: value})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_skips_need_three_layers():
    with pytest.raises(ValueError, match=r"Skip connections need at least 3 hidden layers.*got depth 2"):
        pg.PlaygroundSettings(depth=2, skips=True)
    assert pg.PlaygroundSettings(depth=2).skips is False


def test_values_are_normalized_and_settings_from_inputs_goes_by_name():
    inputs = dict(depth=7.0, width=np.int64(64), activation="ReLU", init_std=np.float32(0.5), norm="BatchNorm",
                  skips=True, grad_norm=False, optimizer="Adam", lr=0.001, epochs=3.0, train_size=1000.0,
                  batch_size=256)
    s = pg.settings_from_inputs(inputs)
    assert (s.depth, s.width, s.activation, s.init_std, s.norm, s.optimizer, s.lr, s.epochs, s.train_size,
            s.batch_size) == (7, 64, "relu", 0.5, "batchnorm", "adam", 0.001, 3, 1000, 256)
    assert type(s.depth) is int and type(s.init_std) is float and s.skips is True and s.grad_norm is False
    assert pg.settings_from_inputs(dict(reversed(inputs.items()))) == s  # the order of the inputs is irrelevant
    assert pg.settings_from_inputs({"width": 16}) == pg.PlaygroundSettings(width=16)  # the rest: defaults
    with pytest.raises(ValueError, match="Unknown setting 'depht'; the settings are: depth, width, "):
        pg.settings_from_inputs({"depht": 7})


def test_defaults_are_the_baseline_and_to_method_is_a_registry_method():
    default = pg.PlaygroundSettings()
    assert pg.to_method(default) == replace(BASELINE, name="playground", title="Your network", epochs=10,
                                            description="The network and recipe set on the Playground tab.")
    assert pages.settings_summary(default) == \
        "7x128 sigmoid · init N(0, 0.05) · sgd lr 0.01 · batch 512 · 10 epochs on 10,000 images"
    m = pg.to_method(pg.PlaygroundSettings(depth=7, skips=True, activation="relu", optimizer="adam", lr=0.001))
    assert m.model.skips == METHODS["skip"].model.skips and m.model.activation == "relu" and m.optimizer == "adam"
    assert set(m.changes) == {"skips", "activation", "optimizer", "lr", "epochs"}
    assert pages.settings_summary(pg.PlaygroundSettings(depth=5, width=16, skips=True, grad_norm=True,
                                                        init_std=np.float32(0.1), norm="custom", batch_size=64)) == (
        "5x16 sigmoid · init N(0, 0.1) · sgd lr 0.01 · batch 64 · custom norm · skips 1→3, 4→5 · "
        "gradient normalization · 10 epochs on 10,000 images")


SKIPS = {1: (), 2: (), 3: ((1, 3),), 4: ((1, 4),), 5: ((1, 3), (4, 5)), 6: ((1, 3), (4, 6)),
         7: METHODS["skip"].model.skips, 8: ((1, 3), (4, 6), (7, 8)), 9: ((1, 3), (4, 6), (7, 9)),
         10: ((1, 3), (4, 6), (7, 10))}


@pytest.mark.parametrize("depth", range(1, 11))
def test_skip_pairs_generalize_the_spec_to_every_depth(depth):
    assert METHODS["skip"].model.skips == ((1, 3), (4, 7))  # depth 7 is the registry's `skip` exactly
    assert pg.skip_pairs(depth) == SKIPS[depth]
    DeepMLP(ModelConfig(depth=depth, skips=SKIPS[depth]))  # the model accepts them


# -------------------------------------------------------------------------------------------- streaming

def test_stream_yields_one_update_per_epoch_as_a_metrics_record():
    settings = pg.PlaygroundSettings(**SMALL)
    updates = list(pg.stream_training(settings))
    assert [u.epoch for u in updates] == list(range(settings.epochs + 1))
    assert [u.done for u in updates] == [False] * settings.epochs + [True]
    assert all(u.total_epochs == settings.epochs and u.stopped is None for u in updates)
    names = [f"hidden{i + 1}" for i in range(settings.depth)] + ["output"]
    for u in updates:
        assert len(u.history) == len(u.test_accs) == u.epoch + 1
        assert [r["epoch"] for r in u.history] == list(range(u.epoch + 1))
        row = u.history[-1]
        assert [layer["name"] for layer in row["layers"]] == names
        assert all(set(layer) == {"name", *LAYER_KEYS} for layer in row["layers"])
        assert 0 <= u.val_acc <= 1 and 0 <= u.test_acc <= 1
    last = updates[-1]
    assert updates[0].test_images == pg.TEST_PROBE and last.test_images == 10_000  # all of them at the end
    assert last.config["train_size"] == 500 and last.config["val_size"] == pg.VAL_SIZE
    assert "Real FashionMNIST (Debian's dataset-fashion-mnist): 500 training images" in last.note
    metrics = last.metrics
    json.dumps(metrics, allow_nan=False)
    reference = json.loads((ROOT / "checkpoints" / "baseline" / "metrics.json").read_text())
    for u in updates:  # each update's record is read like a checkpoint's: the same rows, the same layers
        assert history.row_at(u.metrics, None) == u.history[-1] and history.rows(u.metrics) == list(u.history)
        assert history.layer_names(history.row_at(u.metrics, None)) == names
    assert history.series(metrics, "val_acc")[1].tolist() == [r["val_acc"] for r in last.history]
    status = pages.playground_status(last, reference, "Baseline")
    assert f"**Epoch {settings.epochs}/{settings.epochs}**" in status and "✔ Done." in status
    assert f"test accuracy **{last.test_acc:.1%}** (10,000 test images)" in status
    ref = reference["history"][settings.epochs]
    assert f"Reference **Baseline** at epoch {settings.epochs}: validation accuracy {ref['val_acc']:.1%}" in status
    assert status.endswith(f"*{pages.settings_summary(settings)}. {last.note}*")
    first = pages.playground_status(updates[0], None, "Baseline")
    assert f"**Epoch 0/{settings.epochs}**" in first and first.count("training…") == 1 and "Reference" not in first


def assert_run_side(side: dict, update: pg.PlaygroundUpdate) -> None:
    """The chart's run side is the update's history: every epoch so far, each statistic's value per layer (or a
    reason where there is none), the curves, the test accuracy after every epoch."""
    assert side["epochs"] == [r["epoch"] for r in update.history] == list(range(update.epoch + 1))
    assert side["layers"] == [layer["name"] for layer in update.history[-1]["layers"]]
    for key in chart_data.STATS:
        if key in chart_data.THEORY:  # core.theory's gains of the same history (tests/test_compare.py checks them)
            assert side["stats"][key] == chart_data.theory_rows({"config": update.config,
                                                                 "history": list(update.history)}, key)
            continue
        for row, values in zip(update.history, side["stats"][key]["values"], strict=True):
            for name, cell in zip(side["layers"], values, strict=True):
                v = history.layer_value(row, name, key)
                assert cell == v if v is not None else isinstance(cell, str), (key, row["epoch"], name, cell)
    for key in chart_data.CURVES:
        assert side["curves"][key] == [r[key] for r in update.history]
    assert side["curves"]["test_acc"] == list(update.test_accs)
    assert side["labels"][0] == "epoch 0 (init)"
    assert side["labels"][-1] == (f"epoch {update.epoch} (last)" if update.done and update.epoch else
                                  f"epoch {update.epoch}" + (" (init)" if update.epoch == 0 else ""))


def test_the_chart_is_the_run_beside_the_reference_at_the_same_epochs():
    settings = pg.PlaygroundSettings(**SMALL)
    reference = json.loads((ROOT / "checkpoints" / "relu" / "metrics.json").read_text())
    ref = chart_data.method_data("relu", "ReLU", reference)
    for u in pg.stream_training(settings):
        c = pg.chart(u, ref)
        json.dumps(c, allow_nan=False)
        # the axis spans the planned epochs; the slider (and the chart's first view) ends at the latest one
        assert (c["max_epoch"], c["epoch"], c["last_epoch"]) == (settings.epochs, u.epoch, u.epoch)
        assert_run_side(c["left"], u)
        # the reference: its own data at epochs 0..2, whatever the run has reached
        right = c["right"]
        assert right == chart_data.until(ref, settings.epochs)
        assert right["epochs"] == list(range(settings.epochs + 1))
        for row, values in zip(reference["history"][:settings.epochs + 1], right["stats"]["grad_mean_abs"]["values"],
                               strict=True):
            assert values == [history.layer_value(row, n, "grad_mean_abs") for n in right["layers"]]
        assert right["curves"]["val_acc"] == [r["val_acc"] for r in reference["history"][:settings.epochs + 1]]
        # the axes are shared: each log statistic's limits hold both sides' values
        for stat in c["stats"]:
            if stat["log"] and stat["limits"]:
                for side in (c["left"], right):
                    if side["range"].get(stat["key"]):
                        lo, hi = side["range"][stat["key"]]
                        assert stat["limits"][0] <= lo and hi <= stat["limits"][1], stat["key"]
    assert u.done and c["left"]["labels"][-1] == "epoch 2 (last)"


def test_until_cuts_a_method_to_its_first_epochs_and_refits_its_ranges():
    m = json.loads((ROOT / "checkpoints" / "baseline" / "metrics.json").read_text())
    data = chart_data.method_data("baseline", "Baseline", m)
    cut = chart_data.until(data, 3)
    assert cut["epochs"] == [0, 1, 2, 3] and cut["labels"][-1] == "epoch 3" and len(cut["curves"]["val_acc"]) == 4
    assert cut["stats"]["grad_mean_abs"]["values"] == data["stats"]["grad_mean_abs"]["values"][:4]
    assert cut["stats"]["error_mean_abs"]["values"] == data["stats"]["error_mean_abs"]["values"][:4]
    for row in m["history"]:  # a file recorded before the statistic existed: its {"missing": ...} stays
        for layer in row["layers"]:
            del layer["error_mean_abs"]
    old = chart_data.method_data("baseline", "Baseline", m)
    assert chart_data.until(old, 3)["stats"]["error_mean_abs"] == {"missing": chart_data.NOT_RECORDED}
    values = [v for row in cut["stats"]["grad_mean_abs"]["values"] for v in row if not isinstance(v, str)]
    assert cut["range"]["grad_mean_abs"] == [min(v for v in values if v > 0), max(values)]
    assert chart_data.until(data, 500) is data and data["epochs"][-1] == 100  # nothing to cut; the original untouched
    broken = chart_data.method_data("skip", "Skip", None, "weights are not safetensors")
    assert chart_data.until(broken, 3) is broken


def test_before_a_run_the_chart_shows_the_reference_alone():
    ref = chart_data.method_data("baseline", "Baseline", json.loads((ROOT / "checkpoints" / "baseline" /
                                                                 "metrics.json").read_text()))
    c = pg.chart(None, ref)
    assert c["left"]["problem"] == "not trained yet" and c["left"]["problem_note"] == "press Train to start"
    assert c["max_epoch"] == c["last_epoch"] == pg.PlaygroundSettings().epochs == 10
    assert c["right"]["epochs"] == list(range(11))
    assert pg.chart(None, ref, total_epochs=4)["right"]["epochs"] == [0, 1, 2, 3, 4]


def test_it_is_core_trainer_not_a_second_loop():
    settings = pg.PlaygroundSettings(**SMALL)
    streamed = list(pg.stream_training(settings))[-1]
    data, _ = pg.playground_data(settings.train_size, settings.seed)
    _, metrics = train_method(pg.to_method(settings), data)
    assert list(streamed.history) == metrics["history"]
    assert streamed.test_acc == metrics["test_acc"]


class _StopAfter(threading.Event):
    """A stop switch pressed after `batches` batches of epoch 1 (train_epochs asks it before every batch)."""

    def __init__(self, batches: int):
        super().__init__()
        self.asked, self.batches = 0, batches

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > self.batches or super().is_set()


def test_stop_mid_run_ends_the_generator_within_a_batch():
    stop = _StopAfter(batches=3)  # pressed during epoch 1, which has 40 batches
    settings = pg.PlaygroundSettings(epochs=20, train_size=20_000)  # a minute or more if it ran to the end
    steps = pg.stream_training(settings, stop)
    first = next(steps)
    assert first.epoch == 0 and not first.done
    start = time.monotonic()
    rest = list(steps)
    # three batches, then the 4th ask ended the epoch, the 5th (stream_training) says why it stopped
    assert time.monotonic() - start < 5 and stop.asked == 5
    assert len(rest) == 1 and rest[0].done and rest[0].epoch == 0
    assert rest[0].stopped == "stopped at your request during epoch 1"
    assert "⏹ Training stopped at your request during epoch 1." in pages.playground_status(rest[0], None, "")


def test_time_limit_stops_a_run():
    updates = list(pg.stream_training(pg.PlaygroundSettings(**SMALL), time_limit=0))
    assert [u.epoch for u in updates] == [0, 0]
    assert "time limit" in updates[-1].stopped and updates[-1].done


def test_should_stop_is_asked_before_every_batch(tiny):
    calls = []
    method = replace(METHODS["baseline"], epochs=3, batch_size=100)  # 6 batches per epoch
    updates = list(train_epochs(method, tiny, should_stop=lambda: calls.append(1) or len(calls) > 8))
    assert [u.record["epoch"] for u in updates] == [0, 1]  # epoch 2 was cut after 2 batches, not yielded
    assert len(calls) == 9


def test_without_the_dataset_it_trains_on_the_committed_sample(monkeypatch):
    def missing(*_a, **_k):
        raise DatasetError("FashionMNIST not found")
    monkeypatch.setattr(pg, "_full", {})
    monkeypatch.setattr(pg, "load_fashion_mnist", missing)
    data, note = pg.playground_data(10_000)
    assert (len(data.train), len(data.val), len(data.test)) == pg.SAMPLE_SPLIT and data.source == "sample"
    assert "could not be loaded here" in note and "committed sample" in note and "10,000" in note
    updates = list(pg.stream_training(pg.PlaygroundSettings(depth=2, width=16, epochs=1)))
    assert len(updates) == 2 and updates[-1].config["train_size"] == 600
    assert updates[-1].test_images == 200 and "committed sample" in updates[-1].note
    assert torch.get_num_threads() >= 1  # (the playground never sets it)


# ------------------------------------------------------------------------------------- through the app

# The /playground endpoint's inputs in the order an API caller sends them: the controls, then the reference.
SETTINGS = dict(depth=3, width=32, activation="sigmoid", init_std=0.05, norm="none", skips=False, grad_norm=False,
                optimizer="sgd", lr=0.01, epochs=2, train_size=500, batch_size=256, reference="baseline")


def _args(**changes):
    return list({**SETTINGS, **changes}.values())


def _wait(job, timeout):
    deadline = time.monotonic() + timeout
    while not job.done():
        assert time.monotonic() < deadline, f"no result within {timeout} s: {job.status()}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.mark.app
def test_app_streams_one_output_per_epoch(client, app_checkpoints):
    """Each update is (the chart's data, the status): the run so far, epoch by epoch, beside the reference's own
    data at the run's planned epochs."""
    job = client.submit(*_args(reference="relu"), api_name="/playground")
    _wait(job, 60)
    outputs = job.outputs()
    assert len(outputs) == 3  # epochs 0, 1, 2
    # every control reached its own setting (the inputs go by name): the status spells out all of them
    summary = pages.settings_summary(pg.PlaygroundSettings(**{k: v for k, v in SETTINGS.items() if k != "reference"}))
    assert summary == "3x32 sigmoid · init N(0, 0.05) · sgd lr 0.01 · batch 256 · 2 epochs on 500 images"
    relu = json.loads((app_checkpoints / "relu" / "metrics.json").read_text())
    reference = chart_data.until(chart_data.method_data("relu", METHODS["relu"].title, relu), 2)
    for epoch, (chart, status) in enumerate(outputs):
        assert f"**Epoch {epoch}/2**" in status
        assert f"*{summary}. Real FashionMNIST (Debian's dataset-fashion-mnist): 500 training images" in status
        assert (chart["max_epoch"], chart["epoch"], chart["last_epoch"]) == (2, epoch, epoch)
        run = chart["left"]
        assert run["epochs"] == list(range(epoch + 1)) and run["layers"] == ["hidden1", "hidden2", "hidden3", "output"]
        assert all(len(rows["values"]) == epoch + 1 for rows in run["stats"].values())
        # the numbers the status gives are the chart's latest ones
        assert f"validation accuracy **{run['curves']['val_acc'][-1]:.1%}**" in status
        if epoch < 2:  # (at the end, the status gives the whole test split's accuracy)
            assert f"test accuracy **{run['curves']['test_acc'][-1]:.1%}** (2,000 test images)" in status
        assert chart_data.unpacked(chart["right"]) == reference  # its own data at epochs 0..2, from the first update
    # the run's earlier epochs do not change as it goes on: each update's history is the previous one's, plus one
    for before, after in itertools.pairwise(chart["left"] for chart, _ in outputs):
        assert after["stats"]["grad_mean_abs"]["values"][:-1] == before["stats"]["grad_mean_abs"]["values"]
        assert after["curves"]["train_loss"][:-1] == before["curves"]["train_loss"]
    status = outputs[-1][1]
    assert "✔ Done." in status and "(10,000 test images)" in status and "Reference **ReLU" in status


@pytest.mark.parametrize("changes,message", [
    (dict(depth=11), "Depth (hidden layers) must be a whole number from 1 to 10 hidden layers, got 11"),
    (dict(lr=5), "Learning rate must be greater than 0 and at most 1, got 5"),
    (dict(depth=2, skips=True), "Skip connections need at least 3 hidden layers"),
])
@pytest.mark.app
def test_app_refuses_bad_values_with_a_clear_message(client, changes, message):
    with pytest.raises(Exception) as e:
        client.predict(*_args(**changes), api_name="/playground")
    assert message in str(e.value)


@pytest.mark.app
def test_stop_and_cancel_mid_run_leave_the_app_responsive(client, server):
    long = _args(depth=7, width=128, epochs=20, train_size=20_000)  # a minute or more if it ran to the end
    # the Stop button's endpoint: the run ends with a status saying so
    job = client.submit(*long, api_name="/playground")
    while not job.outputs():
        assert not job.done(), job.status()
        time.sleep(0.05)
    client.predict(api_name="/playground_stop")
    _wait(job, 15)
    assert "stopped at your request" in job.outputs()[-1][1] and len(job.outputs()) < 21
    # a cancelled job (a closed tab) frees the single training slot at once
    job = client.submit(*long, api_name="/playground")
    while not job.outputs():
        time.sleep(0.05)
    job.cancel()
    start = time.monotonic()
    card_left, *_ = client.predict("baseline", "relu", api_name="/compare")
    assert card_left.startswith("### ") and time.monotonic() - start < 10
    short = client.submit(*_args(epochs=1), api_name="/playground")
    _wait(short, 30)  # had the slot not been freed, it would wait for a 20-epoch run
    assert len(short.outputs()) == 2 and server.alive()


def test_a_run_can_cross_to_a_zerogpu_worker():
    """On ZeroGPU the decorated training runs in a forked worker that receives its arguments pickled and sends
    back every update pickled: the arguments and the updates must survive that, the stop switch as a fresh one."""
    import pickle

    stop = pg.StopSwitch()
    stop.set()
    settings = pg.PlaygroundSettings(depth=2, width=8, epochs=1, train_size=500)
    sent = pickle.loads(pickle.dumps((settings, stop, 60.0)))
    assert sent[0] == settings and isinstance(sent[1], pg.StopSwitch) and not sent[1].is_set()
    updates = [pickle.loads(pickle.dumps(u)) for u in playground_tab.train(*sent)]
    assert [u.epoch for u in updates] == [0, 1] and updates[-1].done and updates[-1].final_test_acc is not None
    assert playground_tab._gpu_seconds(settings, stop, 60.0) == 60 + playground_tab.GPU_MARGIN
