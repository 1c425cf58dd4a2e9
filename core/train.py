"""Train a registry method on FashionMNIST, recording per-layer diagnostics every epoch; the CLI saves checkpoints."""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .checkpoint import ROOT, save_checkpoint
from .data import DatasetError, FashionMNIST, Split, load_fashion_mnist, load_raw
from .diagnostics import LayerRecorder, layer_table
from .methods import METHODS, Method, Stage, get_method
from .models import DeepMLP

PROBE_SIZE = 1024  # validation images used to measure saturation
INIT_PROBE_BATCHES = 4  # training batches averaged for the epoch-0 gradient statistics
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class TrainingDiverged(RuntimeError):
    pass


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
    return OPTIMIZERS[method.optimizer](params, lr=method.lr, weight_decay=method.weight_decay)


def _forward(model: DeepMLP, x: torch.Tensor, depth: int) -> torch.Tensor:
    return model.head(model.features(x, depth))


@torch.no_grad()
def evaluate(model: DeepMLP, split: Split, depth: int | None = None, batch_size: int = 4096) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on a split."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(split), batch_size):
        logits = _forward(model, split.x[i:i + batch_size], depth or model.depth)
        y = split.y[i:i + batch_size]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return loss_sum / len(split), correct / len(split)


def _init_gradients(model: DeepMLP, recorder: LayerRecorder, train: Split, batch_size: int, depth: int,
                    gen: torch.Generator) -> None:
    """Gradient statistics of the untouched model on a few training batches; no update, BN stats restored."""
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    idx = torch.randperm(len(train), generator=gen)[:INIT_PROBE_BATCHES * batch_size]
    for chunk in idx.split(batch_size):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(_forward(model, train.x[chunk], depth), train.y[chunk]).backward()
        recorder.after_backward()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(buffers[k])


def train_epochs(method: Method, data: FashionMNIST, diagnostics: bool = True,
                 should_stop: Callable[[], bool] | None = None):
    """Train `method` and yield an EpochUpdate after epoch 0 (before any update) and after each epoch.

    Deterministic for method.seed: it seeds the init and the batch order (the split is fixed by whoever
    loaded `data`). Layer-wise methods run their stages back to back; epochs count across stages.
    `should_stop` is asked before every batch; once it returns True the generator ends without yielding
    the unfinished epoch (the app's Stop button must not wait for a long epoch to finish).
    """
    torch.manual_seed(method.seed)
    model = DeepMLP(**method.model_config()).train()
    gen = torch.Generator().manual_seed(method.seed)
    stages = method.stages or (Stage(method.depth),)
    total = method.epochs * len(stages)
    probe_x = data.val.x[:PROBE_SIZE]
    epoch = 0
    for stage_index, stage in enumerate(stages):
        if method.stages:  # every layer-wise stage starts with a fresh output head
            model.head = model.new_head()
        for i, linear in enumerate(model.linears):  # frozen means no gradient and not in the optimizer
            linear.requires_grad_(i >= stage.frozen)
            for p in model.norms[i].parameters():
                p.requires_grad_(i >= stage.frozen)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(method, trainable)
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=method.epochs)
                     if method.schedule == "cosine" else None)
        linears = [(n, l) for n, l in model.named_linears() if n == "output" or int(n[6:]) <= stage.depth]
        active = [(n, l) for n, l in linears if l.weight.requires_grad]
        recorder = LayerRecorder(active)
        initial = {n: l.weight.detach().clone() for n, l in model.named_linears()} if stage_index == 0 else \
            {**initial, "output": model.head.weight.detach().clone()}

        def row(train_loss, train_acc, stats):
            val_loss, val_acc = evaluate(model, data.val, stage.depth)
            layers = layer_table(model, active, initial, stats, probe_x, stage.depth) if diagnostics else []
            return {"epoch": epoch, "stage": stage_index + 1, "train_loss": train_loss, "train_acc": train_acc,
                    "val_loss": val_loss, "val_acc": val_acc, "layers": layers}

        if stage_index == 0:
            if diagnostics:
                _init_gradients(model, recorder, data.train, method.batch_size, stage.depth, gen)
            train_loss, train_acc = evaluate(model, data.train, stage.depth)
            yield EpochUpdate(model, row(train_loss, train_acc, recorder.gradient_stats()), total)
        for _ in range(method.epochs):
            epoch += 1
            recorder.reset()
            loss_sum, correct, stopped = torch.zeros(()), torch.zeros((), dtype=torch.long), None
            for idx in torch.randperm(len(data.train), generator=gen).split(method.batch_size):
                if should_stop is not None and should_stop():
                    return
                x, y = data.train.x.index_select(0, idx), data.train.y.index_select(0, idx)
                logits = _forward(model, x, stage.depth)
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    stopped = f"loss became {loss.item()} in epoch {epoch}; training stopped there"
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if diagnostics:
                    recorder.after_backward()
                    recorder.before_step()
                optimizer.step()
                if diagnostics:
                    recorder.after_step()
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
            if scheduler is not None:
                scheduler.step()
            n = len(data.train)
            record = row(loss_sum.item() / n, correct.item() / n, recorder.gradient_stats())
            yield EpochUpdate(model, record, total, stopped)
            if stopped:
                return


