"""How close the training loop comes to the machine's limit, its own matmuls alone, and the reference pipeline.

    python -m bench.training [--quick] [--threads N] [--rounds N] [--json PATH]

epoch: one set of interleaved rounds (A, B, D, C, then B, C, A, D, ...: load from other processes on a shared
machine hits every side alike, and each kind follows each other kind as often), each round timing
- ours: an epoch of `baseline` through core.train.train_epochs with diagnostics on, as the CLI trains it: the
  batch loop, the per-step recorder, the validation pass and the per-layer table;
- ours_no_diagnostics: the same epoch with diagnostics off (ours / it - 1 is the diagnostics overhead);
- limit: the matmuls alone, exactly the mm/addmm calls a training step makes (recorded from a real step of 512
  with their shapes and strides, replayed on tensors laid out alike) once per batch of the epoch;
- reference: the reference notebooks' pipeline (torchvision FashionMNIST + ToTensor + shuffled DataLoader,
  batch 512) on the same DeepMLP and optimizer, its batch loop only.
Figures are medians of per-round ratios, in wall clock and in process CPU time, which load from other processes
does not inflate (with --threads 1 the figure to trust on a busy machine; with more threads it sums over them).
fraction_of_limit = limit / ours: 1 would be a loop that costs nothing but its matmuls.

breakdown: where an epoch of ours goes, in CPU time. Every aten op of one epoch is recorded (shapes, strides,
dtypes) and each category's kernels replayed alone; the validation pass, the per-layer table and the per-step
calls of the recorder and the optimizer are timed in place instead; the rest is Python, dispatch, the autograd
engine and what the replay's warm caches hide.

train_time: each method's epoch time (diagnostics on) x its epochs, and the makespan of
`python -m core train --all --jobs 2` from those estimates, beside the recorded train_seconds.

Writes bench/results/training.json (or --json PATH) and prints a table.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from bench.common import RESULTS, ROOT, ROW, clocked, fmt, header, loadavg, log, machine_meta, write_json
from core.data import FILES, FashionMNIST, Split, load_fashion_mnist
from core.methods import BASELINE, METHODS, Stage
from core.models import DeepMLP
from core.train import make_optimizer, train_epochs

TARGETS = {"fraction_of_limit": 0.90, "diagnostics_overhead": 0.03, "jobs2_minutes": 12.0}
FULL = dict(train_limit=None, val_limit=None, warmup=1, rounds=8, method_limit=None, method_epochs=2)
QUICK = dict(train_limit=2048, val_limit=1024, warmup=1, rounds=4, method_limit=1024, method_epochs=1)
KINDS = ("ours", "ours_no_diagnostics", "limit", "reference")


def median(xs):
    return statistics.median(xs) if xs else None


def load_data(limit: int | None, val_limit: int | None) -> FashionMNIST:
    data = load_fashion_mnist(seed=BASELINE.seed, limit=limit)
    if val_limit is not None:  # --quick: a smaller validation pass per epoch too
        data = FashionMNIST(data.train, Split(data.val.x[:val_limit], data.val.y[:val_limit]), data.test, data.source)
    return data


# --------------------------------------------------------------------------- reference pipeline (torchvision)
def torchvision_root(source: str, tmp: Path) -> Path:
    """torchvision's FashionMNIST reads root/FashionMNIST/raw/<name> uncompressed (its _check_exists strips
    the .gz of the URLs) and downloads when they are missing; give it decompressed copies."""
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for images, labels, _ in FILES.values():
        for stem in (images, labels):
            src = Path(source) / stem
            if src.is_file():
                (raw / stem).symlink_to(src)
            else:
                with gzip.open(Path(source) / (stem + ".gz"), "rb") as f, open(raw / stem, "wb") as out:
                    shutil.copyfileobj(f, out)
    return tmp


def reference_epochs(root: Path, limit: int | None, batch_size: int):
    """The reference notebooks' loop on the same DeepMLP and optimizer; yields after each epoch."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    ds = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    if limit is not None:
        ds = Subset(ds, range(limit))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True)
    torch.manual_seed(BASELINE.seed)
    model = DeepMLP(BASELINE.model).train()
    opt = make_optimizer(BASELINE, model.parameters())
    criterion = torch.nn.CrossEntropyLoss()
    while True:
        for x, y in loader:
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
        yield


