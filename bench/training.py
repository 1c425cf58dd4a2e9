"""How fast the training loop is, against the reference pipeline and the machine's own matmuls.

    python -m bench.training [--quick] [--threads N] [--rounds N] [--json PATH]

Compared measurements are interleaved (A, B, C, then B, C, A, ...) and reported as medians of per-round
ratios, so load from other processes on a shared machine slows both sides of a ratio alike. Every ratio is
also given in process CPU time, which such load does not inflate at all (with --threads 1 it is the figure to
trust on a busy machine; with more threads it sums over them). Sections:

1. throughput: images/s of `baseline` in core.train.train_epochs (with and without diagnostics) against the
   reference notebooks' pipeline (torchvision FashionMNIST + ToTensor + shuffled DataLoader, batch 512) on the
   same DeepMLP, optimizer and thread count. Steady-state epochs only (epoch 0 and one warm-up epoch untimed).
   Our epochs include what train_epochs does per epoch besides training: the validation pass (and, with
   diagnostics, the per-layer statistics); the reference epoch is only its batch loop.
2. flops: matmul FLOPs per training step (torch.utils.flop_counter, checked against 2*M*N*K by hand), the
   achieved FLOP/s of our epochs, and the matmul-only throughput of exactly the mm/addmm calls autograd makes
   in one step (recorded with their shapes and strides, replayed; interleaved with the epochs). A
   torch.profiler run of one epoch says where the time beyond the matmuls goes.
3. diagnostics_overhead: per-epoch cost of recording diagnostics, from the interleaved epochs of section 1;
   and what measuring update_ratio on every step would add over core.diagnostics' every-UPDATE_SAMPLE_EVERY
   sample (a fourth epoch kind in the same rounds, with that constant set to 1).
4. train_time: each method's epoch time (with diagnostics, as the CLI trains) x its epochs, beside the
   recorded train_seconds of checkpoints/<method>/metrics.json when present.

Writes bench/results/training.json (or --json PATH) and prints a table.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import RESULTS, ROOT, ROW, clocked, fmt, header, loadavg, log, machine_meta, timed, write_json
from core.data import FILES, FashionMNIST, Split, load_fashion_mnist
from core.methods import BASELINE, METHODS, Stage
from core.models import DeepMLP
from core.train import make_optimizer, train_epochs

TARGETS = {"speedup_vs_reference": 5.0, "diagnostics_overhead": 0.10}
FULL = dict(train_limit=None, val_limit=None, warmup=1, rounds=7, method_limit=None, method_epochs=2, profile=True)
QUICK = dict(train_limit=2048, val_limit=1024, warmup=1, rounds=2, method_limit=1024, method_epochs=1, profile=True)
OURS = ("ours_no_diagnostics", "ours_diagnostics")
EVERY_STEP = "ours_diagnostics_every_step"  # diagnostics with update_ratio measured on every step


def median(xs):
    return statistics.median(xs) if xs else None


def load_data(limit: int | None, val_limit: int | None) -> FashionMNIST:
    data = load_fashion_mnist(seed=BASELINE.seed, limit=limit)
    if val_limit is not None:  # --quick: a smaller validation pass per epoch too
        data = FashionMNIST(data.train, Split(data.val.x[:val_limit], data.val.y[:val_limit]), data.test, data.source)
    return data


# --------------------------------------------------------------------------- reference pipeline (torchvision)
def torchvision_root(source: str, tmp: Path) -> Path:
    """torchvision 0.29's FashionMNIST reads root/FashionMNIST/raw/<name> uncompressed (its _check_exists
    strips the .gz of the URLs) and downloads when they are missing; give it decompressed copies."""
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
        yield len(ds)


# ------------------------------------------------------------------------------------------ FLOPs, matmuls
def analytic_step_flops(cfg: dict, batch: int) -> dict:
    """2*M*N*K per matmul: forward one per Linear; backward a weight gradient per Linear and an input
    gradient per Linear except the first (its input, the images, needs no gradient)."""
    widths = [cfg["in_features"]] + [cfg["width"]] * cfg["depth"] + [cfg["num_classes"]]
    per_layer = [2 * batch * a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    fwd = sum(per_layer)
    return {"forward": fwd, "backward": fwd + sum(per_layer[1:]), "total": 2 * fwd + sum(per_layer[1:])}


def _matmul_recorder():
    """A dispatch mode that records (op, [(shape, stride) | value], kwargs) of every mm/addmm it sees."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default}

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in ops:
                self.calls.append((func, [(tuple(a.shape), tuple(a.stride())) if isinstance(a, torch.Tensor) else a
                                          for a in args], dict(kwargs)))
            return func(*args, **kwargs)
    return Recorder()


