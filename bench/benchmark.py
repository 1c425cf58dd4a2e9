"""How fast the training loop and the app are, against the reference pipeline and the machine's own matmuls.

    python bench/benchmark.py [--quick] [--threads N] [--json PATH] [--skip-app] [--rounds N]

Compared measurements are interleaved (A, B, C, then B, C, A, ...) and reported as medians of per-round
ratios, so load from other processes on a shared machine slows both sides of a ratio alike. Every training
ratio is also given in process CPU time, which such load does not inflate at all (with --threads 1 it is the
figure to trust on a busy machine; with more threads it sums over them). Sections:

1. throughput: images/s of `baseline` in core.train.train_epochs (with and without diagnostics) against the
   reference notebooks' pipeline (torchvision FashionMNIST + ToTensor + shuffled DataLoader, batch 512) on the
   same DeepMLP, optimizer and thread count. Steady-state epochs only (epoch 0 and one warm-up epoch untimed).
   Our epochs include what train_epochs does per epoch besides training: the validation pass (and, with
   diagnostics, the per-layer statistics); the reference epoch is only its batch loop.
2. flops: matmul FLOPs per training step (torch.utils.flop_counter, checked against 2*M*N*K by hand), the
   achieved FLOP/s of our epochs, and the matmul-only throughput of exactly the mm/addmm calls autograd makes
   in one step (recorded with their shapes and strides, replayed; interleaved with the epochs). A
   torch.profiler run of one epoch says where the time beyond the matmuls goes.
3. diagnostics_overhead: per-epoch cost of recording diagnostics, from the interleaved epochs of section 1.
4. train_time: each method's epoch time (with diagnostics, as the CLI trains) x its epochs, beside the
   recorded train_seconds of checkpoints/<method>/metrics.json when present.
5. app: `python app.py` on a free loopback port: time to serve /, /compare (cold pairs, cached pairs) and
   /classify latencies through gradio_client, bounded in requests and time. The server is stopped at the end.

Writes bench/results/benchmark.json (or --json PATH) and prints a table.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.data import FILES, FashionMNIST, Split, load_fashion_mnist  # noqa: E402
from core.methods import BASELINE, METHODS, Stage  # noqa: E402
from core.models import DeepMLP  # noqa: E402
from core.train import make_optimizer, train_epochs  # noqa: E402

DEFAULT_JSON = ROOT / "bench" / "results" / "benchmark.json"
TARGETS = {"speedup_vs_reference": 5.0, "diagnostics_overhead": 0.10, "app_start_s": 15.0,
           "compare_p50_s": 1.0, "classify_p50_s": 0.2}
CLASSIFY_IMAGE = ROOT / "assets" / "examples" / "7_sneaker.png"

FULL = dict(train_limit=None, val_limit=None, warmup=1, rounds=7, method_limit=None, method_epochs=2, profile=True,
            app_cold=20, app_warm=30, app_classify=60, app_seconds=300, app_prewarm_all=True)
QUICK = dict(train_limit=2048, val_limit=1024, warmup=1, rounds=2, method_limit=1024, method_epochs=1, profile=True,
             app_cold=2, app_warm=2, app_classify=4, app_seconds=60, app_prewarm_all=False)


# ----------------------------------------------------------------------------------------------- helpers
def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": run("rev-parse", "HEAD") or None, "dirty": bool(run("status", "--porcelain", "--", "core", "app.py"))}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    model = DeepMLP(**BASELINE.model_config()).train()
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
    per_layer = [2 * batch * a * b for a, b in zip(widths[:-1], widths[1:])]
    fwd = sum(per_layer)
    return {"forward": fwd, "backward": fwd + sum(per_layer[1:]), "total": 2 * fwd + sum(per_layer[1:])}


def record_matmuls(model: DeepMLP, x: torch.Tensor, y: torch.Tensor):
    """Run one training step (as train_epochs does) and return the (op, [(shape, stride) | value], kwargs)
    of every mm/addmm autograd runs, plus FlopCounterMode's count of the same step."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

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

    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model.head(model.features(x)), y).backward()

    rec = Recorder()
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
    import core.diagnostics as diag
    import core.train as train
    from torch.profiler import record_function

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
    in_ops = sum(totals.values())
    totals["outside any op (Python, dispatch, profiler)"] = max(0.0, wall - in_ops)
    top = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[:12]
    return {"wall_s": wall, "seconds": dict(sorted(totals.items(), key=lambda kv: -kv[1])),
            "fraction": {k: v / wall for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"name": a.key, "self_s": a.self_cpu_time_total / 1e6, "calls": a.count} for a in top]}