def train_method(method: Method, data: FashionMNIST, progress: bool = False, diagnostics: bool = True
                 ) -> tuple[DeepMLP, dict]:
    """Train to the end; return the model (eval mode) and the metrics.json dict."""
    from tqdm import tqdm

    history, stopped = [], None
    start = time.perf_counter()
    bar = None
    for update in train_epochs(method, data, diagnostics):
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
    test_loss, test_acc = evaluate(model, data.test)
    metrics = {"method": method.name, "seed": method.seed, "config": {**method.model_config(),
                                                                        **method.hyperparameters()},
               "epochs": history[-1]["epoch"], "train_seconds": round(seconds, 2),
               "test_acc": test_acc, "test_loss": test_loss if math.isfinite(test_loss) else None,
               "stopped": stopped, "data_source": data.source, "torch_version": torch.__version__,
               "torch_threads": torch.get_num_threads(),
               "history": history}
    return model, metrics


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def train_and_save(method: Method, out: Path, data_dir: str | None, limit: int | None, metrics_only: bool,
                   progress: bool = True) -> str:
    """Train one method and write its checkpoint (or only its metrics); return a one-line summary."""
    from .checkpoint import write_json
    from .evaluate import sample_accuracy

    data = load_fashion_mnist(data_dir, seed=method.seed, limit=limit)
    model, metrics = train_method(method, data, progress=progress)
    metrics["limit"] = limit
    metrics["sample_acc"] = sample_accuracy(model)
    if metrics_only:
        path = out / method.name / "seeds" / f"{method.seed}.json"
        write_json(path, metrics, compact=True)
    else:
        path = save_checkpoint(model, metrics, out / method.name)
    status = f" ({metrics['stopped']})" if metrics["stopped"] else ""
    return f"{method.name}: test_acc {metrics['test_acc']:.4f}, {metrics['train_seconds']:.0f} s{status} -> {path}"


def _worker(args) -> str:
    torch.set_num_threads(1)  # one core per job: these small matmuls scale better across processes
    return train_and_save(*args, progress=False)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr and exit code 2, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m core.train", description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="list the methods and exit")
    what.add_argument("--method", nargs="+", metavar="NAME", help="the method(s) to train (see --list)")
    what.add_argument("--all", action="store_true", help="train every method")
    parser.add_argument("--seed", type=int, help="seed for the split, init and batch order (default: the method's)")
    parser.add_argument("--epochs", type=_positive, help="epochs (per stage for layer-wise); default: the spec's")
    parser.add_argument("--limit", type=_positive, help="use only the first N training images")
    parser.add_argument("--out", default=str(ROOT), help="folder for checkpoints/<method>/ (default: %(default)s)")
    parser.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    parser.add_argument("--metrics-only", action="store_true",
                        help="write only <out>/<method>/seeds/<seed>.json (extra seeds for the results table)")
    parser.add_argument("--jobs", type=_positive, default=1, help="methods trained in parallel, one core each")
    args = parser.parse_args(argv)

    if args.list:
        for m in METHODS.values():
            print(f"{m.name:14s} {m.title}")
        return 0
    unknown = [n for n in args.method or [] if n not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError("not writable")
    except OSError as e:
        parser.error(f"cannot write to --out {out}: {e.strerror or e}")
    try:  # fail fast, before any training, when the data is missing or corrupt
        load_raw(args.data_dir)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    methods = [replace(m, **{k: v for k, v in (("seed", args.seed), ("epochs", args.epochs)) if v is not None})
               for m in (METHODS.values() if args.all else map(get_method, args.method))]
    jobs = [(m, out, args.data_dir, args.limit, args.metrics_only) for m in methods]
    start = time.perf_counter()
    if args.jobs == 1:
        for job in jobs:
            print(train_and_save(*job), flush=True)
    else:
        from concurrent.futures import ProcessPoolExecutor
        # longest first, so the last job to finish is a short one
        jobs.sort(key=lambda j: -j[0].epochs * max(1, len(j[0].stages)) * j[0].depth)
        with ProcessPoolExecutor(args.jobs) as pool:
            for line in pool.map(_worker, jobs):
                print(line, flush=True)
    if len(jobs) > 1:
        print(f"trained {len(jobs)} methods in {time.perf_counter() - start:.0f} s with --jobs {args.jobs}")
    return 0


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so a checkpoint write in progress removes its temp file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # (leading newline: the progress bar's line is still open)
        print("\ninterrupted: checkpoints already on disk are intact; the unfinished method was not saved",
              file=sys.stderr)
        sys.exit(130)