def record_matmuls(model: DeepMLP, x: torch.Tensor, y: torch.Tensor):
    """Run one training step (as train_epochs does) and return the mm/addmm calls autograd runs, plus
    FlopCounterMode's count of the same step (total, by op) and of a forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model.head(model.features(x)), y).backward()

    rec = _matmul_recorder()
    with rec:
        step()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    with torch.no_grad():
        fwd = FlopCounterMode(display=False)
        with fwd:
            model(x)
    model.zero_grad(set_to_none=True)
    return rec.calls, counter.get_total_flops(), by_op, fwd.get_total_flops()


def make_replay(calls):
    """Tensors with the recorded shapes and strides; calling the result runs the step's matmuls once."""
    g = torch.Generator().manual_seed(0)
    prepared = []
    for func, args, kwargs in calls:
        real = []
        for a in args:
            if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], tuple):
                shape, stride = a
                t = torch.empty_strided(shape, stride)
                t.copy_(torch.randn(shape, generator=g) * 0.1)
                real.append(t)
            else:
                real.append(a)
        prepared.append((func, real, kwargs))

    def run():
        for func, args, kwargs in prepared:
            func(*args, **kwargs)
    return run


def large_mm_gflops(n: int = 1024, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b)[0] for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def matmul_shapes(calls, step_flops_total: int, reps: int) -> list[dict]:
    """GFLOP/s of each distinct mm/addmm call of a step (same shapes and strides), one at a time."""
    groups: dict[str, list] = {}
    for call in calls:
        func, args, _ = call
        groups.setdefault(str(func) + str(args), []).append(call)
    out = []
    for calls_ in groups.values():
        func, args, _ = calls_[0]
        run = make_replay(calls_[:1])
        mats = [a for a in args if isinstance(a, tuple) and len(a[0]) == 2]
        (m, k), (_, n) = mats[0][0], mats[1][0]
        flops = 2 * m * n * k
        run()
        t = min(clocked(lambda run=run: [run() for _ in range(reps)])[0] for _ in range(5)) / reps  # load only adds
        out.append({"op": str(func).replace("aten.", "").replace(".default", ""),
                    "shape": f"[{m}x{k}] @ [{k}x{n}]",
                    "transposed": [a[1][0] == 1 and a[0][1] > 1 for a in mats],
                    "calls_per_step": len(calls_), "gflops": flops / t / 1e9,
                    "share_of_step_flops": flops * len(calls_) / step_flops_total})
    return out