# ------------------------------------------------------------------------------------- sections 1, 2, 3
def clocked(fn):
    """(wall seconds, CPU seconds of this process, result). CPU time does not count the time other processes
    hold the core, so it is the contention-proof cross-check; with --threads > 1 it sums over threads."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def matmul_shapes(calls, step_flops_total: int, reps: int) -> list[dict]:
    """GFLOP/s of each distinct mm/addmm call of a step (same shapes and strides), one at a time."""
    groups: dict[str, list] = {}
    for call in calls:
        func, args, _ = call
        key = str(func) + str(args)
        groups.setdefault(key, []).append(call)
    out = []
    for calls_ in groups.values():
        func, args, _ = calls_[0]
        run = make_replay(calls_[:1])
        mats = [a for a in args if isinstance(a, tuple) and len(a[0]) == 2]
        (m, k), (_, n) = mats[0][0], mats[1][0]
        flops = 2 * m * n * k
        run()
        t = min(clocked(lambda: [run() for _ in range(reps)])[0] for _ in range(5)) / reps  # min: load only adds
        out.append({"op": str(func).replace("aten.", "").replace(".default", ""),
                    "shape": f"[{m}x{k}] @ [{k}x{n}]",
                    "transposed": [a[1][0] == 1 and a[0][1] > 1 for a in mats],
                    "calls_per_step": len(calls_), "gflops": flops / t / 1e9,
                    "share_of_step_flops": flops * len(calls_) / step_flops_total})
    return out


def bench_training(cfg: dict, data, tv_root: Path) -> tuple[dict, dict, dict]:
    bs = BASELINE.batch_size
    n_train, n_val = len(data.train), len(data.val)
    gens = {
        "ours_no_diagnostics": train_epochs(BASELINE, data, diagnostics=False),
        "ours_diagnostics": train_epochs(BASELINE, data, diagnostics=True),
        "reference": reference_epochs(tv_root, cfg["train_limit"], bs),
    }
    images = {"ours_no_diagnostics": n_train, "ours_diagnostics": n_train}
    for name in ("ours_no_diagnostics", "ours_diagnostics"):
        next(gens[name])  # epoch 0: the untrained model's evaluation (and init gradients), not training

    # the matmuls of one training step, exactly as autograd issues them
    torch.manual_seed(0)
    probe_model = DeepMLP(**BASELINE.model_config()).train()
    calls, counted, by_op, fwd_counted = record_matmuls(probe_model, data.train.x[:bs], data.train.y[:bs])
    analytic = analytic_step_flops(BASELINE.model_config(), bs)
    replay = make_replay(calls)
    replay()
    mm_reps = max(3, min(n_train // bs, 120))

    def run(name):
        if name == "matmul_replay":
            return clocked(lambda: [replay() for _ in range(mm_reps)])
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
        clock["matmul_replay"] = [t / mm_reps for t in clock["matmul_replay"]]  # seconds per step
    rounds = range(cfg["rounds"])

    def speedups(clock):
        ips = {k: [images[k] / t for t in clock[k]] for k in images}
        return ips, {v: [ips[f"ours_{v}"][i] / ips["reference"][i] for i in rounds]
                     for v in ("no_diagnostics", "diagnostics")}

    ips, sp = speedups(wall)
    _, sp_cpu = speedups(cpu)
    throughput = {
        "model": "DeepMLP " + json.dumps(BASELINE.model_config()), "batch_size": bs,
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
        "ours_epoch_includes": f"training on {n_train} images, the per-epoch validation pass ({n_val} images), "
                               "and with diagnostics the per-step recorder and per-layer table",
        "how": "median over rounds of the per-round ratio of images/s (wall clock); the cpu_time figure uses "
               "process CPU time instead, which other processes on the machine do not inflate",
    }
    throughput["met"] = throughput["speedup_vs_reference"]["no_diagnostics"] >= throughput["target"]

    epoch_flops = counted / bs * n_train + fwd_counted / bs * n_val

    def fractions(clock):
        mm = [counted / t / 1e9 for t in clock["matmul_replay"]]
        achieved = {k: [epoch_flops / t / 1e9 for t in clock[k]] for k in ("ours_no_diagnostics", "ours_diagnostics")}
        return mm, achieved, {k: median([achieved[k][i] / mm[i] for i in rounds]) for k in achieved}

    mm_gflops, achieved, frac = fractions(wall)
    _, _, frac_cpu = fractions(cpu)
    flops = {
        "how": "FLOPs from torch.utils.flop_counter.FlopCounterMode on one training step (matmuls only: "
               "2*M*N*K each; the analytic count is forward 1 matmul per Linear, backward 2 except the first "
               "Linear's input gradient, which autograd skips). Epoch FLOPs = per-image training FLOPs x "
               "training images + per-image forward FLOPs x validation images. The matmul limit replays the "
               "exact mm/addmm calls (shapes and strides) of one step, interleaved with the epochs; fraction = "
               "achieved / limit per round, median.",
        "step_flops_counted": counted, "step_flops_analytic": analytic,
        "counted_matches_analytic": counted == analytic["total"],
        "step_flops_by_op": by_op, "forward_flops_per_batch": fwd_counted,
        "epoch_gflop": epoch_flops / 1e9,
        "achieved_gflops_median": {k: median(v) for k, v in achieved.items()},
        "matmul_limit_gflops_median": median(mm_gflops),
        "matmul_limit_step_seconds_median": median(wall["matmul_replay"]),
        "matmul_limit_epoch_seconds_median": median(wall["matmul_replay"]) * n_train / bs,
        "fraction_of_matmul_limit": frac,
        "fraction_of_matmul_limit_cpu_time": frac_cpu,
        "matmul_shapes": matmul_shapes(calls, counted, max(5, mm_reps // 5)),
        "large_matmul_gflops_1024": large_mm_gflops(),
    }
    if cfg["profile"]:
        log("  profiling one epoch (torch.profiler)")
        flops["profile_no_diagnostics"] = profile_epoch(data, diagnostics=False)
        flops["profile_diagnostics"] = profile_epoch(data, diagnostics=True)

    def overheads(clock):
        return [clock["ours_diagnostics"][i] / clock["ours_no_diagnostics"][i] - 1 for i in rounds]

    over, over_cpu = overheads(wall), overheads(cpu)
    overhead = {
        "epoch_seconds_median": {"without": median(wall["ours_no_diagnostics"]),
                                 "with": median(wall["ours_diagnostics"])},
        "epoch_cpu_seconds_median": {"without": median(cpu["ours_no_diagnostics"]),
                                     "with": median(cpu["ours_diagnostics"])},
        "overhead_per_round": over, "overhead_median": median(over),
        "overhead_per_round_cpu_time": over_cpu, "overhead_median_cpu_time": median(over_cpu),
        "target": TARGETS["diagnostics_overhead"],
        "met": median(over) < TARGETS["diagnostics_overhead"],
        "rounds": cfg["rounds"],
    }
    return throughput, flops, overhead


# ----------------------------------------------------------------------------------------------- section 4
def load_data(limit: int | None, val_limit: int | None) -> FashionMNIST:
    data = load_fashion_mnist(seed=BASELINE.seed, limit=limit)
    if val_limit is not None:  # --quick: a smaller validation pass per epoch too
        data = FashionMNIST(data.train, Split(data.val.x[:val_limit], data.val.y[:val_limit]), data.test, data.source)
    return data


def bench_methods(cfg: dict, data=None) -> dict:
    if data is None:
        data = load_data(cfg["method_limit"], cfg["val_limit"])
    out, total_est, total_cpu, total_rec = {}, 0.0, 0.0, 0.0
    for name, method in METHODS.items():
        log(f"  {name}")
        stages = method.stages or (Stage(method.depth),)
        epoch_times, epoch_cpu, first_epoch0 = [], [], None
        for stage in stages:
            m = replace(method, stages=(stage,)) if method.stages else method
            gen = train_epochs(m, data, diagnostics=True)
            t0 = clocked(lambda: next(gen))
            first_epoch0 = t0 if first_epoch0 is None else first_epoch0
            ts = [clocked(lambda: next(gen)) for _ in range(cfg["method_epochs"])]
            gen.close()
            epoch_times.append(median([t[0] for t in ts]))
            epoch_cpu.append(median([t[1] for t in ts]))
        estimate = first_epoch0[0] + method.epochs * sum(epoch_times)
        estimate_cpu = first_epoch0[1] + method.epochs * sum(epoch_cpu)
        rec = None
        metrics = ROOT / "checkpoints" / name / "metrics.json"
        if metrics.is_file():
            try:
                m = json.loads(metrics.read_text())
                rec = {"train_seconds": m.get("train_seconds"), "epochs": m.get("epochs"), "seed": m.get("seed"),
                       "torch_threads": m.get("torch_threads"), "limit": m.get("limit")}
            except (OSError, ValueError):
                rec = None
        out[name] = {"epochs": method.epochs * len(stages), "stages": len(method.stages),
                     "epoch_seconds": epoch_times, "epoch_cpu_seconds": epoch_cpu,
                     "epoch0_seconds": first_epoch0[0], "estimate_seconds": estimate,
                     "estimate_cpu_seconds": estimate_cpu, "recorded": rec}
        total_est += estimate
        total_cpu += estimate_cpu
        if rec and rec.get("train_seconds"):
            total_rec += rec["train_seconds"]
    # what `python -m core.train --all --jobs 2` would take: longest first onto 2 workers
    def makespan(key):
        workers = [0.0, 0.0]
        for est in sorted((v[key] for v in out.values()), reverse=True):
            workers[workers.index(min(workers))] += est
        return max(workers)
    recorded = [n for n, v in out.items() if v["recorded"] and v["recorded"].get("train_seconds")]
    return {"how": "estimate = epoch 0 + epochs x steady-state epoch time (wall; estimate_cpu: CPU time, "
                   "which load from other processes does not inflate; median of "
                   f"{cfg['method_epochs']} epoch(s), diagnostics on, as the CLI trains); layer-wise: each of its "
                   "7 stages measured on its own (depth, frozen) x 100 epochs. The full run is too long for the "
                   "benchmark, so these are estimates. recorded = checkpoints/<m>/metrics.json train_seconds "
                   "(seed 42, --all --jobs 2: one thread per job, two jobs at once).",
            "train_images": len(data.train), "full_spec_data": cfg["method_limit"] is None,
            "methods": out, "total_estimate_seconds": total_est, "total_estimate_cpu_seconds": total_cpu,
            "jobs2_makespan_estimate_seconds": makespan("estimate_seconds"),
            "jobs2_makespan_estimate_cpu_seconds": makespan("estimate_cpu_seconds"),
            "recorded_methods": recorded, "total_recorded_seconds": total_rec or None,
            "estimate_seconds_for_recorded": sum(out[n]["estimate_seconds"] for n in recorded) or None,
            "estimate_cpu_seconds_for_recorded": sum(out[n]["estimate_cpu_seconds"] for n in recorded) or None}


# ----------------------------------------------------------------------------------------------- section 5
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_app(cfg: dict) -> dict:
    from gradio_client import Client, handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("VGL_CHECKPOINTS", None)
    logf = tempfile.NamedTemporaryFile("w+", prefix="bench_app_", suffix=".log", delete=False)
    deadline = time.monotonic() + 120  # to serve /; then cfg["app_seconds"] for the requests
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=logf,
                            stderr=subprocess.STDOUT)
    result: dict = {"url": url, "truncated": False}
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}: {Path(logf.name).read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("app.py did not serve / within the time limit")
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        result["start_to_serving_s"] = time.perf_counter() - started
        deadline = time.monotonic() + cfg["app_seconds"]
        t, client = timed(lambda: Client(url, verbose=False))
        result["client_connect_s"] = t
        names = list(METHODS)
        # the app renders ("baseline", m) for every m in a thread at start; the first visitor's pair first
        first = ("baseline", "batchnorm")
        result["first_compare_s"] = timed(lambda: client.predict(*first, api_name="/compare"))[0]
        cold_pairs = [(a, b) for a in names for b in names if a != b and a != "baseline"]
        random.Random(0).shuffle(cold_pairs)
        if cfg["app_prewarm_all"]:
            # Request the pairs the app's start-up thread renders, in its order: afterwards they are cached and
            # that thread is done (or on its last pair), so it does not compete with the cold requests below.
            warm_pairs = [("baseline", m) for m in names]
            t = time.perf_counter()
            for pair in warm_pairs:
                if time.monotonic() > deadline:
                    break
                client.predict(*pair, api_name="/compare")
            result["prewarm_pass_s"] = time.perf_counter() - t
        else:  # --quick: the cold pairs, once requested, are the cached ones
            warm_pairs = cold_pairs[:cfg["app_cold"]]
        cold, warm, classify = [], [], []
        image = str(CLASSIFY_IMAGE)
        n_rounds = max(cfg["app_cold"], cfg["app_warm"], -(-cfg["app_classify"] // 2))
        for i in range(n_rounds):  # interleaved, so load on the machine hits every kind alike
            if time.monotonic() > deadline:
                result["truncated"] = True
                break
            if i < cfg["app_cold"] and i < len(cold_pairs):
                cold.append(timed(lambda: client.predict(*cold_pairs[i], api_name="/compare"))[0])
            if i < cfg["app_warm"]:
                warm.append(timed(lambda: client.predict(*warm_pairs[i % len(warm_pairs)], api_name="/compare"))[0])
            for _ in range(2):
                if len(classify) < cfg["app_classify"]:
                    classify.append(timed(lambda: client.predict(handle_file(image), "baseline", "best",
                                                                 api_name="/classify"))[0])
        with contextlib.suppress(Exception):
            client.close()

        def stats(xs):
            return {"n": len(xs), "p50_s": percentile(xs, 50), "p95_s": percentile(xs, 95),
                    "max_s": max(xs) if xs else None, "samples_s": xs}
        result.update({
            "compare_cold": stats(cold), "compare_warm": stats(warm), "classify": stats(classify),
            "how": "one gradio_client, sequential requests, interleaved cold/warm/classify; latency includes "
                   "the client's upload (classify) and download of the returned images (compare). cold = "
                   "first request for a pair the app has not rendered (not baseline-left: those the app renders "
                   "at start); warm = repeated baseline-left pairs (cached figures).",
            "app_torch_threads": "default (all cores)",
        })
        result["targets"] = {k: TARGETS[k] for k in ("app_start_s", "compare_p50_s", "classify_p50_s")}
        result["met"] = {
            "start": result["start_to_serving_s"] < TARGETS["app_start_s"],
            "compare_cold_p50": bool(cold) and percentile(cold, 50) < TARGETS["compare_p50_s"],
            "compare_warm_p50": bool(warm) and percentile(warm, 50) < TARGETS["compare_p50_s"],
            "classify_p50": bool(classify) and percentile(classify, 50) < TARGETS["classify_p50_s"],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        logf.close()
        result["server_log_tail"] = Path(logf.name).read_text()[-1500:]
        os.unlink(logf.name)
    return result


# ------------------------------------------------------------------------------------------------- report
def fmt(x, spec=".2f", unit=""):
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def table(res: dict) -> str:
    lines = []
    meta = res["meta"]
    lines.append(f"Vanishing Gradient Lab benchmark  {meta['date']}  {meta['cpu_model']} ({meta['cpu_count']} cpu), "
                 f"torch {meta['torch']}, {meta['torch_threads']} thread(s){'  [quick]' if meta['quick'] else ''}")
    lines.append(f"load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')}")
    row = "{:<46s} {:>16s} {:>12s}"
    lines.append(row.format("measure", "value", "target"))
    lines.append("-" * 76)
    th = res.get("throughput")
    if th:
        ips = th["images_per_second_median"]
        lines.append(row.format("train images/s, ours (no diagnostics)", fmt(ips["ours_no_diagnostics"], ",.0f"), ""))
        lines.append(row.format("train images/s, ours (diagnostics)", fmt(ips["ours_diagnostics"], ",.0f"), ""))
        lines.append(row.format("train images/s, reference pipeline", fmt(ips["reference"], ",.0f"), ""))
        sp, spc = th["speedup_vs_reference"], th["speedup_vs_reference_cpu_time"]
        lines.append(row.format("speedup vs reference (no diagnostics)", fmt(sp["no_diagnostics"], ".2f", "x"),
                                f">= {th['target']:.0f}x"))
        lines.append(row.format("speedup vs reference (with diagnostics)", fmt(sp["with_diagnostics"], ".2f", "x"),
                                f">= {th['target']:.0f}x"))
        lines.append(row.format("  same, in CPU time (no diag / diag)",
                                f"{spc['no_diagnostics']:.2f}x / {spc['with_diagnostics']:.2f}x", ""))
    fl = res.get("flops")
    if fl:
        lines.append(row.format("FLOPs per training step (counted)", f"{fl['step_flops_counted'] / 1e6:.1f} M",
                                "= analytic" if fl["counted_matches_analytic"] else "!= analytic"))
        lines.append(row.format("achieved GFLOP/s (no diagnostics)", fmt(fl["achieved_gflops_median"]["ours_no_diagnostics"], ".1f"), ""))
        lines.append(row.format("matmul limit GFLOP/s (same shapes, replayed)", fmt(fl["matmul_limit_gflops_median"], ".1f"), ""))
        lines.append(row.format("fraction of matmul limit (no diag / diag)",
                                f"{fl['fraction_of_matmul_limit']['ours_no_diagnostics']:.0%} / "
                                f"{fl['fraction_of_matmul_limit']['ours_diagnostics']:.0%}", ""))
        lines.append(row.format("  same, in CPU time (no diag / diag)",
                                f"{fl['fraction_of_matmul_limit_cpu_time']['ours_no_diagnostics']:.0%} / "
                                f"{fl['fraction_of_matmul_limit_cpu_time']['ours_diagnostics']:.0%}", ""))
        for sh in fl["matmul_shapes"]:
            lines.append(f"    {sh['op']:<6s} {sh['shape']:<22s} x{sh['calls_per_step']}  "
                         f"{'T' if any(sh['transposed']) else ' '}  {sh['gflops']:6.1f} GFLOP/s  "
                         f"{sh['share_of_step_flops']:5.1%} of step FLOPs")
        lines.append(row.format("large 1024^3 matmul GFLOP/s (context)", fmt(fl["large_matmul_gflops_1024"], ".1f"), ""))
        prof = fl.get("profile_no_diagnostics")
        if prof:
            lines.append(f"  profile of one epoch, no diagnostics ({prof['wall_s']:.2f} s under the profiler):")
            for k, v in prof["fraction"].items():
                lines.append(f"    {k:<52s} {v:6.1%}")
    ov = res.get("diagnostics_overhead")
    if ov:
        lines.append(row.format("diagnostics overhead per epoch", fmt(ov["overhead_median"] * 100, "+.1f", " %"),
                                f"< {ov['target']:.0%}"))
        lines.append(row.format("  same, in CPU time", fmt(ov["overhead_median_cpu_time"] * 100, "+.1f", " %"), ""))
    tt = res.get("train_time")
    if tt:
        lines.append(f"train time per method ({'full spec' if tt['full_spec_data'] else 'QUICK: subset, not the spec'}; "
                     f"estimate vs recorded):")
        for name, v in tt["methods"].items():
            rec = v["recorded"]["train_seconds"] if v["recorded"] else None
            lines.append(f"    {name:<14s} {v['epochs']:4d} ep {statistics.fmean(v['epoch_seconds']):5.2f} s/ep  "
                         f"est {v['estimate_seconds']:5.0f} s (cpu {v['estimate_cpu_seconds']:5.0f} s)  "
                         f"recorded {fmt(rec, '.0f', ' s')}")
        lines.append(row.format("all methods, estimate (sequential)",
                                f"{tt['total_estimate_seconds'] / 60:.1f} min", f"cpu {tt['total_estimate_cpu_seconds'] / 60:.1f}"))
        lines.append(row.format("all methods, estimate (--jobs 2)", f"{tt['jobs2_makespan_estimate_seconds'] / 60:.1f} min",
                                f"cpu {tt['jobs2_makespan_estimate_cpu_seconds'] / 60:.1f}"))
        if tt["total_recorded_seconds"]:
            lines.append(row.format(f"recorded, {len(tt['recorded_methods'])} methods (sum)",
                                    fmt(tt["total_recorded_seconds"] / 60, ".1f", " min"),
                                    f"est {tt['estimate_seconds_for_recorded'] / 60:.0f}/"
                                    f"{tt['estimate_cpu_seconds_for_recorded'] / 60:.0f}"))
    app = res.get("app")
    if app and not app.get("skipped") and not app.get("error"):
        lines.append(row.format("app: start to serving /", fmt(app["start_to_serving_s"], ".1f", " s"), "< 15 s"))
        for key, label, target in (("compare_cold", "compare, cold pair", "< 1 s"),
                                   ("compare_warm", "compare, cached pair", "< 1 s"),
                                   ("classify", "classify", "< 0.2 s")):
            s = app[key]
            lines.append(row.format(f"app: {label} p50 / p95 (n={s['n']})",
                                    f"{fmt(s['p50_s'], '.3f')} / {fmt(s['p95_s'], '.3f')} s", f"p50 {target}"))
    elif app:
        lines.append(f"app: {'skipped' if app.get('skipped') else 'ERROR ' + app.get('error', '')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/benchmark.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test, not figures")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the training measurements (default: %(default)s, as each job of "
                             "`python -m core.train --all --jobs 2`)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results (default: %(default)s)")
    parser.add_argument("--skip-app", action="store_true", help="do not launch the app")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of epochs (default: 7, --quick: 2)")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--threads and --rounds must be at least 1")
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    torch.set_num_threads(args.threads)
    import torchvision
    from importlib.metadata import PackageNotFoundError, version
    try:
        gradio_version = version("gradio")
    except PackageNotFoundError:
        gradio_version = None
    begin = time.perf_counter()
    res: dict = {"meta": {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "gradio": gradio_version, "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(), "quick": args.quick, "settings": cfg,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()], "git": git_state(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }}

    sections = res["meta"]["section_seconds"] = {}
    mark = time.perf_counter()

    def lap(name):
        nonlocal mark
        sections[name] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

    log("loading FashionMNIST")
    data = load_data(cfg["train_limit"], cfg["val_limit"])
    with tempfile.TemporaryDirectory(prefix="bench_tv_") as tmp:
        tv_root = torchvision_root(data.source, Path(tmp))
        log("throughput, FLOPs, diagnostics overhead (interleaved)")
        lap("load data")
        res["throughput"], res["flops"], res["diagnostics_overhead"] = bench_training(cfg, data, tv_root)
        lap("throughput, flops, overhead")
    log("epoch time of every method")
    res["train_time"] = bench_methods(cfg, data if cfg["method_limit"] == cfg["train_limit"] else None)
    lap("train time")
    if args.skip_app:
        res["app"] = {"skipped": True}
    else:
        log("app")
        try:
            res["app"] = bench_app(cfg)
        except Exception as e:  # a broken app is a result, not a crash of the benchmark
            res["app"] = {"error": f"{type(e).__name__}: {e}"}
        lap("app")
    res["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["meta"]["seconds"] = time.perf_counter() - begin
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(table(res))
    print(f"wrote {path}")
    return 1 if "error" in res.get("app", {}) else 0


if __name__ == "__main__":
    sys.exit(main())
