"""Checkpoints round-trip exactly; every kind of damage to any file is refused as a CheckpointError that names the
file relative to the checkpoints folder, never an absolute path; the results table leaves a damaged seed file
out of its row and says so."""
import json
import os
import re
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from core import schema
from core.checkpoint import MAX_BYTES, CheckpointError, load_checkpoint, read_metrics, save_checkpoint, write_json
from core.diagnostics import LAYER_KEYS
from core.methods import METHODS
from core.models import DeepMLP, ModelConfig
from core.results import markdown_table, method_runs, results_rows
from tests.helpers import ROOT, fake_run
from ui import pages


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = replace(METHODS["batchnorm"].model, skips=((1, 3),))
    model = DeepMLP(config)
    model.norms[0].running_mean += 0.5  # buffers must round-trip too
    save_checkpoint(model, fake_run("skip", config.to_dict()), tmp_path / "m")
    return model, tmp_path / "m"


def test_round_trip_is_exact(saved):
    model, folder = saved
    loaded, metrics = load_checkpoint(folder)
    x = torch.rand(5, 784)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert metrics["method"] == "skip" and len(metrics["weights_sha256"]) == 64
    assert metrics == json.loads((folder / "metrics.json").read_text())  # exactly the file: no defaults added
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]
    # the Hub mixin reads the same files
    hub = DeepMLP.from_pretrained(str(folder))
    torch.testing.assert_close(hub.eval()(x), model(x))


def _damage_weights_shape(folder):
    state = DeepMLP(ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))).state_dict()
    state["linears.0.weight"] = torch.zeros(64, 784)
    save_file(state, folder / "model.safetensors")


def _damage_weights_dtype(folder):
    state = DeepMLP(ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))).state_dict()
    state["head.bias"] = state["head.bias"].double()
    save_file(state, folder / "model.safetensors")


def _edit_json(name, change):
    def damage(folder):
        obj = json.loads((folder / name).read_text())
        change(obj)
        (folder / name).write_text(json.dumps(obj))
    return damage


def _raw(name, old, new):
    """Replace the first `old` in the file's compact JSON text by raw JSON text `new`."""
    def damage(folder):
        text = json.dumps(json.loads((folder / name).read_text()), separators=(",", ":"))
        assert old in text
        (folder / name).write_text(text.replace(old, new, 1))
    return damage


def _layer(i, j, key, value):
    return _edit_json("metrics.json", lambda m: m["history"][i]["layers"][j].update({key: value}))


def _replace_by(kind):
    def damage(folder):
        path = folder / "metrics.json"
        path.unlink()
        if kind == "folder":
            path.mkdir()
        elif kind == "loop":
            path.symlink_to("metrics.json")
        elif kind == "dangling":
            path.symlink_to("nowhere.json")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            path.symlink_to("/dev/zero")
    return damage


def _sparse(name, size):
    def damage(folder):
        with open(folder / name, "r+b") as f:
            f.truncate(size)
    return damage


GRAD = '"grad_mean_abs":0.001'