# ------------------------------------------------------------------------------------------------ profile
PROFILE_CATEGORIES = [  # (category, predicate on an op name); first match wins, ancestors checked first
    ("optimizer step + zero_grad", lambda n: n.startswith("Optimizer.")),
    ("validation pass (per epoch)", lambda n: n == "bench:evaluate"),
    ("diagnostics (per step)", lambda n: n.startswith("bench:recorder")),
    ("diagnostics (per epoch table)", lambda n: n == "bench:layer_table"),
    ("matmul (mm/addmm)", lambda n: n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
    ("activation fwd/bwd", lambda n: any(k in n for k in ("sigmoid", "tanh", "relu", "threshold_backward"))),
    ("batch gather (index_select, randperm)", lambda n: n in ("aten::index_select", "aten::randperm", "aten::split",
                                                           "aten::index", "aten::narrow", "aten::slice")),
    ("loss (cross-entropy fwd/bwd)", lambda n: any(k in n for k in ("softmax", "nll_loss", "cross_entropy"))),
    ("bias grads, accumulation, copies", lambda n: n in ("aten::sum", "aten::add_", "aten::copy_", "aten::add",
                                                        "aten::mul", "aten::argmax", "aten::eq", "aten::zeros",
                                                        "aten::empty", "aten::fill_", "aten::ones_like",
                                                        "aten::detach", "aten::to", "aten::_to_copy",
                                                        "aten::isfinite", "aten::item",
                                                        "aten::_local_scalar_dense", "aten::abs",
                                                        "aten::ne", "aten::all")),
]


def _category(event) -> str:
    chain, e = [], event
    while e is not None:
        chain.append(e.name)
        e = e.cpu_parent
    for name in reversed(chain):  # outermost labelled range first (an mm inside evaluate is "validation")
        for cat, pred in PROFILE_CATEGORIES[:4]:
            if pred(name):
                return cat
    for cat, pred in PROFILE_CATEGORIES[4:]:
        if pred(event.name):
            return cat
    return "autograd engine, views, other ops"


@contextlib.contextmanager
def labelled_core():
    """Wrap core.train's per-epoch helpers in profiler ranges (in this process only; no file is changed)."""
    from torch.profiler import record_function

    import core.diagnostics as diag
    import core.train as train

    def wrap(fn, label):
        def inner(*a, **k):
            with record_function(label):
                return fn(*a, **k)
        return inner

    targets = [(train, "evaluate", "bench:evaluate"), (train, "layer_table", "bench:layer_table")] + \
        [(diag.LayerRecorder, m, f"bench:recorder.{m}") for m in ("after_backward", "before_step", "after_step")]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets if hasattr(owner, name)]
    for owner, name, label in targets:  # a helper renamed in core just goes unlabelled
        if hasattr(owner, name):
            setattr(owner, name, wrap(getattr(owner, name), label))
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def profile_epoch(data, diagnostics: bool) -> dict:
    """One steady-state epoch of our loop under torch.profiler: self CPU time per category."""
    from torch.profiler import ProfilerActivity, profile
    with labelled_core():
        gen = train_epochs(BASELINE, data, diagnostics=diagnostics)
        next(gen), next(gen)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            wall, _ = timed(lambda: next(gen))
        gen.close()
    totals: dict[str, float] = {}
    for e in prof.events():
        if e.device_type.name != "CPU":
            continue
        cat = _category(e)
        totals[cat] = totals.get(cat, 0.0) + e.self_cpu_time_total / 1e6
    totals["outside any op (Python, dispatch, profiler)"] = max(0.0, wall - sum(totals.values()))
    ordered = dict(sorted(totals.items(), key=lambda kv: -kv[1]))
    top = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[:12]
    return {"wall_s": wall, "seconds": ordered, "fraction": {k: v / wall for k, v in ordered.items()},
            "top_ops": [{"name": a.key, "self_s": a.self_cpu_time_total / 1e6, "calls": a.count} for a in top]}


# ----------------------------------------------------------------------------- sections 1, 2, 3: the rounds
@contextlib.contextmanager
def updates_every_step():
    """core.diagnostics measures update_ratio on every step instead of its sample (this process only)."""
    import core.diagnostics as diag
    saved = diag.UPDATE_SAMPLE_EVERY
    diag.UPDATE_SAMPLE_EVERY = 1
    try:
        yield saved
    finally:
        diag.UPDATE_SAMPLE_EVERY = saved


