"""Checkpoints round-trip exactly, and every kind of damage is refused with the file named."""
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.methods import METHODS
from core.models import DeepMLP, ModelConfig


def _metrics(model_config):
    return {"method": "skip", "seed": 1, "config": model_config, "epochs": 0, "train_seconds": 0.0,
            "test_acc": 0.1, "test_loss": 2.3, "history": []}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = replace(METHODS["batchnorm"].model, skips=((1, 3),))
    model = DeepMLP(config)
    model.norms[0].running_mean += 0.5  # buffers must round-trip too
    save_checkpoint(model, _metrics(config.to_dict()), tmp_path / "m")
    return model, tmp_path / "m"


def test_round_trip_is_exact(saved):
    model, folder = saved
    loaded, metrics = load_checkpoint(folder)
    x = torch.rand(5, 784)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    assert metrics["method"] == "skip" and len(metrics["weights_sha256"]) == 64
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


@pytest.mark.parametrize("damage,bad_file,message", [
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:5000]),
     "model.safetensors", "not a readable safetensors"),
    (lambda f: (f / "model.safetensors").write_bytes(b""), "model.safetensors", "not a readable"),
    (_damage_weights_shape, "model.safetensors", r"linears.0.weight is \(64, 784\)"),
    (_damage_weights_dtype, "model.safetensors", "float64"),
    (lambda f: (f / "model.safetensors").unlink(), "model.safetensors", "missing"),
    (_edit_json("config.json", lambda c: c.update(evil="os.system")), "config.json", r"unknown \['evil'\]"),
    (_edit_json("config.json", lambda c: c.update(depth=10**9)), "config.json", "depth must be"),
    (_edit_json("config.json", lambda c: c.update(init_std=-1)), "config.json", "init_std"),
    (_edit_json("config.json", lambda c: c.update(activation="__import__")), "config.json", "activation"),
    (_edit_json("config.json", lambda c: c.update(depth="7")), "config.json", "depth must be a whole number"),
    (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json", "JSON object"),
    (lambda f: (f / "metrics.json").write_text("{not json"), "metrics.json", "not valid JSON"),
    (_edit_json("metrics.json", lambda m: m.pop("history")), "metrics.json", "missing keys"),
    (_edit_json("metrics.json", lambda m: m["config"].update(depth=5)), "metrics.json", "does not match"),
    (_edit_json("metrics.json", lambda m: m.update(weights_sha256="0" * 64)), "model.safetensors", "hash"),
])
def test_damaged_checkpoint_is_refused_naming_the_file(saved, damage, bad_file, message):
    _, folder = saved
    damage(folder)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(folder)
    assert str(folder / bad_file) in str(err.value)


def test_nan_weights_are_refused(saved):
    model, folder = saved
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_checkpoint(model, _metrics(json.loads((folder / "config.json").read_text())), folder)
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(folder)
