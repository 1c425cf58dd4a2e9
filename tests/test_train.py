"""Training: deterministic, freezes for real, records diagnostics, learns on real data; the CLI's contract."""
import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from core.checkpoint import load_checkpoint
from core.diagnostics import LAYER_KEYS, LayerRecorder
from core.methods import METHODS, get_method
from core.models import DeepMLP
from core.train import train_epochs, train_method

ROOT_KEYS = {"method", "seed", "config", "epochs", "train_seconds", "test_acc", "test_loss", "history"}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_trains_an_epoch(name, tiny):
    method = replace(get_method(name), epochs=1)
    model, metrics = train_method(method, tiny)
    assert ROOT_KEYS <= set(metrics) and metrics["stopped"] is None
    assert metrics["epochs"] == max(1, len(method.stages))
    assert [r["epoch"] for r in metrics["history"]] == list(range(metrics["epochs"] + 1))
    last = metrics["history"][-1]
    assert [l["name"] for l in last["layers"]] == [f"hidden{i + 1}" for i in range(method.model.depth)] + ["output"]
    for layer in last["layers"]:
        assert set(LAYER_KEYS) | {"name"} == set(layer)
        assert layer["grad_mean_abs"] is not None and layer["grad_mean_abs"] >= 0
        assert layer["rel_weight_change"] >= 0
    assert last["layers"][-1]["rel_weight_change"] > 0  # (std-10 sigmoids can saturate to an exact 0 gradient)
    assert all(l["signal_std"] is not None for l in last["layers"])  # every layer's forward signal, and the logits'
    assert all(l["derivative_mean"] is not None for l in last["layers"][:-1])
    expected_saturation = method.model.activation != "relu"
    assert all((l["saturation"] is not None) == expected_saturation for l in last["layers"][:-1])
    assert all(l["signal_std"] is not None for l in last["layers"])  # the logits too
    assert all(0 <= l["derivative_mean"] <= 1 for l in last["layers"][:-1])
    assert last["layers"][-1]["derivative_mean"] is None
    assert all((l["norm_gain"] is not None) == (method.model.norm != "none") for l in last["layers"][:-1])
    init = metrics["history"][0]["layers"]  # epoch 0: the whole network at init, layer-wise methods included
    assert all(l["grad_mean_abs"] is not None and l["signal_std"] is not None for l in init)
    assert all(0 <= r["train_loss"] < float("inf") for r in metrics["history"])
    json.dumps(metrics, allow_nan=False)  # metrics.json must be strict JSON


def test_sigmoid_baseline_gradient_vanishes_at_init(tiny):
    init = next(train_epochs(replace(METHODS["baseline"], epochs=1), tiny)).record
    grads = [l["grad_mean_abs"] for l in init["layers"]]
    assert init["epoch"] == 0 and all(l["update_ratio"] is None for l in init["layers"])
    assert grads[0] < 1e-3 * grads[-2]  # hidden1 vs hidden7: orders of magnitude apart
    assert grads == sorted(grads)  # fades monotonically from output to input
    relu = next(train_epochs(replace(METHODS["batchnorm"], epochs=1), tiny)).record
    relu_grads = [l["grad_mean_abs"] for l in relu["layers"]]
    assert relu_grads[0] > 0.01 * relu_grads[-2]  # a cure keeps them within two orders of magnitude


