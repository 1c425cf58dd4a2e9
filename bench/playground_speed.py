"""How long the Playground's default run takes: 10 epochs on 10,000 images (7x128 sigmoid, batch 512).

    python bench/playground_speed.py [--threads 1] [--epochs 10] [--train-size 10000] [--repeat 1]

Everything goes through core.playground.stream_training, the app's code path (per-layer diagnostics,
validation accuracy on 2,000 images and test accuracy on 2,000 every epoch, all 10,000 at the end):
- train only: the updates as fast as they come;
- train + draw, in turn (what the app does): after each update, the gradient-flow figure is drawn and
  rasterized to PNG (core.playground.draw) and the curve rows built, before the next epoch starts;
- train + draw, overlapped (the alternative the app does not use): training in a thread, drawing in the
  caller, so epoch k+1 trains while epoch k is drawn.
Wall-clock seconds depend on what else runs on the machine; CPU seconds (this process) much less, so both
are printed, with the load average. The dataset is loaded once before timing, as the app caches it.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.playground import PlaygroundSettings, curve_rows, draw, playground_data, stream_training  # noqa: E402


class Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.wall:5.2f} s wall, {time.process_time() - self.cpu:5.2f} s CPU"


def _draw(update, reference, folder) -> float:
    start = time.perf_counter()
    draw(update, reference, folder)
    curve_rows(update, reference)
    return time.perf_counter() - start


def train_only(settings) -> None:
    clock, stamps, start = Clock(), [], time.perf_counter()
    for update in stream_training(settings):
        stamps.append(time.perf_counter() - start)
    epochs = [b - a for a, b in zip(stamps, stamps[1:])]
    print(f"train only:               {clock}; epoch 0 (init) {stamps[0]:.2f} s, then per epoch "
          f"{sum(epochs) / len(epochs):.2f} s (min {min(epochs):.2f}, max {max(epochs):.2f}); "
          f"final test acc {update.test_acc:.3f} on {update.test_images:,} images")


def in_turn(settings, reference, folder) -> None:
    clock, draws, first = Clock(), [], None
    for update in stream_training(settings):
        draws.append(_draw(update, reference, folder))
        first = first or time.perf_counter() - clock.wall
    print(f"train + draw, in turn:    {clock}; first figure after {first:.2f} s; drawing "
          f"{sum(draws):.2f} s of it, {sum(draws) / len(draws):.2f} s per update ({len(draws)} updates)")


def overlapped(settings, reference, folder) -> None:
    clock, draws, updates, end = Clock(), [], queue.Queue(), object()

    def produce():
        for update in stream_training(settings):
            updates.put(update)
        updates.put(end)
    threading.Thread(target=produce, daemon=True).start()
    while (update := updates.get()) is not end:
        draws.append(_draw(update, reference, folder))
    print(f"train + draw, overlapped: {clock}; drawing {sum(draws) / len(draws):.2f} s per update")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app uses 1)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-overlapped", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = PlaygroundSettings(epochs=args.epochs, train_size=args.train_size)
    reference = json.loads((ROOT / "checkpoints" / "baseline" / "metrics.json").read_text())
    clock = Clock()
    _, note = playground_data(settings.train_size, settings.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs")
    print(f"data loaded once in {clock}: {note}")
    print(f"run: {settings.describe()}")
    with tempfile.TemporaryDirectory(prefix="playground_bench_") as folder:
        for _ in range(args.repeat):
            print(f"load average before: {os.getloadavg()[0]:.2f} (runnable processes on {os.cpu_count()} CPUs)")
            train_only(settings)
            in_turn(settings, reference, folder)
            if not args.skip_overlapped:
                overlapped(settings, reference, folder)


if __name__ == "__main__":
    main()
