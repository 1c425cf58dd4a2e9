"""How fast the app answers: `python app.py` (bench.common.AppServer, on a free loopback port) timed from
start to serving /, then /compare (cold pairs, cached pairs) and /classify latencies through one
gradio_client, bounded in requests and time. The server is stopped at the end. Then, in this process,
the server-side cost of an /explain request: Lab.explain_input on one torch thread, as the app runs it.

    python -m bench.latency [--quick] [--json PATH]

Writes bench/results/latency.json (or --json PATH) and prints a table.
"""
from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from pathlib import Path

from bench.common import (
    RESULTS,
    ROOT,
    ROW,
    AppServer,
    clocked,
    fmt,
    header,
    latency_stats,
    loadavg,
    log,
    machine_meta,
    percentile,
    timed,
    write_json,
)

TARGETS = {"app_start_s": 15.0, "compare_p50_s": 1.0, "classify_p50_s": 0.2}
CLASSIFY_IMAGE = ROOT / "assets" / "examples" / "7_sneaker.png"
FULL = dict(app_cold=20, app_warm=30, app_classify=60, app_seconds=300, app_prewarm_all=True, explain_reps=50)
QUICK = dict(app_cold=2, app_warm=2, app_classify=4, app_seconds=60, app_prewarm_all=False, explain_reps=3)
HOW = ("one gradio_client, sequential requests, interleaved cold/warm/classify; latency includes the client's "
       "upload (classify) and download of the returned images (compare). cold = first request for a pair the app "
       "has not rendered (not baseline-left: those the app renders at start); warm = repeated baseline-left "
       "pairs (cached figures).")


def method_names() -> list[str]:
    from core.methods import METHODS
    return list(METHODS)


def pairs(cfg: dict, client, deadline: float, result: dict) -> tuple[list, list]:
    """(cold pairs, warm pairs) for the timed requests. With app_prewarm_all, first request the pairs the
    app's start-up thread renders, in its order: afterwards they are cached and that thread is done (or on its
    last pair), so it does not compete with the cold requests. --quick: the cold pairs, once requested, are
    the cached ones."""
    names = method_names()
    cold = [(a, b) for a in names for b in names if a != b and a != "baseline"]
    random.Random(0).shuffle(cold)
    if not cfg["app_prewarm_all"]:
        return cold, cold[:cfg["app_cold"]]
    warm = [("baseline", m) for m in names]
    t = time.perf_counter()
    for pair in warm:
        if time.monotonic() > deadline:
            break
        client.predict(*pair, api_name="/compare")
    result["prewarm_pass_s"] = time.perf_counter() - t
    return cold, warm