@pytest.mark.parametrize("name", ["batchnorm", "baseline", "skip", "grad_norm"])
def test_error_is_the_backpropagated_error_per_image(name, tiny):
    """error_mean_abs = mean |dl/dz| over images and units (batch size x mean |dL/dz|), checked against
    autograd; for BatchNorm it is not the ~0 bias gradient (the batch mean cancels there)."""
    torch.manual_seed(0)
    model = DeepMLP(METHODS[name].model).train()
    x, y = tiny.train.x[:256], tiny.train.y[:256]
    zs = []
    loss = F.cross_entropy(model.head(model.features(x, preactivations=zs)), y)
    expected = [len(x) * g.abs().mean().item() for g in torch.autograd.grad(loss, zs)]
    recorder = LayerRecorder(model.named_linears())
    with recorder:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        recorder.after_backward()
    errors = [row["error_mean_abs"] for row in recorder.gradient_stats()]
    assert errors[:-1] == pytest.approx(expected, rel=1e-4)
    probs = torch.softmax(model(x), 1).detach()  # the output layer's error is softmax - one-hot, per image
    assert errors[-1] == pytest.approx((probs - F.one_hot(y, 10)).abs().mean().item(), rel=1e-4)
    if name == "batchnorm":
        assert min(errors[:-1]) > 1e-3
        assert max(lin.bias.grad.abs().mean().item() for lin in model.linears) < 1e-6
    model.zero_grad()
    F.cross_entropy(model(x[:64]), y[:64]).backward()  # after the with block nothing watches z: no error added
    recorder.after_backward()
    assert [row["error_mean_abs"] for row in recorder.gradient_stats()] == errors
    assert recorder.batches.tolist() == [2] * len(errors)


def test_error_is_sampled_on_the_steps_the_update_ratio_samples(tiny):
    model = DeepMLP(METHODS["baseline"].model).train()
    recorder = LayerRecorder(model.named_linears())
    with recorder:
        for _ in range(6):
            model.zero_grad()
            F.cross_entropy(model(tiny.train.x[:32]), tiny.train.y[:32]).backward()
            recorder.after_backward()
            recorder.before_step()
            recorder.after_step()
    assert recorder.error_batches.tolist() == [2] * 8 == recorder.steps.tolist()  # steps 1 and 5
    assert recorder.batches.tolist() == [6] * 8


@pytest.mark.parametrize("frozen", [0, 2])
def test_recorder_statistics_are_bit_for_bit_the_per_layer_definitions(frozen, tiny):
    """The recorder's fused ops give exactly what one op per layer and step gives: mean |g| = sum(|g|) / numel,
    ||g||, max |g|, the error ||dL/dz||_1 / units and the update's std over the weights' (on the sampled
    steps), summed in float32 step by step. Frozen layers (no gradient, no update) take the index path."""
    torch.manual_seed(0)
    model = DeepMLP(METHODS["baseline"].model).train()
    for linear in model.linears[:frozen]:
        linear.requires_grad_(False)
    linears = model.named_linears()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    recorder = LayerRecorder(linears)
    n = len(linears)
    mean_abs, norm, largest, error, ratio = (torch.zeros(n) for _ in range(5))

    def std(t):  # the sample std as the recorder takes it: from the squared L2 norm and the sum
        size = torch.tensor(float(t.numel()))
        return ((torch.linalg.vector_norm(t) ** 2 - t.sum() * t.sum() / size) / (size - 1)).clamp_min(0).sqrt()

    grads = {}  # dL/dz of each layer in use, this step
    with recorder:
        for step in range(6):
            x, y = tiny.train.x[64 * step:64 * (step + 1)], tiny.train.y[64 * step:64 * (step + 1)]
            zs = []
            logits = model.head(model.features(x, preactivations=zs))
            grads.clear()
            for i, z in enumerate([*zs, logits]):
                if z.requires_grad:
                    z.register_hook(lambda g, i=i: grads.__setitem__(i, g))
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(logits, y).backward()
            recorder.after_backward()
            before = [lin.weight.detach().clone() for _, lin in linears]
            recorder.before_step()
            opt.step()
            recorder.after_step()
            for i, (_, lin) in enumerate(linears):
                g = lin.weight.grad
                if g is None:
                    continue
                mean_abs[i] += g.abs().sum() / g.numel()
                norm[i] += torch.linalg.vector_norm(g)
                lo, hi = torch.aminmax(g)
                largest[i] = torch.maximum(largest[i], torch.maximum(-lo, hi))
                if step % 4 == 0:  # the sampled steps
                    error[i] += torch.linalg.vector_norm(grads[i], 1) / grads[i].shape[-1]
                    ratio[i] += std(before[i] - lin.weight.detach()) / std(lin.weight.detach())
    seen = torch.tensor([float(i >= frozen) for i in range(n - 1)] + [1.0])
    assert torch.equal(recorder.batches, 6 * seen) and torch.equal(recorder.steps, 2 * seen)
    assert torch.equal(recorder.error_batches, 2 * seen)
    assert torch.equal(recorder.sums[0], mean_abs) and torch.equal(recorder.sums[1], norm)
    assert torch.equal(recorder.max, largest) and torch.equal(recorder.error_sum, error)
    assert torch.equal(recorder.ratio_sum, ratio)
    assert all((row["grad_norm"] is None) == (i < frozen) for i, row in enumerate(recorder.gradient_stats()))