@pytest.mark.parametrize("damage,bad_file,message", [
    # model.safetensors
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]),
     "model.safetensors", "not a readable safetensors file"),
    (lambda f: (f / "model.safetensors").write_bytes(b""), "model.safetensors", "not a readable safetensors file"),
    (_damage_weights_shape, "model.safetensors",
     r"linears.0.weight is \(64, 784\) torch.float32, expected \(128, 784\)"),
    (_damage_weights_dtype, "model.safetensors", "head.bias is .* torch.float64, expected .* torch.float32"),
    (lambda f: (f / "model.safetensors").unlink(), "model.safetensors", "missing"),
    (_sparse("model.safetensors", MAX_BYTES + 1), "model.safetensors", "bytes, more than the"),
    (_edit_json("metrics.json", lambda m: m.update(weights_sha256="0" * 64)), "model.safetensors",
     "does not match the hash in m/metrics.json"),
    # config.json
    (_edit_json("config.json", lambda c: c.update(evil="os.system")), "config.json", 'top level: unknown key "evil"'),
    (_edit_json("config.json", lambda c: c.update(depth=10**9)), "config.json",
     "depth: expected a whole number 1..32, got 1000000000"),
    (_edit_json("config.json", lambda c: c.update(init_std=-1)), "config.json",
     r"init_std: expected a number in \(0, 1000\], got -1"),
    (_edit_json("config.json", lambda c: c.update(activation="__import__")), "config.json",
     'activation: expected one of "sigmoid", "tanh", "relu", got "__import__"'),
    (_edit_json("config.json", lambda c: c.update(depth="7")), "config.json",
     'depth: expected a whole number 1..32, got "7"'),
    (_edit_json("config.json", lambda c: c.update(skips=[[3, 1]])), "config.json", "skips must be"),
    (_edit_json("config.json", lambda c: c.update(depth=32, width=4096)), "config.json", "a model of more than"),
    (_raw("config.json", '"init_std":0.05', '"init_std":NaN'), "config.json", "init_std: expected .* got NaN"),
    (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json", r"expected an object, got \[1,2\]"),
    (lambda f: (f / "config.json").write_text(""), "config.json", "not valid JSON"),
    # metrics.json: JSON the parser refuses
    (lambda f: (f / "metrics.json").write_text("{not json"), "metrics.json", "not valid JSON"),
    (lambda f: (f / "metrics.json").write_bytes(b'{"a": "\xff"}'), "metrics.json", "not valid JSON"),
    (_raw("metrics.json", GRAD, '"grad_mean_abs":' + "[" * 100_000 + "]" * 100_000), "metrics.json",
     "not valid JSON .recursion limit exceeded"),
    (_raw("metrics.json", GRAD, '"grad_mean_abs":1' + "0" * 5000), "metrics.json",
     "not valid JSON .number out of range"),
    (_sparse("metrics.json", schema.MAX_METRICS_BYTES + 1), "metrics.json", "bytes, more than the"),
    # metrics.json: valid JSON that does not match the schema
    (_raw("metrics.json", GRAD, '"grad_mean_abs":1' + "0" * 4000), "metrics.json",
     r"history\[0\].layers\[0\].grad_mean_abs: expected a finite number >= 0, or null, got a number of about 4001"),
    (_raw("metrics.json", GRAD, '"grad_mean_abs":1e999'), "metrics.json", "got Infinity"),
    (_layer(1, 2, "grad_mean_abs", float("nan")), "metrics.json",
     r"history\[1\].layers\[2\].grad_mean_abs: expected a finite number >= 0, or null, got NaN"),
    (_layer(1, 2, "grad_mean_abs", "x"), "metrics.json",
     r'history\[1\].layers\[2\].grad_mean_abs: expected a finite number >= 0, or null, got "x"'),
    (_layer(1, 2, "grad_mean_abs", -1), "metrics.json", "got -1"),
    (_layer(1, 2, "grad_mean_abs", 5e-324), "metrics.json", "expected 0 or at least 1.4e-45"),
    (_layer(1, 2, "saturation", 1.5), "metrics.json", r"saturation: expected a finite number in \[0, 1\], or null"),
    (_layer(1, 2, "derivative_mean", 1.5), "metrics.json",
     r"derivative_mean: expected a finite number in \[0, 1\], or null"),  # no activation's derivative exceeds 1
    (_layer(1, 2, "signal_std", -0.1), "metrics.json", r"signal_std: expected a finite number >= 0, or null"),
    (_layer(1, 2, "norm_gain", float("inf")), "metrics.json", r"norm_gain: expected a finite number >= 0, or null"),
    (_layer(1, 2, "name", "hidden9"), "metrics.json",
     r'history\[1\].layers\[2\].name: expected "hidden3", got "hidden9"'),
    (_edit_json("metrics.json", lambda m: m["history"][1]["layers"].pop()), "metrics.json",
     r"history\[1\].layers: expected 8 layers \(hidden1..hidden7, output\), got 7"),
    (_edit_json("metrics.json", lambda m: m["history"].reverse()), "metrics.json", r"history\[0\].epoch: expected 0"),
    (_edit_json("metrics.json", lambda m: m["history"].append(m["history"][-1])), "metrics.json",
     r"history\[2\].epoch: expected more than the epoch before \(1\), got 1"),
    (_edit_json("metrics.json", lambda m: m.update(epochs=5)), "metrics.json", "epochs: expected 1"),
    (_edit_json("metrics.json", lambda m: m.update(history=[])), "metrics.json",
     "history: expected a list of 1..10001"),
    (_edit_json("metrics.json", lambda m: m.pop("history")), "metrics.json", "history: missing"),
    (_edit_json("metrics.json", lambda m: m.pop("weights_sha256")), "metrics.json", "weights_sha256: missing"),
    (_edit_json("metrics.json", lambda m: m.update(test_acc=1.5)), "metrics.json",
     r"test_acc: expected a finite number in \[0, 1\], got 1.5"),
    (_edit_json("metrics.json", lambda m: m.update(test_acc=True)), "metrics.json", "got true"),
    (_edit_json("metrics.json", lambda m: m.update(stopped="x" * 5000)), "metrics.json",
     r'stopped: expected a plain sentence .*, or null, got "x{40}"... \(5000 characters\)'),
    (_edit_json("metrics.json", lambda m: m.update(stopped="see [here](http://x)")), "metrics.json",
     r'stopped: expected a plain sentence of at most 500 characters \(no markup\), or null, got "see \\u005bhere'),
    (_edit_json("metrics.json", lambda m: m.update(method="<img src=x onerror=alert(1)>")), "metrics.json",
     r'method: expected a name .*, got "\\u003cimg src=x onerror=alert\\u00281\\u0029\\u003e"'),
    (_edit_json("metrics.json", lambda m: m["config"].update(width=64)), "metrics.json",
     "config.width is 64, but m/config.json says 128"),
    (_edit_json("metrics.json", lambda m: m["config"].update(stages=[{"depth": 9, "frozen": 0}])), "metrics.json",
     r"config.stages\[0\]: expected frozen < depth <= 7"),
    # metrics.json: something other than a file where it should be
    (_replace_by("folder"), "metrics.json", "is a folder, expected a file"),
    (_replace_by("loop"), "metrics.json", "cannot be opened .too many levels of symbolic links"),
    (_replace_by("dangling"), "metrics.json", "missing"),
    (_replace_by("fifo"), "metrics.json", "is not a regular file"),
    (_replace_by("device"), "metrics.json", "is not a regular file"),
])
def test_damaged_checkpoint_is_refused_naming_the_file(saved, damage, bad_file, message):
    _, folder = saved
    damage(folder)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(folder)
    text = str(err.value)
    assert text.startswith(f"m/{bad_file}: "), text  # relative to the checkpoints folder
    assert str(folder.parent) not in text and "Error" not in text, text
    assert len(text) < 400, text


