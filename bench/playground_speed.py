"""How long the Playground's default run takes: 10 epochs on 10,000 images (7x128 sigmoid, batch 512).

    python -m bench.playground_speed [--threads 1 2] [--epochs 10] [--train-size 10000] [--repeat 1]

Everything goes through ui.playground.stream_training, the app's code path (per-layer diagnostics,
validation accuracy on 2,000 images and test accuracy on 2,000 every epoch, all 10,000 at the end):
- train only, at each --threads count (the app uses 1: more OpenMP threads than free cores wait on
  each other);
- train + update, in turn (what the app does): after each epoch, the chart's data (ui.playground.chart,
  JSON the browser draws) and the status text, before the next epoch starts.
Then the costs ui/playground.py's design rests on: the first run's one-time start-up (what warm() pays
before the first visitor), testing on the whole test split every epoch instead of TEST_PROBE images, and what
an update cost when the server drew it with matplotlib (the gradient-flow PNG and the curves) against the
chart's data, and the largest run the bounds allow (FLOPs and an estimate of its time, against TIME_LIMIT).
Wall-clock seconds depend on what else runs on the machine; CPU seconds (this process) much less, so both
are printed, with the load average. The dataset is loaded once before timing, as the app caches it.
The run as a visitor sees it, in a browser and through gradio_client against the app: bench.playground_live.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bench.common import ROOT, clocked
from bench.training import analytic_step_flops
from core.data import FashionMNIST, Split
from core.evaluate import evaluate
from core.models import DeepMLP
from core.train import train_epochs
from ui import chart_data, figures, pages
from ui import playground as pg


def describe(s) -> str:
    return (f"{s.depth}x{s.width} {s.activation}, init N(0, {s.init_std:g}), {s.optimizer} lr {s.lr:g}, "
            f"batch {s.batch_size}, {s.epochs} epochs on {s.train_size:,} images")


class Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.wall:5.2f} s wall, {time.process_time() - self.cpu:5.2f} s CPU"


def _update(update, reference, reference_data) -> float:
    """What the app does with an update: the chart's data and the status. Returns its seconds."""
    start = time.perf_counter()
    pg.chart(update, reference_data)
    pages.playground_status(update, reference, "Baseline")
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


def in_turn(settings, reference, reference_data) -> None:
    clock, work, first = Clock(), [], None
    for update in pg.stream_training(settings):
        work.append(_update(update, reference, reference_data))
        first = first or time.perf_counter() - clock.wall
    print(f"train + update, in turn:  {clock}; first update after {first:.2f} s; updates {sum(work):.3f} s of "
          f"it, {sum(work) / len(work) * 1000:.2f} ms each ({len(work)} updates)")


# --------------------------------------------------------------------------- what ui/playground.py rests on
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


def figure_costs(update, reference, reference_data) -> None:
    """An update drawn on the server with matplotlib, as ui.figures draws Compare's PNGs (what the Playground
    sent before the browser drew its chart): the run's gradient-flow and curves layers and their bases, against
    the chart's data and its size."""
    axes = figures.shared_axes([update.metrics, reference])
    drawn = lambda kind: figures.compose(figures.decoded(figures.base(kind, axes, update.epoch)), [
        figures.cropped(figures.layer(kind, axes, m, side, update.epoch))
        for m, side in ((update.metrics, "left"), (reference, "right"))])
    flow = cpu_seconds(lambda: drawn("gradient_flow"))
    curves = cpu_seconds(lambda: drawn("curves"))
    data = cpu_seconds(lambda: pg.chart(update, reference_data), 20)
    size = len(json.dumps(pg.chart(update, reference_data))) / 1024
    print(f"an update drawn with matplotlib: gradient flow {flow:.3f} s + curves {curves:.3f} s CPU as PNGs; as "
          f"the browser chart's data: {data * 1000:.2f} ms CPU, {size:.1f} KiB of JSON (Gradio sends the change)")


def largest_run(sample_images: int = 4096) -> None:
    """The largest run PlaygroundSettings allows: its matmul FLOPs, and its time estimated from training
    steps on `sample_images` images and the per-epoch evaluations, against TIME_LIMIT."""
    s = pg.PlaygroundSettings(**{k: pg.POLICY[k].hi for k in ("depth", "width", "epochs", "train_size")})
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
    parser.add_argument("--skip-largest", action="store_true", help="do not estimate the largest run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads[0])
    settings = pg.PlaygroundSettings(epochs=args.epochs, train_size=args.train_size)
    reference = json.loads((ROOT / "checkpoints" / "baseline" / "metrics.json").read_text())
    reference_data = chart_data.method_data("baseline", "Baseline", reference)
    clock = Clock()
    _, note = pg.playground_data(settings.train_size, settings.seed)
    print(f"torch {torch.__version__}, thread counts {args.threads}, {os.cpu_count()} CPUs")
    print(f"data loaded (decoded) once in {clock}: {note}")
    print(f"run: {describe(settings)}")
    clock = Clock()
    pg.warm()
    print(f"first tiny run, torch's one-time start-up of training (what pg.warm() pays at app start): {clock}")
    for _ in range(args.repeat):
        print(f"load average before: {os.getloadavg()[0]:.2f} (runnable processes on {os.cpu_count()} CPUs)")
        for threads in args.threads:
            torch.set_num_threads(threads)
            last = train_only(settings)
        torch.set_num_threads(args.threads[0])
        in_turn(settings, reference, reference_data)
    test_split_cost(settings)
    figure_costs(last, reference, reference_data)
    if not args.skip_largest:
        largest_run()


if __name__ == "__main__":
    main()