# ------------------------------------------------------------------------------- recording and replaying ops
@dataclass(frozen=True)
class Spec:
    """A tensor argument as recorded: its layout, and its values only where they matter (small integer
    tensors: indices, labels); replayed floats are arbitrary."""
    shape: tuple
    stride: tuple
    dtype: torch.dtype
    values: torch.Tensor | None = None


def _spec(a):
    if not isinstance(a, torch.Tensor):
        return a
    small_int = not a.dtype.is_floating_point and a.dtype != torch.bool and a.numel() <= 65536
    return Spec(tuple(a.shape), tuple(a.stride()), a.dtype, a.detach().clone() if small_int else None)


LABEL: list[str | None] = [None]  # the labelled part of core running now (see labelled), or None


class OpRecorder(TorchDispatchMode):
    """Records every aten op it sees as (label, op, args, kwargs), tensors as Spec."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "aten":  # not the profiler's record_function ops
            self.calls.append((LABEL[0], func, tree_map(_spec, args), tree_map(_spec, kwargs)))
        return func(*args, **kwargs)


def replayer(calls, share: bool = True):
    """A function that runs `calls` (from OpRecorder) again on tensors of the recorded layouts, and how many
    calls it left out (those that fail on such tensors). With `share`, calls of the same layouts share their
    tensors (a whole epoch fits in memory; caches are warmer than in the real run); without, each argument of
    each call is a tensor of its own, as in the real step."""
    cache: dict = {}

    def make(s):
        if not isinstance(s, Spec):
            return s
        key = (s.shape, s.stride, s.dtype, id(s.values) if share else object())
        if key not in cache:
            if s.values is not None:
                cache[key] = s.values
            else:  # one storage that the recorded strides fit (they may overlap: expanded tensors)
                size = 1 + sum((n - 1) * st for n, st in zip(s.shape, s.stride) if n > 0)
                # floats away from 0 and inf: no denormals, nothing the real run would not meet
                flat = (torch.rand(size) * 0.1 + 0.01).to(s.dtype) if s.dtype.is_floating_point else \
                    torch.zeros(size, dtype=s.dtype)
                cache[key] = flat.as_strided(s.shape, s.stride)
        return cache[key]

    prepared, skipped = [], 0
    for _, func, args, kwargs in calls:
        args, kwargs = tree_map(make, args), tree_map(make, kwargs)
        try:
            func(*args, **kwargs)
        except (RuntimeError, IndexError, ValueError, TypeError):
            skipped += 1
            continue
        prepared.append((func, args, kwargs))

    def run():
        for func, args, kwargs in prepared:
            func(*args, **kwargs)
    return run, skipped


def mm_flops(calls) -> int:
    """2*M*N*K summed over the mm/addmm calls among `calls`."""
    total = 0
    for _, func, args, _ in calls:
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            a, b = args[-2:]
            total += 2 * a.shape[0] * a.shape[1] * b.shape[1]
    return total


def analytic_step_flops(cfg: dict, batch: int) -> dict:
    """2*M*N*K per matmul: forward one per Linear; backward a weight gradient per Linear and an input
    gradient per Linear except the first (its input, the images, needs no gradient)."""
    widths = [cfg["in_features"]] + [cfg["width"]] * cfg["depth"] + [cfg["num_classes"]]
    per_layer = [2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    fwd = sum(per_layer)
    return {"forward": fwd, "backward": fwd + sum(per_layer[1:]), "total": 2 * fwd + sum(per_layer[1:])}


def step_matmuls(data: FashionMNIST) -> dict:
    """The mm/addmm calls of one training step of 512, as autograd issues them, made replayable."""
    bs = BASELINE.batch_size
    torch.manual_seed(0)
    model = DeepMLP(BASELINE.model).train()
    rec = OpRecorder()
    with rec:
        F.cross_entropy(model(data.train.x[:bs]), data.train.y[:bs]).backward()
    calls = [c for c in rec.calls if c[1] in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default)]
    replay, skipped = replayer(calls, share=False)
    return {"replay": replay, "calls": len(calls), "skipped": skipped, "flops": mm_flops(calls),
            "analytic": analytic_step_flops(BASELINE.model.to_dict(), bs)}


# -------------------------------------------------------------------------------------------- epoch rounds
def round_order(r: int) -> list[str]:
    """Round r's order of KINDS: row r of a Williams square (0, 1, n-1, 2, n-2, ... shifted by r), in which
    every kind directly follows every other kind once in n rounds (n even)."""
    n, first = len(KINDS), [0]
    for j in range(1, len(KINDS)):
        first.append((j + 1) // 2 if j % 2 else n - j // 2)
    return [KINDS[(k + r) % n] for k in first]


def interleaved_rounds(cfg: dict, data: FashionMNIST, tv_root: Path, steps: int, replay) -> tuple[dict, dict]:
    """Every kind of KINDS once per round, the rounds' orders a balanced Latin square: each kind first in as
    many rounds as any other, and right after each other kind as often (an epoch runs slower after the
    reference's, which churns the caches and the heap; a plain rotation would always put ours there)."""
    gens = {"ours": train_epochs(BASELINE, data, diagnostics=True),
            "ours_no_diagnostics": train_epochs(BASELINE, data, diagnostics=False),
            "reference": reference_epochs(tv_root, cfg["train_limit"], BASELINE.batch_size)}
    next(gens["ours"]), next(gens["ours_no_diagnostics"])  # epoch 0: the untrained model's evaluation

    def run(kind):
        if kind == "limit":
            return clocked(lambda: [replay() for _ in range(steps)])
        return clocked(lambda: next(gens[kind]))

    for _ in range(cfg["warmup"]):
        for kind in KINDS:
            run(kind)
    wall: dict[str, list[float]] = {k: [] for k in KINDS}
    cpu: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in range(cfg["rounds"]):
        log(f"  round {r + 1}/{cfg['rounds']}")
        for kind in round_order(r):
            w, c, _ = run(kind)
            wall[kind].append(w)
            cpu[kind].append(c)
    for gen in gens.values():
        gen.close()
    return wall, cpu


def epoch_section(wall: dict, cpu: dict, mm: dict, data: FashionMNIST, steps: int) -> dict:
    rounds = range(len(wall["ours"]))

    def ratio(clock, a, b):
        return median([clock[a][i] / clock[b][i] for i in rounds])

    out = {"how": "medians of per-round ratios; *_cpu: the same in process CPU time. limit = the mm/addmm calls "
                  f"of one training step of {BASELINE.batch_size} (as autograd issues them) replayed {steps} times; "
                  "ours includes the validation pass and (with diagnostics) the per-step recorder and per-layer table",
           "train_images": len(data.train), "val_images": len(data.val), "steps": steps,
           "matmul_calls_per_step": mm["calls"], "flops_per_step": mm["flops"],
           "counted_matches_analytic": mm["flops"] == mm["analytic"]["total"],
           "seconds": wall, "cpu_seconds": cpu,
           "median_seconds": {k: median(v) for k, v in wall.items()},
           "median_cpu_seconds": {k: median(v) for k, v in cpu.items()}}
    for suffix, clock in (("", wall), ("_cpu", cpu)):
        out["fraction_of_limit" + suffix] = ratio(clock, "limit", "ours")
        out["fraction_of_limit_no_diagnostics" + suffix] = ratio(clock, "limit", "ours_no_diagnostics")
        out["diagnostics_overhead" + suffix] = ratio(clock, "ours", "ours_no_diagnostics") - 1
        out["reference_over_limit" + suffix] = ratio(clock, "reference", "limit")
        out["speedup_vs_reference" + suffix] = ratio(clock, "reference", "ours")
    out["limit_gflops"] = mm["flops"] * steps / out["median_seconds"]["limit"] / 1e9
    out["targets"] = {k: TARGETS[k] for k in ("fraction_of_limit", "diagnostics_overhead")}
    out["met"] = {"fraction_of_limit": out["fraction_of_limit_cpu"] >= TARGETS["fraction_of_limit"],
                  "diagnostics_overhead": out["diagnostics_overhead_cpu"] <= TARGETS["diagnostics_overhead"]}
    return out


# ------------------------------------------------------------------------------------------------ breakdown
OP_CATEGORIES = [  # (category, aten op names without the overload, or op.overload); first match wins
    ("matmul kernels (mm, addmm)", {"mm", "addmm"}),
    ("activation kernels, fwd + bwd", {"sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "relu",
                                       "threshold_backward"}),
    ("loss kernels (log_softmax, nll_loss), fwd + bwd", {"_log_softmax", "_log_softmax_backward_data",
                                                         "nll_loss_forward", "nll_loss_backward"}),
    ("bias gradient kernels (sum over the batch)", {"sum.dim_IntList"}),
    ("batch gather kernels (index_select, randperm)", {"index_select", "randperm", "index"}),
]
OTHER_OPS = "other kernels (views, loss and accuracy sums, ...)"
REST = "the rest: Python, dispatch, autograd engine, cache misses"
# core's functions timed in place (owner, attribute, label); one renamed in core just goes unlabelled
LABELLED = [("core.train", "evaluate", "validation pass (per epoch)"),
            ("core.train", "layer_table", "diagnostics: per-layer table (per epoch)"),
            *[("core.diagnostics:LayerRecorder", m, "diagnostics: recorder (per step)")
              for m in ("after_backward", "before_step", "after_step", "_watch", "begin_step", "end_step")]]
OPTIMIZER = "optimizer step + zero_grad"


def _op_category(func) -> str:
    name = func._overloadpacket.__name__
    for category, names in OP_CATEGORIES:
        if name in names or f"{name}.{func._overloadname}" in names:
            return category
    return OTHER_OPS


@contextlib.contextmanager
def labelled(times: dict):
    """While active, core's LABELLED functions and the optimizer's step and zero_grad set LABEL and add their
    CPU time to times[label] (the outermost labelled call only). In this process only; no file is changed."""
    import importlib

    import core.train as train

    def wrap(fn, label):
        def inner(*a, **k):
            if LABEL[0] is not None:
                return fn(*a, **k)
            LABEL[0], start = label, time.process_time()
            try:
                return fn(*a, **k)
            finally:
                times[label] = times.get(label, 0.0) + time.process_time() - start
                LABEL[0] = None
        return inner

    def optimizer(method, params):
        opt = real_make_optimizer(method, params)
        opt.step, opt.zero_grad = wrap(opt.step, OPTIMIZER), wrap(opt.zero_grad, OPTIMIZER)
        return opt

    saved = []
    for where, name, label in LABELLED:
        module, _, cls = where.partition(":")
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        if hasattr(owner, name):
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, wrap(getattr(owner, name), label))
    real_make_optimizer = train.make_optimizer
    saved.append((train, "make_optimizer", real_make_optimizer))
    train.make_optimizer = optimizer
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def breakdown(data: FashionMNIST) -> dict:
    """CPU seconds of one steady-state epoch of ours (diagnostics on) by category; see the module docstring."""
    times: dict[str, float] = {}
    with labelled(times):
        gen = train_epochs(BASELINE, data, diagnostics=True)
        next(gen), next(gen)  # epoch 0 and a warm-up epoch
        rec = OpRecorder()
        with rec:
            next(gen)
        times.clear()
        _, epoch, _ = clocked(lambda: next(gen))
        gen.close()
    seconds = dict(times)
    groups: dict[str, list] = {}
    for call in rec.calls:
        if call[0] is None:  # ops inside labelled parts are timed in place with them
            groups.setdefault(_op_category(call[1]), []).append(call)
    skipped = 0
    for category, calls in groups.items():
        run, left_out = replayer(calls)
        skipped += left_out
        run()
        seconds[category] = min(clocked(run)[1] for _ in range(3))  # load only adds; CPU time, as the epoch
    seconds[REST] = epoch - sum(seconds.values())
    ordered = dict(sorted(seconds.items(), key=lambda kv: -kv[1]))
    return {"how": "CPU seconds of one epoch of baseline (diagnostics on): labelled parts of core timed in place, "
                   "the other ops' kernels recorded and replayed alone by category (warm caches); the rest is "
                   "the epoch minus both",
            "epoch_cpu_seconds": epoch, "seconds": ordered, "fraction": {k: v / epoch for k, v in ordered.items()},
            "ops_recorded": len(rec.calls), "ops_not_replayable": skipped}


