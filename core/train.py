"""Train a registry method on FashionMNIST, recording per-layer diagnostics every epoch."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import FashionMNIST, Split
from .diagnostics import LayerRecorder, layer_table
from .evaluate import EVAL_BATCH, evaluate
from .methods import Method, Stage
from .models import DeepMLP

PROBE_SIZE = 1024  # validation images used to measure saturation
# A CPU matmul gives each row of its result the same bits whatever the other rows are, from 4 rows on (checked
# with torch 2.11's MKL on this project's AMD EPYC for 4 to 54,000 rows; 1-3 rows take other kernels): a stage
# computes its frozen layers once only if every matmul involved has at least this many rows
MIN_ROWS = 8
INIT_PROBE_BATCHES = 4  # training batches averaged for the epoch-0 gradient statistics
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass(frozen=True)
class Resume:
    """Continue a layer-wise run at a later stage from a model trained so far (core.experiments: is a seed's
    fate inherited from the earlier stages, or decided in this one?). The fresh head of the stage is drawn
    from method.seed's stream and the batch order from train_epochs' order_seed."""
    model: DeepMLP
    stage: int  # index into method.stages of the first stage to train
    epoch: int  # epochs already trained: the history's epoch numbers continue from here


@dataclass
class EpochUpdate:
    """What train_epochs yields after epoch 0 (init) and after every epoch."""
    model: DeepMLP
    record: dict  # one history row of metrics.json
    total_epochs: int
    stopped: str | None = None  # why training ended early (NaN/inf loss), if it did


def make_optimizer(method: Method, params) -> torch.optim.Optimizer:
    if method.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {method.optimizer!r}")
    # foreach: one op per update step for all parameters (torch's default on CUDA, not on the CPU); on the CPU
    # it runs the same per-tensor kernels, so the weights are bit for bit those of the per-parameter loop
    return OPTIMIZERS[method.optimizer](params, lr=method.lr, weight_decay=method.weight_decay, foreach=True)


def _init_gradients(model: DeepMLP, recorder: LayerRecorder, train: Split, batch_size: int, depth: int,
                    gen: torch.Generator) -> None:
    """Gradient statistics of the untouched model on a few training batches; no update, BN stats restored."""
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    idx = torch.randperm(len(train), generator=gen)[:INIT_PROBE_BATCHES * batch_size].to(train.x.device)
    for chunk in idx.split(batch_size):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(train.x[chunk], depth), train.y[chunk]).backward()
        recorder.after_backward()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(buffers[k])


def frozen_prefix(model: DeepMLP, frozen: int, n_train: int, batch_size: int, n_val: int) -> int:
    """How many hidden layers a stage can compute once instead of on every batch: its `frozen` ones, when they
    give each image an output of its own (no norm with batch statistics, no skip connection out of them)
    and every matmul involved has MIN_ROWS rows or more; else 0. Frozen, they give the same all stage long.
    (On CUDA, whose matmuls pick kernels by shape, that may move the last bits; no CUDA run is bitwise anyway.)"""
    batches = lambda n, size: {min(n, size), n % size or min(n, size)}  # noqa: E731
    rows = batches(n_train, batch_size) | batches(n_val, EVAL_BATCH) | {n_train, n_val}
    config = model.config
    alone = config.norm == "none" and not any(src <= frozen < dst for src, dst in config.skips)
    return frozen if frozen and alone and min(rows) >= MIN_ROWS else 0


@torch.no_grad()
def hidden_outputs(model: DeepMLP, split: Split, layers: int) -> Split:
    """`split` with x replaced by hidden layer `layers`' output (the same split when `layers` is 0)."""
    return Split(model.features(split.x, layers), split.y) if layers else split


def on_device(data: FashionMNIST, device: str | torch.device) -> FashionMNIST:
    """The dataset's tensors on `device` (the same object when they are there already)."""
    move = lambda s: Split(s.x.to(device), s.y.to(device))  # noqa: E731
    if data.train.x.device == torch.device(device):
        return data
    return FashionMNIST(move(data.train), move(data.val), move(data.test), data.source)


