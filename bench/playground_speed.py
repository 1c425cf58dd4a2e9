"""How long the Playground's default run takes: 10 epochs on 10,000 images (7x128 sigmoid, batch 512).

    python -m bench.playground_speed [--threads 1 2] [--epochs 10] [--train-size 10000] [--repeat 1]

Everything goes through core.playground.stream_training, the app's code path (per-layer diagnostics,
validation accuracy on 2,000 images and test accuracy on 2,000 every epoch, all 10,000 at the end):
- train only, at each --threads count (the app uses 1: more OpenMP threads than free cores wait on
  each other);
- train + draw, in turn (what the app does): after each update, the gradient-flow figure is drawn and
  rasterized to PNG (core.playground.draw) and the curve rows built, before the next epoch starts;
- train + draw, overlapped (the alternative the app does not use): training in a thread, drawing in the
  caller, so epoch k+1 trains while epoch k is drawn.
Then the costs core/playground.py's design rests on: the first run's one-time start-up (what warm() pays
before the first visitor), testing on the whole test split every epoch instead of TEST_PROBE images, drawing
the curves with matplotlib instead of sending rows, re-encoding a PIL image instead of sending the PNG file,
and the largest run the bounds allow (FLOPs and an estimate of its time, against TIME_LIMIT).
Wall-clock seconds depend on what else runs on the machine; CPU seconds (this process) much less, so both
are printed, with the load average. The dataset is loaded once before timing, as the app caches it.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import queue
import tempfile
import threading
import time

import torch

from bench.common import ROOT, clocked
from bench.training import analytic_step_flops
from core import playground as pg
from core import plots
from core.data import FashionMNIST, Split
from core.evaluate import evaluate
from core.models import DeepMLP
from core.train import train_epochs


def describe(s) -> str:
    return (f"{s.depth}x{s.width} {s.activation}, init N(0, {s.init_std:g}), {s.optimizer} lr {s.lr:g}, "
            f"batch {s.batch_size}, {s.epochs} epochs on {s.train_size:,} images")


class Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.wall:5.2f} s wall, {time.process_time() - self.cpu:5.2f} s CPU"


def _draw(update, reference, folder) -> float:
    start = time.perf_counter()
    pg.draw(update, reference, folder)
    pg.curve_rows(update, reference)
    return time.perf_counter() - start


def train_only(settings):
    """Returns the last update."""
    clock, stamps, start, last = Clock(), [], time.perf_counter(), None
    for update in pg.stream_training(settings):
        stamps.append(time.perf_counter() - start)
        last = update
    epochs = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    print(f"train only, {torch.get_num_threads()} thread(s):  {clock}; epoch 0 (init) {stamps[0]:.2f} s, then per "
          f"epoch {sum(epochs) / len(epochs):.2f} s (min {min(epochs):.2f}, max {max(epochs):.2f}); "
          f"final test acc {last.test_acc:.3f} on {last.test_images:,} images")
    return last


def in_turn(settings, reference, folder) -> None:
    clock, draws, first = Clock(), [], None
    for update in pg.stream_training(settings):
        draws.append(_draw(update, reference, folder))
        first = first or time.perf_counter() - clock.wall
    print(f"train + draw, in turn:    {clock}; first figure after {first:.2f} s; drawing "
          f"{sum(draws):.2f} s of it, {sum(draws) / len(draws):.2f} s per update ({len(draws)} updates)")


def overlapped(settings, reference, folder) -> None:
    clock, draws, updates, end = Clock(), [], queue.Queue(), object()

    def produce():
        for update in pg.stream_training(settings):
            updates.put(update)
        updates.put(end)
    threading.Thread(target=produce, daemon=True).start()
    while (update := updates.get()) is not end:
        draws.append(_draw(update, reference, folder))
    print(f"train + draw, overlapped: {clock}; drawing {sum(draws) / len(draws):.2f} s per update")


# ------------------------------------------------------------------------- what core/playground.py rests on
def cpu_seconds(fn, reps: int = 3) -> float:
    """The least CPU time of `reps` calls (load from other processes only adds)."""
    fn()
    return min(clocked(fn)[1] for _ in range(reps))


def test_split_cost(settings) -> None:
    """Per epoch: the whole test split instead of the first TEST_PROBE images."""
    data, _ = pg.playground_data(settings.train_size, settings.seed)
    model = DeepMLP(pg.to_method(settings).model)  # evaluation costs the same whatever the weights
    probe = Split(data.test.x[:pg.TEST_PROBE], data.test.y[:pg.TEST_PROBE])
    whole, part = cpu_seconds(lambda: evaluate(model, data.test)), cpu_seconds(lambda: evaluate(model, probe))
    print(f"test on all {len(data.test):,} test images each epoch instead of {len(probe):,}: "
          f"+{whole - part:.3f} s CPU per epoch")


def figure_costs(update, reference, folder) -> None:
    """Matplotlib curves vs curve rows, and re-encoding a PIL image vs sending the PNG file."""
    from PIL import Image

    curves = cpu_seconds(lambda: plots.figure_to_png(plots.training_curves_figure(update.metrics, reference)))
    rows = cpu_seconds(lambda: pg.curve_rows(update, reference))
    path = pg.draw(update, reference, folder)

    def reencode():
        image = Image.open(path)
        image.load()
        image.save(io.BytesIO(), format="PNG")
    print(f"curves drawn with matplotlib: {curves:.3f} s CPU per update; as rows for the browser: {rows * 1000:.2f} ms")
    print(f"gradient-flow figure as a PIL image (decode + re-encode) instead of its PNG file: "
          f"+{cpu_seconds(reencode):.3f} s CPU per update")


def largest_run(sample_images: int = 4096) -> None:
    """The largest run PlaygroundSettings allows: its matmul FLOPs, and its time estimated from training
    steps on `sample_images` images and the per-epoch evaluations, against TIME_LIMIT."""
    s = pg.PlaygroundSettings(depth=pg.DEPTH[1], width=pg.WIDTH[1], epochs=pg.EPOCHS[1], train_size=pg.TRAIN_SIZE[1])
    method = pg.to_method(s)
    data, _ = pg.playground_data(s.train_size, s.seed)
    train, n = data.train, min(sample_images, len(data.train))
    tiny_val = Split(data.val.x[:1], data.val.y[:1])
    sample = FashionMNIST(Split(train.x[:n], train.y[:n]), tiny_val, data.test, data.source)
    gen = train_epochs(method, sample)
    next(gen)
    seconds_per_image = clocked(lambda: next(gen))[1] / n
    gen.close()
    model = DeepMLP(method.model)
    probe = Split(data.test.x[:pg.TEST_PROBE], data.test.y[:pg.TEST_PROBE])
    per_epoch_eval = cpu_seconds(lambda: evaluate(model, data.val), 1) + cpu_seconds(lambda: evaluate(model, probe), 1)
    final_test = cpu_seconds(lambda: evaluate(model, data.test), 1)
    cfg = method.model.to_dict()
    evaluated = (len(data.val) + len(probe)) * (s.epochs + 1) + len(data.test)  # images, forward only
    flops = analytic_step_flops(cfg, len(train))["total"] * s.epochs + analytic_step_flops(cfg, evaluated)["forward"]
    estimate = seconds_per_image * len(train) * s.epochs + per_epoch_eval * (s.epochs + 1) + final_test
    print(f"largest run ({describe(s)}): {flops / 1e12:.1f} TFLOP of matmuls, about {estimate / 60:.1f} min "
          f"of CPU on one thread (from {n:,} images); TIME_LIMIT stops a run after {pg.TIME_LIMIT / 60:.0f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts for the train-only run (the app uses 1; the rest at "
                             "the first count)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-overlapped", action="store_true")
    parser.add_argument("--skip-largest", action="store_true", help="do not estimate the largest run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads[0])
    settings = pg.PlaygroundSettings(epochs=args.epochs, train_size=args.train_size)
    reference = json.loads((ROOT / "checkpoints" / "baseline" / "metrics.json").read_text())
    clock = Clock()
    _, note = pg.playground_data(settings.train_size, settings.seed)
    print(f"torch {torch.__version__}, thread counts {args.threads}, {os.cpu_count()} CPUs")
    print(f"data loaded (decoded) once in {clock}: {note}")
    print(f"run: {describe(settings)}")
    clock = Clock()
    pg.warm()
    print(f"first tiny run, torch's one-time start-up of training (what pg.warm() pays at app start): {clock}")
    with tempfile.TemporaryDirectory(prefix="playground_bench_") as folder:
        for _ in range(args.repeat):
            print(f"load average before: {os.getloadavg()[0]:.2f} (runnable processes on {os.cpu_count()} CPUs)")
            for threads in args.threads:
                torch.set_num_threads(threads)
                last = train_only(settings)
            torch.set_num_threads(args.threads[0])
            in_turn(settings, reference, folder)
            if not args.skip_overlapped:
                overlapped(settings, reference, folder)
        test_split_cost(settings)
        figure_costs(last, reference, folder)
    if not args.skip_largest:
        largest_run()


if __name__ == "__main__":
    main()