@pytest.mark.parametrize("name", ["batchnorm", "layerwise"])
def test_watching_the_error_does_not_change_training(name, tiny, monkeypatch):
    method = replace(METHODS[name], epochs=1)
    watched, metrics = train_method(method, tiny)
    assert metrics["history"][-1]["layers"][0]["error_mean_abs"] > 0
    monkeypatch.setattr(LayerRecorder, "__enter__", lambda self: self)  # no hooks on z
    unwatched, metrics = train_method(method, tiny)
    assert metrics["history"][-1]["layers"][0]["error_mean_abs"] is None
    assert all(torch.equal(v, unwatched.state_dict()[k]) for k, v in watched.state_dict().items())


def test_same_seed_same_metrics(tiny):
    method = replace(METHODS["adam"], epochs=2)
    a, b = train_method(method, tiny)[1], train_method(method, tiny)[1]
    strip = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}  # noqa: E731
    assert strip(a) == strip(b)
    c = train_method(replace(method, seed=7), tiny)[1]
    assert c["history"][-1]["train_loss"] != a["history"][-1]["train_loss"]


def test_layerwise_freezes_for_real(tiny):
    method = replace(METHODS["layerwise"], epochs=1)
    snapshots, frozen_flags = [], []
    for update in train_epochs(method, tiny):
        m = update.model
        snapshots.append([l.weight.detach().clone() for l in m.linears])
        frozen_flags.append([l.weight.requires_grad for l in m.linears])
    # snapshots[k] is after stage k (index 0 = init); stages freeze the first 2, 4, 6 hidden layers
    for stage, frozen in ((2, 2), (4, 4), (6, 6)):
        before, after = snapshots[stage - 1], snapshots[stage]
        for i in range(frozen):
            assert torch.equal(before[i], after[i]), f"hidden{i + 1} moved in stage {stage}"
        assert not torch.equal(before[frozen], after[frozen]), f"hidden{frozen + 1} did not train in stage {stage}"
    # stage 3 trains everything in use again
    assert not torch.equal(snapshots[2][0], snapshots[3][0])
    # layers not yet in use are untouched
    assert torch.equal(snapshots[0][6], snapshots[5][6])


def test_layerwise_frozen_layers_are_not_in_the_optimizer(tiny, monkeypatch):
    import core.train as train
    seen = []
    real = train.make_optimizer

    def spy(method, params):
        params = list(params)
        seen.append({id(p) for p in params})
        return real(method, params)
    monkeypatch.setattr(train, "make_optimizer", spy)
    updates = list(train_epochs(replace(METHODS["layerwise"], epochs=1), tiny))
    model = updates[-1].model
    assert len(seen) == 7
    hidden1 = id(model.linears[0].weight)
    assert [hidden1 in s for s in seen] == [True, False, True, False, True, False, True]