def test_an_unexpected_failure_is_still_a_checkpoint_error(saved, monkeypatch):
    _, folder = saved
    monkeypatch.setattr(schema, "parse_run", lambda *a, **k: {}["no such key"])
    with pytest.raises(CheckpointError, match=r"^m/metrics.json: could not be read \(an unexpected problem"):
        load_checkpoint(folder)


def test_the_method_must_be_the_folders(saved):
    _, folder = saved
    load_checkpoint(folder, "skip")
    with pytest.raises(CheckpointError, match='^m/metrics.json: method: expected "relu", got "skip"$'):
        load_checkpoint(folder, "relu")


def test_nan_weights_are_refused(saved):
    model, folder = saved
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_checkpoint(model, fake_run("skip", model.config.to_dict()), folder)
    with pytest.raises(CheckpointError, match="^m/model.safetensors: head.weight holds NaN or inf"):
        load_checkpoint(folder)


def test_older_and_newer_metrics_both_validate(tmp_path):
    """A committed seed file without error_mean_abs / activation_std / head_init / the probe's signal statistics, and
    newer metrics with them."""
    old = json.loads((ROOT / "checkpoints" / "relu" / "seeds" / "43.json").read_text())
    assert "head_init" not in old["config"] and "error_mean_abs" not in old["history"][0]["layers"][0]
    assert "signal_std" not in old["history"][0]["layers"][0]
    new = fake_run("layerwise_6")  # every key core.diagnostics records
    assert all(set(layer) == {"name", *LAYER_KEYS} for row in new["history"] for layer in row["layers"])
    assert new["config"]["head_init"] == "default"
    for run, checkpoint in ((old, False), (new, False)):
        write_json(tmp_path / "run.json", run, compact=True)
        assert read_metrics(tmp_path / "run.json", checkpoint=checkpoint) == run
    with pytest.raises(CheckpointError, match="weights_sha256: missing"):  # a seed file need not have it
        read_metrics(tmp_path / "run.json", checkpoint=True)


@pytest.mark.parametrize("value", [1e-46, 5e-300])
def test_a_subnormal_layer_value_is_named(tmp_path, value):
    """A value no float32 can hold (0 < |v| < its smallest, 1.4e-45): rejected, and the message names it."""
    run = fake_run("relu")
    run["history"][1]["layers"][2]["grad_mean_abs"] = value
    write_json(tmp_path / "run.json", run, compact=True)
    with pytest.raises(CheckpointError, match=re.escape("history[1].layers[2].grad_mean_abs: expected 0 or at least")):
        read_metrics(tmp_path / "run.json", checkpoint=False)
    run["history"][1]["layers"][2]["grad_mean_abs"] = 0.0  # 0 is fine
    write_json(tmp_path / "run.json", run, compact=True)
    assert read_metrics(tmp_path / "run.json", checkpoint=False) == run