def request_rounds(cfg: dict, client, cold_pairs: list, warm_pairs: list, deadline: float) -> dict:
    """Cold /compare, warm /compare and two /classify per round, interleaved so that load on the machine hits
    every kind alike; no request starts after `deadline`."""
    from gradio_client import handle_file

    def compare(pair) -> float:
        return timed(lambda: client.predict(*pair, api_name="/compare"))[0]

    def classify() -> float:
        image = handle_file(str(CLASSIFY_IMAGE))
        return timed(lambda: client.predict(image, "baseline", "best", api_name="/classify"))[0]

    cold, warm, classified, truncated = [], [], [], False
    for i in range(max(cfg["app_cold"], cfg["app_warm"], -(-cfg["app_classify"] // 2))):
        if time.monotonic() > deadline:
            truncated = True
            break
        if i < cfg["app_cold"] and i < len(cold_pairs):
            cold.append(compare(cold_pairs[i]))
        if i < cfg["app_warm"]:
            warm.append(compare(warm_pairs[i % len(warm_pairs)]))
        for _ in range(2):
            if len(classified) < cfg["app_classify"]:
                classified.append(classify())
    return {"truncated": truncated, "compare_cold": latency_stats(cold), "compare_warm": latency_stats(warm),
            "classify": latency_stats(classified)}


def met(result: dict) -> dict:
    def p50_under(key, target):
        samples = result[key]["samples_s"]
        return bool(samples) and percentile(samples, 50) < TARGETS[target]
    return {"start": result["start_to_serving_s"] < TARGETS["app_start_s"],
            "compare_cold_p50": p50_under("compare_cold", "compare_p50_s"),
            "compare_warm_p50": p50_under("compare_warm", "compare_p50_s"),
            "classify_p50": p50_under("classify", "classify_p50_s")}


def bench_app(cfg: dict) -> dict:
    """Start the app on the committed checkpoints and time it; raises if it does not start."""
    from gradio_client import Client

    server = AppServer(env={"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    result: dict = {"url": server.url, "start_to_serving_s": server.startup_seconds}
    try:
        deadline = time.monotonic() + cfg["app_seconds"]
        result["client_connect_s"], client = timed(lambda: Client(server.url, verbose=False))
        # the app renders ("baseline", m) for every m in a thread at start; the first visitor's pair first
        result["first_compare_s"] = timed(lambda: client.predict("baseline", "batchnorm", api_name="/compare"))[0]
        cold_pairs, warm_pairs = pairs(cfg, client, deadline, result)
        result.update(request_rounds(cfg, client, cold_pairs, warm_pairs, deadline))
        with contextlib.suppress(Exception):
            client.close()
        result.update({"how": HOW, "app_torch_threads": "app.py's own setting (VGL_TORCH_THREADS, default 1)",
                       "targets": dict(TARGETS)})
        result["met"] = met(result)
    finally:
        server.stop()
        result["server_log_tail"] = server.log_tail(1500)
    return result


def explain_in_process(reps: int = 20) -> dict:
    """Lab.explain_input (both input-gradient maps of one image, rendered) in this process on one torch thread,
    as the app runs it: the server-side share of an /explain request."""
    import torch

    from core.lab import Lab

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lab = Lab()
        x, _ = lab.model_input(str(CLASSIFY_IMAGE), "baseline", "best")
        lab.explain_input(x, "baseline", "best")
        runs = [clocked(lambda: lab.explain_input(x, "baseline", "best"))[:2] for _ in range(reps)]
    finally:
        torch.set_num_threads(threads)
    return {"n": reps, "p50_s": percentile([w for w, _ in runs], 50), "cpu_p50_s": percentile([c for _, c in runs], 50)}


def run(cfg: dict) -> dict:
    """The app section: the measurements, or {"error": ...} when the app does not start or fails."""
    log("app")
    try:
        result = bench_app(cfg)
    except Exception as e:  # a broken app is a result, not a crash of the benchmark
        return {"error": f"{type(e).__name__}: {e}"}
    try:
        result["explain_in_process"] = explain_in_process(cfg["explain_reps"])
    except Exception as e:  # core.lab changed under the benchmark: say so, keep the app figures
        result["explain_in_process"] = {"error": f"{type(e).__name__}: {e}"}
    return result


def table_rows(app: dict | None) -> list[str]:
    if not app:
        return []
    if app.get("skipped") or app.get("error"):
        return [f"app: {'skipped' if app.get('skipped') else 'ERROR ' + app.get('error', '')}"]
    lines = [ROW.format("app: start to serving /", fmt(app["start_to_serving_s"], ".1f", " s"),
                        f"< {TARGETS['app_start_s']:.0f} s")]
    for key, label, target in (("compare_cold", "compare, cold pair", TARGETS["compare_p50_s"]),
                               ("compare_warm", "compare, cached pair", TARGETS["compare_p50_s"]),
                               ("classify", "classify", TARGETS["classify_p50_s"])):
        s = app[key]
        lines.append(ROW.format(f"app: {label} p50 / p95 (n={s['n']})",
                                f"{fmt(s['p50_s'], '.3f')} / {fmt(s['p95_s'], '.3f')} s", f"p50 < {target:g} s"))
    ex = app.get("explain_in_process") or {}
    if "p50_s" in ex:
        lines.append(ROW.format("explain_input in process, 1 thread: p50 (cpu)",
                                f"{ex['p50_s'] * 1000:.1f} ({ex['cpu_p50_s'] * 1000:.1f}) ms", ""))
    elif ex:
        lines.append(f"explain_input in process: ERROR {ex['error']}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few requests: a smoke test, not figures")
    parser.add_argument("--json", default=str(RESULTS / "latency.json"), help="where to write the results "
                                                                               "(default: %(default)s)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    res = {"meta": machine_meta(args.quick, cfg)}
    res["app"] = run(cfg)
    res["meta"]["loadavg_end"] = loadavg()
    path = write_json(Path(args.json), res)
    print("\n".join(header(res["meta"], "Vanishing Gradient Lab app latency") + table_rows(res["app"])))
    print(f"wrote {path}")
    return 1 if "error" in res["app"] else 0


if __name__ == "__main__":
    sys.exit(main())