@pytest.mark.parametrize("name", ["layerwise", "layerwise_6"])
def test_frozen_layers_computed_once_per_stage_train_bit_for_bit_as_per_batch(name, tiny, monkeypatch):
    """A stage computes its frozen prefix once for all images (core.train.frozen_prefix), not on every batch;
    the weights and every metric are exactly those of computing it batch by batch."""
    import core.train as train
    method = replace(METHODS[name], epochs=1)
    starts = []
    real = train.frozen_prefix
    monkeypatch.setattr(train, "frozen_prefix", lambda *a: starts.append(real(*a)) or starts[-1])
    cached, a = train_method(method, tiny)
    assert starts == [s.frozen for s in method.stages] and max(starts) == 6
    monkeypatch.setattr(train, "frozen_prefix", lambda *a: 0)
    per_batch, b = train_method(method, tiny)
    assert all(torch.equal(v, per_batch.state_dict()[k]) for k, v in cached.state_dict().items())
    strip = lambda m: {k: v for k, v in m.items() if k != "train_seconds"}  # noqa: E731
    assert strip(a) == strip(b)


def test_frozen_prefix_only_where_each_image_is_computed_alone():
    from core.train import frozen_prefix
    model = lambda name: DeepMLP(METHODS[name].model)  # noqa: E731
    assert frozen_prefix(model("layerwise"), 4, 54_000, 512, 6_000) == 4
    assert frozen_prefix(model("layerwise"), 0, 54_000, 512, 6_000) == 0
    assert frozen_prefix(model("batchnorm"), 4, 54_000, 512, 6_000) == 0  # batch statistics
    assert frozen_prefix(model("custom_norm"), 4, 54_000, 512, 6_000) == 0
    assert frozen_prefix(model("skip"), 4, 54_000, 512, 6_000) == 0  # hidden 4 feeds hidden 7
    assert frozen_prefix(model("skip"), 5, 54_000, 512, 6_000) == 0  # 4 -> 7 crosses 5
    assert frozen_prefix(model("skip"), 3, 54_000, 512, 6_000) == 3  # 1 -> 3 ends inside the prefix
    assert frozen_prefix(model("layerwise"), 4, 512 * 10 + 3, 512, 6_000) == 0  # a last batch of 3 rows
    assert frozen_prefix(model("layerwise"), 4, 54_000, 512, 4096 + 5) == 0  # a validation pass of 5 rows


def test_nan_loss_stops_with_a_recorded_message(tiny):
    method = replace(METHODS["relu"], model=replace(METHODS["relu"].model, init_std=1e3), epochs=3)
    model, metrics = train_method(method, tiny)
    assert metrics["stopped"] and "loss became" in metrics["stopped"]
    assert metrics["epochs"] == 1


@pytest.mark.slow
def test_short_training_on_real_data_learns(fashion):
    # `best` is a ReLU net with the cures that make it learn fast; the spec's `relu` (SGD, std 0.05 init)
    # sits on a plateau for its first epochs, so it cannot show learning in a test-sized run.
    model, metrics = train_method(replace(METHODS["best"], epochs=2), fashion)
    assert metrics["test_acc"] > 0.75, metrics["test_acc"]  # chance is 0.1
    assert metrics["history"][-1]["train_loss"] < 0.6 * metrics["history"][0]["train_loss"]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "core", "train", *args], capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.mark.slow