# ----------------------------------------------------------------------------------- train time, every method
def method_epoch_times(method, data, epochs: int) -> dict:
    """Epoch 0 and the median steady-state epoch (wall, CPU) of each stage, with diagnostics."""
    stages = method.stages or (Stage(method.model.depth),)
    wall, cpu, first_epoch0 = [], [], None
    for stage in stages:
        m = replace(method, stages=(stage,)) if method.stages else method
        gen = train_epochs(m, data, diagnostics=True)
        t0 = clocked(lambda gen=gen: next(gen))
        first_epoch0 = first_epoch0 or t0
        ts = [clocked(lambda gen=gen: next(gen)) for _ in range(epochs)]
        gen.close()
        wall.append(median([t[0] for t in ts]))
        cpu.append(median([t[1] for t in ts]))
    return {"epochs": method.epochs * len(stages), "stages": len(method.stages),
            "epoch_seconds": wall, "epoch_cpu_seconds": cpu, "epoch0_seconds": first_epoch0[0],
            "estimate_seconds": first_epoch0[0] + method.epochs * sum(wall),
            "estimate_cpu_seconds": first_epoch0[1] + method.epochs * sum(cpu)}


def recorded_run(name: str) -> dict | None:
    """What checkpoints/<name>/metrics.json says about the run that made it (None without one)."""
    try:
        m = json.loads((ROOT / "checkpoints" / name / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return {k: m.get(k) for k in ("train_seconds", "epochs", "seed", "torch_threads", "limit")}


def makespan(estimates: list[float], workers: int = 2) -> float:
    """Longest first onto `workers` processes, as `python -m core train --all --jobs 2` schedules them."""
    loads = [0.0] * workers
    for est in sorted(estimates, reverse=True):
        loads[loads.index(min(loads))] += est
    return max(loads)


def bench_methods(cfg: dict, data=None) -> dict:
    if data is None:
        data = load_data(cfg["method_limit"], cfg["val_limit"])
    out = {}
    for name, method in METHODS.items():
        log(f"  {name}")
        out[name] = {**method_epoch_times(method, data, cfg["method_epochs"]), "recorded": recorded_run(name)}
    recorded = [n for n, v in out.items() if v["recorded"] and v["recorded"].get("train_seconds")]
    total = {key: sum(v[key] for v in out.values()) for key in ("estimate_seconds", "estimate_cpu_seconds")}
    return {"how": "estimate = epoch 0 + epochs x steady-state epoch time (wall; estimate_cpu: CPU time, "
                   "which load from other processes does not inflate; median of "
                   f"{cfg['method_epochs']} epoch(s), diagnostics on, as the CLI trains); layer-wise: each of its "
                   "stages measured on its own (depth, frozen) x its epochs. Measured one process at a time: two "
                   "jobs at once share the memory bandwidth and caches, so the --jobs 2 makespan is a lower bound. "
                   "recorded = checkpoints/<m>/metrics.json train_seconds (seed 42, --all --jobs 2).",
            "train_images": len(data.train), "full_spec_data": cfg["method_limit"] is None,
            "methods": out, "total_estimate_seconds": total["estimate_seconds"],
            "total_estimate_cpu_seconds": total["estimate_cpu_seconds"],
            "jobs2_makespan_estimate_seconds": makespan([v["estimate_seconds"] for v in out.values()]),
            "jobs2_makespan_estimate_cpu_seconds": makespan([v["estimate_cpu_seconds"] for v in out.values()]),
            "target_jobs2_minutes": TARGETS["jobs2_minutes"],
            "recorded_methods": recorded,
            "total_recorded_seconds": sum(out[n]["recorded"]["train_seconds"] for n in recorded) or None}


# ------------------------------------------------------------------------------------------------- run, report
def run(cfg: dict, sections: dict | None = None) -> dict:
    """{"epoch", "breakdown", "train_time"}; `sections` (if given) receives the seconds each part took."""
    lap = _lap(sections if sections is not None else {})
    log("loading FashionMNIST")
    data = load_data(cfg["train_limit"], cfg["val_limit"])
    steps = math.ceil(len(data.train) / BASELINE.batch_size)
    mm = step_matmuls(data)
    res = {}
    with tempfile.TemporaryDirectory(prefix="bench_tv_") as tmp:
        tv_root = torchvision_root(data.source, Path(tmp))
        lap("load data")
        log("epochs: ours, ours without diagnostics, the matmul limit, the reference (interleaved)")
        wall, cpu = interleaved_rounds(cfg, data, tv_root, steps, mm["replay"])
        res["epoch"] = epoch_section(wall, cpu, mm, data, steps)
        lap("epoch rounds")
    log("breakdown of one epoch")
    res["breakdown"] = breakdown(data)
    lap("breakdown")
    log("epoch time of every method")
    res["train_time"] = bench_methods(cfg, data if cfg["method_limit"] == cfg["train_limit"] else None)
    lap("train time")
    return res


def _lap(sections: dict):
    mark = [time.perf_counter()]

    def lap(name):
        sections[name] = round(time.perf_counter() - mark[0], 1)
        mark[0] = time.perf_counter()
    return lap


def epoch_rows(ep: dict) -> list[str]:
    s, c = ep["median_seconds"], ep["median_cpu_seconds"]
    both = lambda key, spec=".1%": f"{ep[key]:{spec}} / {ep[key + '_cpu']:{spec}}"  # noqa: E731
    return [f"epoch of {ep['train_images']:,} training images ({ep['steps']} steps), seconds wall / cpu:",
            *[ROW.format(f"  {k}", f"{s[k]:.3f} / {c[k]:.3f}", "") for k in KINDS],
            ROW.format("fraction of the matmul limit (wall / cpu)", both("fraction_of_limit"),
                       f">= {TARGETS['fraction_of_limit']:.0%}"),
            ROW.format("  same, without diagnostics", both("fraction_of_limit_no_diagnostics"), ""),
            ROW.format("diagnostics overhead per epoch (wall / cpu)", both("diagnostics_overhead", "+.1%"),
                       f"<= {TARGETS['diagnostics_overhead']:.0%}"),
            ROW.format("reference / limit (wall / cpu)", both("reference_over_limit", ".2f"), ""),
            ROW.format("speedup vs reference (wall / cpu)", both("speedup_vs_reference", ".2f"), ""),
            ROW.format("matmul FLOPs per step (= 2MNK by hand)", f"{ep['flops_per_step'] / 1e6:.1f} M",
                       "yes" if ep["counted_matches_analytic"] else "NO"),
            ROW.format("matmul limit GFLOP/s", f"{ep['limit_gflops']:.1f}", "")]


def breakdown_rows(bd: dict) -> list[str]:
    return [f"breakdown of one epoch, diagnostics on ({bd['epoch_cpu_seconds']:.3f} s cpu):",
            *[f"    {k:<58s} {bd['seconds'][k]:6.3f} s {v:6.1%}" for k, v in bd["fraction"].items()]]


def train_time_rows(tt: dict) -> list[str]:
    lines = [f"train time per method ({'full spec' if tt['full_spec_data'] else 'QUICK: subset, not the spec'}; "
             "estimate vs recorded):"]
    for name, v in tt["methods"].items():
        rec = v["recorded"]["train_seconds"] if v["recorded"] else None
        lines.append(f"    {name:<16s} {v['epochs']:4d} ep {statistics.fmean(v['epoch_seconds']):5.2f} s/ep  "
                     f"est {v['estimate_seconds']:5.0f} s (cpu {v['estimate_cpu_seconds']:5.0f} s)  "
                     f"recorded {fmt(rec, '.0f', ' s')}")
    lines.append(ROW.format("all methods, estimate (sequential)", f"{tt['total_estimate_seconds'] / 60:.1f} min",
                            f"cpu {tt['total_estimate_cpu_seconds'] / 60:.1f}"))
    lines.append(ROW.format("all methods, estimate (--jobs 2)", f"{tt['jobs2_makespan_estimate_seconds'] / 60:.1f} min",
                            f"cpu {tt['jobs2_makespan_estimate_cpu_seconds'] / 60:.1f}; "
                            f"<= {tt['target_jobs2_minutes']:.0f}"))
    if tt["total_recorded_seconds"]:
        lines.append(ROW.format(f"recorded, {len(tt['recorded_methods'])} methods (sum)",
                                fmt(tt["total_recorded_seconds"] / 60, ".1f", " min"), ""))
    return lines


def table_rows(res: dict) -> list[str]:
    """The table lines of whichever training sections `res` holds."""
    rows = [(epoch_rows, "epoch"), (breakdown_rows, "breakdown"), (train_time_rows, "train_time")]
    return [line for fn, key in rows if res.get(key) for line in fn(res[key])]


def settings(args, parser) -> dict:
    """The FULL or QUICK settings, with --rounds; sets torch's thread count from --threads."""
    if args.threads < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--threads and --rounds must be at least 1")
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    torch.set_num_threads(args.threads)
    return cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test, not figures")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the training measurements (default: %(default)s, as each job of "
                             "`python -m core train --all --jobs 2`)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of epochs (default: 8, --quick: 4; best "
                                                   "a multiple of 4, so that every order of the square runs)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--json", default=str(RESULTS / "training.json"), help="where to write the results "
                                                                                 "(default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = settings(args, parser)
    res = {"meta": machine_meta(args.quick, cfg)}
    res["meta"]["section_seconds"] = {}
    res.update(run(cfg, res["meta"]["section_seconds"]))
    res["meta"]["loadavg_end"] = loadavg()
    path = write_json(Path(args.json), res)
    print("\n".join(header(res["meta"], "Vanishing Gradient Lab training benchmark") + table_rows(res)))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
