"""The whole benchmark in one command: bench.training (our epoch against its matmuls alone and the reference
pipeline, diagnostics overhead, where the epoch goes, per-method epoch times), then bench.latency (app
start-up, /compare and /classify).

    python -m bench.benchmark [--quick] [--threads N] [--json PATH] [--skip-app] [--rounds N]

See those two modules for what each section measures and how. Writes bench/results/benchmark.json (or
--json PATH) with the sections "meta", "epoch", "breakdown", "train_time" and "app", and prints one table.
Concurrent clients: bench.load; the Playground's run: bench.playground_speed (in process) and
bench.playground_live (in a browser).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import latency, training
from bench.common import RESULTS, header, loadavg, machine_meta, write_json

DEFAULT_JSON = RESULTS / "benchmark.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmark", description=__doc__.split("\n")[0])
    training.add_arguments(parser)
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results (default: %(default)s)")
    parser.add_argument("--skip-app", action="store_true", help="do not launch the app")
    args = parser.parse_args(argv)
    cfg = training.settings(args, parser)
    app_cfg = dict(latency.QUICK if args.quick else latency.FULL)
    begin = time.perf_counter()
    res: dict = {"meta": machine_meta(args.quick, {**cfg, **app_cfg})}
    sections = res["meta"]["section_seconds"] = {}
    res.update(training.run(cfg, sections))
    if args.skip_app:
        res["app"] = {"skipped": True}
    else:
        mark = time.perf_counter()
        res["app"] = latency.run(app_cfg)
        sections["app"] = round(time.perf_counter() - mark, 1)
    res["meta"]["loadavg_end"] = loadavg()
    res["meta"]["seconds"] = time.perf_counter() - begin
    path = write_json(Path(args.json), res)
    print("\n".join(header(res["meta"], "Vanishing Gradient Lab benchmark") + training.table_rows(res)
                    + latency.table_rows(res["app"])))
    print(f"wrote {path}")
    return 1 if "error" in res["app"] else 0


if __name__ == "__main__":
    sys.exit(main())
