"""Benchmarks of the training loop and the app. Run each from the repository root as a module:

    python -m bench.benchmark [--quick]   all of training + latency: bench/results/benchmark.json and a table
    python -m bench.training              our epoch vs its matmuls alone and the reference, diagnostics overhead,
                                          where the epoch goes, per-method epoch times
    python -m bench.latency               app start-up, /compare and /classify latencies
    python -m bench.load                  concurrent /classify clients against a launched (or running) app
    python -m bench.playground_speed      the Playground's default run, and the figures ui/playground.py uses
    python -m bench.playground_live       the default run in Chromium and through gradio_client, against the app
    python -m bench.space_build           the Space built as the Hub builds it, then /compare, /classify, a run

bench.common holds what they share with each other and with the tests (percentile, AppServer).
"""