def test_shown_values_are_short_and_inert():
    assert schema.shown("[click](http://x) <b>") == '"\\u005bclick\\u005d\\u0028http://x\\u0029 \\u003cb\\u003e"'
    assert schema.shown("é") == '"\\u00e9"' and schema.shown(None) == "null" and schema.shown(True) == "true"
    assert schema.shown(10**4000).startswith("a number of about 40") and schema.shown(float("-inf")) == "-Infinity"
    assert schema.shown([[1, 3], [4, 7]]) == "[[1,3],[4,7]]" and schema.shown(["a"]) == "a list of 1 item"
    assert schema.shown(list(range(9))) == "a list of 9 items"
    assert schema.shown({"a": 1, "b": 2}) == "an object of 2 keys"


# --- the results table: a damaged seed file is left out of its row, named; nothing raises in the app's mode ---

@pytest.fixture
def seeded(tmp_path):
    """checkpoints/relu's metrics.json and its seeds 43 and 44, copied."""
    root = tmp_path / "checkpoints"
    (root / "relu" / "seeds").mkdir(parents=True)
    for rel in ("metrics.json", "seeds/43.json", "seeds/44.json"):
        (root / "relu" / rel).write_bytes((ROOT / "checkpoints" / "relu" / rel).read_bytes())
    return root


def _seed_raw(old, new):
    return lambda path: _raw(path.name, old, new)(path.parent)


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_text('{"test_acc": "x"'), "not valid JSON"),
    (_seed_raw('"test_acc":', '"test_acc":1.5,"x":'), r"test_acc: expected a finite number in \[0, 1\], got 1.5"),
    (_seed_raw('"seed":43', '"seed":44'), "seed: expected 43 .the file's name., got 44"),
    (_seed_raw('"lr":0.01', '"lr":0.1'), r"config.lr is 0.1, but the checkpoint's is 0.01 \(another recipe\)"),
    (_seed_raw('"method":"relu"', '"method":"tanh"'), 'method: expected "relu", got "tanh"'),
    (lambda p: (p.unlink(), p.mkdir()), "is a folder"),
])
def test_a_damaged_seed_file_is_left_out_of_its_row_and_named(seeded, damage, message):
    damage(seeded / "relu" / "seeds" / "43.json")
    runs, left_out = method_runs("relu", seeded)
    assert [r["seed"] for r in runs] == [42, 44]
    assert len(left_out) == 1 and left_out[0].startswith("relu/seeds/43.json: "), left_out
    assert re.search(message, left_out[0]) and str(seeded) not in left_out[0], left_out
    (row,) = results_rows(seeded, strict=False)  # the app: the row of the two good runs, with the note
    assert row["seeds"] == [42, 44] and row["left_out"] == left_out
    assert f"- `relu`: left out of its row: {left_out[0]}" in markdown_table([row])
    assert pages.left_out_line(row) == "\n\nLeft out of these numbers: relu/seeds/43.json (see the Results tab)."
    with pytest.raises(CheckpointError, match="^relu/seeds/43.json: "):  # the README and the CLI: refused
        results_rows(seeded, strict=True)


def test_a_damaged_metrics_json_has_no_row_in_the_app_and_raises_for_the_readme(seeded):
    (seeded / "relu" / "metrics.json").write_text("[" * 100_000)
    assert results_rows(seeded, strict=False) == []
    with pytest.raises(CheckpointError, match=r"^relu/metrics.json: not valid JSON"):
        results_rows(seeded, strict=True)
    # and a metrics.json of another method is not taken for this one's
    (seeded / "relu" / "metrics.json").write_bytes((ROOT / "checkpoints" / "tanh" / "metrics.json").read_bytes())
    assert results_rows(seeded, strict=False) == []
    with pytest.raises(CheckpointError, match='^relu/metrics.json: method: expected "relu", got "tanh"'):
        results_rows(seeded, strict=True)


def test_the_results_of_intact_files_are_unchanged(seeded):
    (row,) = results_rows(seeded)
    assert row["seeds"] == [42, 43, 44] and row["left_out"] == []
    assert "left out" not in markdown_table([row])