def test_cli_trains_relu_and_writes_a_valid_checkpoint(tmp_path):
    run = _cli("--method", "relu", "--epochs", "2", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    model, metrics = load_checkpoint(tmp_path / "relu")
    assert metrics["epochs"] == 2 and metrics["config"]["activation"] == "relu"
    assert metrics["data_source"] == "/usr/share/datasets/fashion-mnist" and 0 <= metrics["sample_acc"] <= 1
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("args,message", [
    (["--method", "nope"], "unknown method 'nope'; valid: baseline,"),
    (["--method", "relu", "--epochs", "0"], "must be positive"),
    (["--method", "relu", "--epochs", "-3"], "must be positive"),
    (["--method", "relu", "--out", "/proc/no/such"], "cannot write to --out"),
    (["--method", "relu", "--data-dir", "/nonexistent"], "FashionMNIST not found"),
    (["--method", "relu", "--device", "tpu"], "--device tpu: unknown device 'tpu' (expected cpu or cuda)"),
])
def test_cli_bad_arguments_one_line_exit_2(args, message):
    run = _cli(*args)
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_training_takes_its_device_and_keeps_the_cpu_result(tiny):
    """The device-agnostic path, on the CPU: an explicit device gives exactly the default run, the model comes
    back on the CPU, and cuda is taken where there is a GPU and refused with a reason where there is none."""
    method = replace(METHODS["batchnorm"], epochs=1)
    default, a = train_method(method, tiny)
    explicit, b = train_method(method, tiny, device=torch.device("cpu"))
    assert all(torch.equal(v, explicit.state_dict()[k]) for k, v in default.state_dict().items())
    assert a["device"] == b["device"] == "cpu" and next(explicit.parameters()).device.type == "cpu"
    if torch.cuda.is_available():  # a GPU machine: close to the CPU's run, not bitwise
        gpu, c = train_method(method, tiny, device="cuda")
        assert c["device"] == "cuda" and next(gpu.parameters()).device.type == "cpu"
        assert abs(c["test_acc"] - a["test_acc"]) < 0.05
    else:
        with pytest.raises(ValueError, match="CUDA is not available on this machine"):
            train_method(method, tiny, device="cuda")
        run = _cli("--method", "relu", "--device", "cuda", "--epochs", "1")
        assert run.returncode == 2 and run.stderr.startswith("error: --device cuda: CUDA is not available")


@pytest.mark.slow
def test_order_seed_varies_the_batch_order_alone(tiny):
    method = replace(METHODS["grad_norm"], epochs=1)
    init, loss = [], []
    for order in (None, method.seed, 7):
        updates = train_epochs(method, tiny, order_seed=order)
        init.append(next(updates).model.linears[0].weight.detach().clone())  # epoch 0: the untouched init
        loss.append(list(updates)[-1].record["train_loss"])
    assert all(torch.equal(init[0], w) for w in init)  # the init is method.seed's whatever the order
    assert loss[0] == loss[1] != loss[2]  # its own seed is the default order; another seed, another order


def test_resume_trains_only_the_later_stages(tiny):
    from core.train import Resume
    method = replace(METHODS["layerwise_6"], epochs=1)  # 6 trainings of one epoch
    first = list(train_epochs(replace(method, stages=method.stages[:3]), tiny))
    model = first[-1].model
    kept = [l.weight.detach().clone() for l in model.linears[:4]]  # trainings 1-3 froze nothing of 1-4 after
    rest = list(train_epochs(method, tiny, resume=Resume(model, stage=3, epoch=3)))
    assert [u.record["epoch"] for u in rest] == [4, 5, 6] and [u.record["stage"] for u in rest] == [4, 5, 6]
    assert not torch.equal(kept[0], rest[0].model.linears[0].weight)  # training 4 trains A, B and C
    assert rest[-1].total_epochs == 6


def test_cli_list():
    run = _cli("--list")
    assert run.returncode == 0 and [line.split()[0] for line in run.stdout.splitlines()] == list(METHODS)


@pytest.mark.slow
def test_cli_retrains_bit_for_bit(tmp_path):
    """Same command, same torch version, same thread count (the CLI's default: one) -> the same weights."""
    shas = []
    for out in (tmp_path / "a", tmp_path / "b"):
        run = _cli("--method", "layerwise_6", "--epochs", "1", "--limit", "3000", "--out", str(out))
        assert run.returncode == 0, run.stderr
        metrics = json.loads((out / "layerwise_6" / "metrics.json").read_text())
        assert metrics["torch_threads"] == 1
        shas.append(metrics["weights_sha256"])
    assert shas[0] == shas[1]


def test_cli_refuses_several_seeds_into_one_checkpoint(tmp_path):
    run = _cli("--method", "relu", "--seed", "1", "2", "--out", str(tmp_path))
    assert run.returncode == 2 and "several seeds need --metrics-only" in run.stderr