def check_device(device: str) -> torch.device:
    """`device` as a torch.device if this machine has it, else ValueError saying what it has."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r} (expected cpu or cuda)") from None
    if d.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r} (expected cpu or cuda)")
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"CUDA is not available on this machine (torch {torch.__version__}); use cpu")
    return d


def train_epochs(method: Method, data: FashionMNIST, diagnostics: bool = True,
                 should_stop: Callable[[], bool] | None = None, device: str | torch.device = "cpu",
                 order_seed: int | None = None, resume: Resume | None = None):
    """Train `method` and yield an EpochUpdate after epoch 0 (before any update) and after each epoch.

    Deterministic for method.seed: it seeds the init and the batch order (the split is fixed by whoever
    loaded `data`); `order_seed` seeds the batch order instead, to vary the two apart. Layer-wise methods
    run their stages back to back; epochs count across stages; with `resume`, from one of its later stages
    on (no epoch-0 row then). `should_stop` is asked before every batch; once it returns True the generator
    ends without yielding the unfinished epoch (the app's Stop button must not wait for a long epoch).
    On `device` (cpu by default: what the committed checkpoints were trained on and reproduce bit for bit;
    a CUDA run sums in another order and is not bitwise equal). The batch order is drawn on the CPU either
    way, so it is the same on every device.
    """
    device = check_device(str(device))
    torch.manual_seed(method.seed)
    model = (DeepMLP(method.model) if resume is None else resume.model).to(device).train()
    data = on_device(data, device)
    gen = torch.Generator().manual_seed(method.seed if order_seed is None else order_seed)
    stages = method.stages or (Stage(method.model.depth),)
    total = method.epochs * len(stages)
    probe_x = data.val.x[:PROBE_SIZE]
    # W0 of every layer, for the relative weight change; a layer-wise stage's fresh head gets its own below
    initial = {n: l.weight.detach().clone() for n, l in model.named_linears()}
    epoch = 0 if resume is None else resume.epoch
    first = 0 if resume is None else resume.stage
    for stage_index, stage in list(enumerate(stages))[first:]:
        # every layer-wise stage starts with a fresh output head; frozen layers are also left out of the
        # optimizer, so no optimizer state (momentum, weight decay) can move them
        model.begin_stage(stage.frozen, method.head_init if method.stages else None)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(method, trainable)
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=method.epochs)
                     if method.schedule == "cosine" else None)
        active = [(n, l) for n, l in model.named_linears(stage.depth) if l.weight.requires_grad]
        recorder = LayerRecorder(active, device)
        initial["output"] = model.head.weight.detach().clone()
        # the frozen layers' outputs, once for the stage: its batches and validation passes start after them
        start = frozen_prefix(model, stage.frozen, len(data.train), method.batch_size, len(data.val))
        train, val = hidden_outputs(model, data.train, start), hidden_outputs(model, data.val, start)

        def row(train_loss: float, train_acc: float, epoch: int = 0, stage=stage, stage_number=stage_index + 1,
                active=active, recorder=recorder, val=val, start=start, depth=stage.depth) -> dict:
            """One history row of metrics.json, from the model as it is now, through its first `depth` layers."""
            val_loss, val_acc = evaluate(model, val, depth, start=start)
            layers = (layer_table(model, active, initial, recorder.gradient_stats(), probe_x, depth)
                      if diagnostics else [])
            return {"epoch": epoch, "stage": stage_number, "train_loss": train_loss, "train_acc": train_acc,
                    "val_loss": val_loss, "val_acc": val_acc, "layers": layers}

        if stage_index == 0 and resume is None:
            # epoch 0 is the whole network at init (with the first stage's head), also for a layer-wise method
            # whose first stage uses fewer layers; the same batches are drawn whatever the depth
            depth, whole = model.config.depth, model.named_linears()
            init_recorder = LayerRecorder(whole, device)
            if diagnostics:
                with init_recorder:
                    _init_gradients(model, init_recorder, data.train, method.batch_size, depth, gen)
            yield EpochUpdate(model, row(*evaluate(model, data.train, depth), active=whole, recorder=init_recorder,
                                         depth=depth), total)
        # the recorder watches the layers' outputs for the backpropagated error only while this stage trains
        with recorder if diagnostics else contextlib.nullcontext():
            for _ in range(method.epochs):
                epoch += 1
                recorder.reset()
                # the loss summed in float32 as a float32 tensor would (numpy scalars round alike, without a
                # dispatch each); predictions compared with their labels once, at the end of the epoch
                loss_sum, predictions, labels, stopped = np.float32(0), [], [], None
                for idx in torch.randperm(len(data.train), generator=gen).to(device).split(method.batch_size):
                    if should_stop is not None and should_stop():
                        return
                    x, y = train.x.index_select(0, idx), train.y.index_select(0, idx)
                    logits = model(x, stage.depth, start)
                    loss = F.cross_entropy(logits, y)
                    value = loss.item()
                    if not math.isfinite(value):
                        stopped = f"loss became {value} in epoch {epoch}; training stopped there"
                        break
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if diagnostics:
                        recorder.after_backward()
                        recorder.before_step()
                    optimizer.step()
                    if diagnostics:
                        recorder.after_step()
                    loss_sum += np.float32(value) * np.float32(len(y))
                    predictions.append(logits.argmax(1))
                    labels.append(y)
                if scheduler is not None:
                    scheduler.step()
                n = len(data.train)
                correct = int((torch.cat(predictions) == torch.cat(labels)).sum()) if predictions else 0
                record = row(float(loss_sum) / n, correct / n, epoch)
                yield EpochUpdate(model, record, total, stopped)
                if stopped:
                    return


def train_method(method: Method, data: FashionMNIST, progress: bool = False, diagnostics: bool = True,
                 device: str | torch.device = "cpu") -> tuple[DeepMLP, dict]:
    """Train to the end on `device`; return the model (eval mode, on the CPU) and the metrics.json dict."""
    from tqdm import tqdm

    history, stopped = [], None
    start = time.perf_counter()
    bar = None
    for update in train_epochs(method, data, diagnostics, device=device):
        if bar is None and progress:
            bar = tqdm(total=update.total_epochs, desc=method.name, unit="epoch", file=sys.stderr)
        history.append(update.record)
        stopped = update.stopped
        if bar is not None and update.record["epoch"] > 0:
            bar.update(1)
            bar.set_postfix(val_acc=f"{update.record['val_acc']:.3f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    model = update.model.eval()
    test_loss, test_acc = evaluate(model, on_device(data, device).test)
    model = model.cpu()
    metrics = {"method": method.name, "seed": method.seed, "config": method.hyperparameters(),
               "epochs": history[-1]["epoch"], "train_seconds": round(seconds, 2),
               "test_acc": test_acc, "test_loss": test_loss if math.isfinite(test_loss) else None,
               "stopped": stopped, "data_source": data.source, "torch_version": torch.__version__,
               "torch_threads": torch.get_num_threads(), "device": torch.device(device).type,
               "history": history}
    return model, metrics