def step_matmuls(data) -> dict:
    """The matmuls of one training step, exactly as autograd issues them, counted and made replayable."""
    bs = BASELINE.batch_size
    torch.manual_seed(0)
    probe_model = DeepMLP(BASELINE.model).train()
    calls, counted, by_op, fwd_counted = record_matmuls(probe_model, data.train.x[:bs], data.train.y[:bs])
    replay = make_replay(calls)
    replay()
    return {"calls": calls, "counted": counted, "by_op": by_op, "forward": fwd_counted, "replay": replay,
            "analytic": analytic_step_flops(BASELINE.model.to_dict(), bs),
            "reps": max(3, min(len(data.train) // bs, 120))}


def interleaved_rounds(cfg: dict, data, tv_root: Path, mm: dict) -> tuple[dict, dict, dict]:
    """Epochs of every kind, and the replayed step matmuls, in rotating order: (wall, cpu, images/epoch)."""
    gens = {name: train_epochs(BASELINE, data, diagnostics=name != "ours_no_diagnostics")
            for name in (*OURS, EVERY_STEP)}
    gens["reference"] = reference_epochs(tv_root, cfg["train_limit"], BASELINE.batch_size)
    images = {name: len(data.train) for name in OURS}
    for name in (*OURS, EVERY_STEP):
        next(gens[name])  # epoch 0: the untrained model's evaluation (and init gradients), not training

    def run(name):
        if name == "matmul_replay":
            return clocked(lambda: [mm["replay"]() for _ in range(mm["reps"])])
        with updates_every_step() if name == EVERY_STEP else contextlib.nullcontext():
            return clocked(lambda: next(gens[name]))

    order = [*gens, "matmul_replay"]
    for _ in range(cfg["warmup"]):
        for name in order:
            run(name)
    wall: dict[str, list[float]] = {k: [] for k in order}
    cpu: dict[str, list[float]] = {k: [] for k in order}
    for r in range(cfg["rounds"]):
        log(f"  round {r + 1}/{cfg['rounds']}")
        for name in order[r % len(order):] + order[:r % len(order)]:
            w, c, out = run(name)
            wall[name].append(w)
            cpu[name].append(c)
            if name == "reference":
                images[name] = out
    for gen in gens.values():
        gen.close()
    for clock in (wall, cpu):
        clock["matmul_replay"] = [t / mm["reps"] for t in clock["matmul_replay"]]  # seconds per step
    return wall, cpu, images


def throughput_section(wall: dict, cpu: dict, images: dict, data) -> dict:
    bs, rounds = BASELINE.batch_size, range(len(wall["reference"]))

    def speedups(clock):
        ips = {k: [images[k] / t for t in clock[k]] for k in images}
        return ips, {v: [ips[f"ours_{v}"][i] / ips["reference"][i] for i in rounds]
                     for v in ("no_diagnostics", "diagnostics")}

    ips, sp = speedups(wall)
    _, sp_cpu = speedups(cpu)
    out = {
        "model": "DeepMLP " + json.dumps(BASELINE.model.to_dict()), "batch_size": bs,
        "optimizer": f"{BASELINE.optimizer} lr {BASELINE.lr}",
        "images_per_epoch": images,
        "epoch_seconds": {k: wall[k] for k in images},
        "epoch_cpu_seconds": {k: cpu[k] for k in images},
        "images_per_second_median": {k: median(v) for k, v in ips.items()},
        "speedup_vs_reference": {"no_diagnostics": median(sp["no_diagnostics"]),
                                 "with_diagnostics": median(sp["diagnostics"])},
        "speedup_per_round": sp,
        "speedup_vs_reference_cpu_time": {"no_diagnostics": median(sp_cpu["no_diagnostics"]),
                                          "with_diagnostics": median(sp_cpu["diagnostics"])},
        "target": TARGETS["speedup_vs_reference"],
        "reference_pipeline": "torchvision.datasets.FashionMNIST + transforms.ToTensor() + "
                              f"DataLoader(batch_size={bs}, shuffle=True, num_workers=0); "
                              "zero_grad / CrossEntropyLoss / backward / step",
        "ours_epoch_includes": f"training on {len(data.train)} images, the per-epoch validation pass "
                               f"({len(data.val)} images), and with diagnostics the per-step recorder and "
                               "per-layer table",
        "how": "median over rounds of the per-round ratio of images/s (wall clock); the cpu_time figure uses "
               "process CPU time instead, which other processes on the machine do not inflate",
    }
    out["met"] = out["speedup_vs_reference"]["no_diagnostics"] >= out["target"]
    return out


def flops_section(cfg: dict, wall: dict, cpu: dict, mm: dict, data) -> dict:
    bs, n_train, rounds = BASELINE.batch_size, len(data.train), range(len(wall["reference"]))
    counted = mm["counted"]
    epoch_flops = counted / bs * n_train + mm["forward"] / bs * len(data.val)

    def fractions(clock):
        limit = [counted / t / 1e9 for t in clock["matmul_replay"]]
        achieved = {k: [epoch_flops / t / 1e9 for t in clock[k]] for k in OURS}
        return limit, achieved, {k: median([achieved[k][i] / limit[i] for i in rounds]) for k in achieved}

    limit, achieved, frac = fractions(wall)
    _, _, frac_cpu = fractions(cpu)
    out = {
        "how": "FLOPs from torch.utils.flop_counter.FlopCounterMode on one training step (matmuls only: "
               "2*M*N*K each; the analytic count is forward 1 matmul per Linear, backward 2 except the first "
               "Linear's input gradient, which autograd skips). Epoch FLOPs = per-image training FLOPs x "
               "training images + per-image forward FLOPs x validation images. The matmul limit replays the "
               "exact mm/addmm calls (shapes and strides) of one step, interleaved with the epochs; fraction = "
               "achieved / limit per round, median.",
        "step_flops_counted": counted, "step_flops_analytic": mm["analytic"],
        "counted_matches_analytic": counted == mm["analytic"]["total"],
        "step_flops_by_op": mm["by_op"], "forward_flops_per_batch": mm["forward"],
        "epoch_gflop": epoch_flops / 1e9,
        "achieved_gflops_median": {k: median(v) for k, v in achieved.items()},
        "matmul_limit_gflops_median": median(limit),
        "matmul_limit_step_seconds_median": median(wall["matmul_replay"]),
        "matmul_limit_epoch_seconds_median": median(wall["matmul_replay"]) * n_train / bs,
        "fraction_of_matmul_limit": frac,
        "fraction_of_matmul_limit_cpu_time": frac_cpu,
        "matmul_shapes": matmul_shapes(mm["calls"], counted, max(5, mm["reps"] // 5)),
        "large_matmul_gflops_1024": large_mm_gflops(),
    }
    if cfg["profile"]:
        log("  profiling one epoch (torch.profiler)")
        out["profile_no_diagnostics"] = profile_epoch(data, diagnostics=False)
        out["profile_diagnostics"] = profile_epoch(data, diagnostics=True)
    return out


def overhead_section(wall: dict, cpu: dict, sample_every: int) -> dict:
    rounds = range(len(wall["reference"]))

    def extra(clock, slow, fast):
        return [clock[slow][i] / clock[fast][i] - 1 for i in rounds]

    over, over_cpu = extra(wall, "ours_diagnostics", "ours_no_diagnostics"), \
        extra(cpu, "ours_diagnostics", "ours_no_diagnostics")
    every, every_cpu = extra(wall, EVERY_STEP, "ours_diagnostics"), extra(cpu, EVERY_STEP, "ours_diagnostics")
    return {
        "epoch_seconds_median": {"without": median(wall["ours_no_diagnostics"]),
                                 "with": median(wall["ours_diagnostics"]),
                                 "with_update_ratio_every_step": median(wall[EVERY_STEP])},
        "epoch_cpu_seconds_median": {"without": median(cpu["ours_no_diagnostics"]),
                                     "with": median(cpu["ours_diagnostics"]),
                                     "with_update_ratio_every_step": median(cpu[EVERY_STEP])},
        "overhead_per_round": over, "overhead_median": median(over),
        "overhead_per_round_cpu_time": over_cpu, "overhead_median_cpu_time": median(over_cpu),
        "update_sample_every": sample_every,
        "update_every_step_extra_median": median(every),
        "update_every_step_extra_median_cpu_time": median(every_cpu),
        "update_every_step_how": f"epoch time with update_ratio measured on every step over the same epoch "
                                 f"measuring every {sample_every}th step (core.diagnostics.UPDATE_SAMPLE_EVERY), "
                                 "minus 1; per round, median",
        "target": TARGETS["diagnostics_overhead"],
        "met": median(over) < TARGETS["diagnostics_overhead"],
        "rounds": len(rounds),
    }


def bench_training(cfg: dict, data, tv_root: Path) -> tuple[dict, dict, dict]:
    """Sections 1-3 from one set of interleaved rounds: (throughput, flops, diagnostics_overhead)."""
    import core.diagnostics as diag

    mm = step_matmuls(data)
    wall, cpu, images = interleaved_rounds(cfg, data, tv_root, mm)
    return (throughput_section(wall, cpu, images, data), flops_section(cfg, wall, cpu, mm, data),
            overhead_section(wall, cpu, diag.UPDATE_SAMPLE_EVERY))


# ----------------------------------------------------------------------------------- section 4: every method
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
    metrics = ROOT / "checkpoints" / name / "metrics.json"
    try:
        m = json.loads(metrics.read_text())
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
                   "stages measured on its own (depth, frozen) x its epochs. The full run is too long for the "
                   "benchmark, so these are estimates. recorded = checkpoints/<m>/metrics.json train_seconds "
                   "(seed 42, --all --jobs 2: one thread per job, two jobs at once).",
            "train_images": len(data.train), "full_spec_data": cfg["method_limit"] is None,
            "methods": out, "total_estimate_seconds": total["estimate_seconds"],
            "total_estimate_cpu_seconds": total["estimate_cpu_seconds"],
            "jobs2_makespan_estimate_seconds": makespan([v["estimate_seconds"] for v in out.values()]),
            "jobs2_makespan_estimate_cpu_seconds": makespan([v["estimate_cpu_seconds"] for v in out.values()]),
            "recorded_methods": recorded,
            "total_recorded_seconds": sum(out[n]["recorded"]["train_seconds"] for n in recorded) or None,
            "estimate_seconds_for_recorded": sum(out[n]["estimate_seconds"] for n in recorded) or None,
            "estimate_cpu_seconds_for_recorded": sum(out[n]["estimate_cpu_seconds"] for n in recorded) or None}


# ------------------------------------------------------------------------------------------------- run, report
def run(cfg: dict, sections: dict | None = None) -> dict:
    """Sections 1-4: {"throughput", "flops", "diagnostics_overhead", "train_time"}. `sections` (if given)
    receives the seconds each part took."""
    lap = _lap(sections if sections is not None else {})
    log("loading FashionMNIST")
    data = load_data(cfg["train_limit"], cfg["val_limit"])
    res = {}
    with tempfile.TemporaryDirectory(prefix="bench_tv_") as tmp:
        tv_root = torchvision_root(data.source, Path(tmp))
        lap("load data")
        log("throughput, FLOPs, diagnostics overhead (interleaved)")
        res["throughput"], res["flops"], res["diagnostics_overhead"] = bench_training(cfg, data, tv_root)
        lap("throughput, flops, overhead")
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


def throughput_rows(th: dict) -> list[str]:
    ips, sp, spc = th["images_per_second_median"], th["speedup_vs_reference"], th["speedup_vs_reference_cpu_time"]
    target = f">= {th['target']:.0f}x"
    return [ROW.format("train images/s, ours (no diagnostics)", fmt(ips["ours_no_diagnostics"], ",.0f"), ""),
            ROW.format("train images/s, ours (diagnostics)", fmt(ips["ours_diagnostics"], ",.0f"), ""),
            ROW.format("train images/s, reference pipeline", fmt(ips["reference"], ",.0f"), ""),
            ROW.format("speedup vs reference (no diagnostics)", fmt(sp["no_diagnostics"], ".2f", "x"), target),
            ROW.format("speedup vs reference (with diagnostics)", fmt(sp["with_diagnostics"], ".2f", "x"), target),
            ROW.format("  same, in CPU time (no diag / diag)",
                       f"{spc['no_diagnostics']:.2f}x / {spc['with_diagnostics']:.2f}x", "")]


def flops_rows(fl: dict) -> list[str]:
    frac, frac_cpu = fl["fraction_of_matmul_limit"], fl["fraction_of_matmul_limit_cpu_time"]
    lines = [ROW.format("FLOPs per training step (counted)", f"{fl['step_flops_counted'] / 1e6:.1f} M",
                        "= analytic" if fl["counted_matches_analytic"] else "!= analytic"),
             ROW.format("achieved GFLOP/s (no diagnostics)",
                        fmt(fl["achieved_gflops_median"]["ours_no_diagnostics"], ".1f"), ""),
             ROW.format("matmul limit GFLOP/s (same shapes, replayed)", fmt(fl["matmul_limit_gflops_median"], ".1f"),
                        ""),
             ROW.format("fraction of matmul limit (no diag / diag)",
                        f"{frac['ours_no_diagnostics']:.0%} / {frac['ours_diagnostics']:.0%}", ""),
             ROW.format("  same, in CPU time (no diag / diag)",
                        f"{frac_cpu['ours_no_diagnostics']:.0%} / {frac_cpu['ours_diagnostics']:.0%}", "")]
    for sh in fl["matmul_shapes"]:
        lines.append(f"    {sh['op']:<6s} {sh['shape']:<22s} x{sh['calls_per_step']}  "
                     f"{'T' if any(sh['transposed']) else ' '}  {sh['gflops']:6.1f} GFLOP/s  "
                     f"{sh['share_of_step_flops']:5.1%} of step FLOPs")
    lines.append(ROW.format("large 1024^3 matmul GFLOP/s (context)", fmt(fl["large_matmul_gflops_1024"], ".1f"), ""))
    prof = fl.get("profile_no_diagnostics")
    if prof:
        lines.append(f"  profile of one epoch, no diagnostics ({prof['wall_s']:.2f} s under the profiler):")
        lines += [f"    {k:<52s} {v:6.1%}" for k, v in prof["fraction"].items()]
    return lines


def overhead_rows(ov: dict) -> list[str]:
    return [ROW.format("diagnostics overhead per epoch", fmt(ov["overhead_median"] * 100, "+.1f", " %"),
                       f"< {ov['target']:.0%}"),
            ROW.format("  same, in CPU time", fmt(ov["overhead_median_cpu_time"] * 100, "+.1f", " %"), ""),
            ROW.format(f"update_ratio every step, not every {ov['update_sample_every']}th",
                       fmt(ov["update_every_step_extra_median"] * 100, "+.1f", " %"), ""),
            ROW.format("  same, in CPU time", fmt(ov["update_every_step_extra_median_cpu_time"] * 100, "+.1f", " %"),
                       "")]


def train_time_rows(tt: dict) -> list[str]:
    lines = [f"train time per method ({'full spec' if tt['full_spec_data'] else 'QUICK: subset, not the spec'}; "
             "estimate vs recorded):"]
    for name, v in tt["methods"].items():
        rec = v["recorded"]["train_seconds"] if v["recorded"] else None
        lines.append(f"    {name:<14s} {v['epochs']:4d} ep {statistics.fmean(v['epoch_seconds']):5.2f} s/ep  "
                     f"est {v['estimate_seconds']:5.0f} s (cpu {v['estimate_cpu_seconds']:5.0f} s)  "
                     f"recorded {fmt(rec, '.0f', ' s')}")
    lines.append(ROW.format("all methods, estimate (sequential)", f"{tt['total_estimate_seconds'] / 60:.1f} min",
                            f"cpu {tt['total_estimate_cpu_seconds'] / 60:.1f}"))
    lines.append(ROW.format("all methods, estimate (--jobs 2)", f"{tt['jobs2_makespan_estimate_seconds'] / 60:.1f} min",
                            f"cpu {tt['jobs2_makespan_estimate_cpu_seconds'] / 60:.1f}"))
    if tt["total_recorded_seconds"]:
        lines.append(ROW.format(f"recorded, {len(tt['recorded_methods'])} methods (sum)",
                                fmt(tt["total_recorded_seconds"] / 60, ".1f", " min"),
                                f"est {tt['estimate_seconds_for_recorded'] / 60:.0f}/"
                                f"{tt['estimate_cpu_seconds_for_recorded'] / 60:.0f}"))
    return lines


def table_rows(res: dict) -> list[str]:
    """The table lines of whichever training sections `res` holds."""
    rows = [(throughput_rows, "throughput"), (flops_rows, "flops"), (overhead_rows, "diagnostics_overhead"),
            (train_time_rows, "train_time")]
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
    parser.add_argument("--rounds", type=int, help="interleaved rounds of epochs (default: 7, --quick: 2)")


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
