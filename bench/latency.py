"""How fast the app answers: `python app.py` (bench.common.AppServer, on a free loopback port) timed from
start to serving /, the first /compare right after (while the app's start-up work still runs), then, once
the app says its start-up work is done, /compare (never-seen pairs, seen pairs) and /classify latencies through
one gradio_client, bounded in requests and time; and, in Chromium when it is installed, the Compare chart's
redraw on the epoch slider and the statistic selector (in the browser: no request). The server is stopped at
the end. Then, in this process, the server-side cost of an /explain request: ui.classify.explain on one torch
thread, as the app runs it.

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

TARGETS = {"app_start_s": 5.0, "first_compare_s": 0.3, "early_compare_s": 0.3, "compare_p95_s": 0.2,
           "slider_p95_s": 0.2, "pair_change_s": 0.3, "classify_p50_s": 0.2}  # issue 21
CHROMIUM = "/usr/bin/chromium"
CLASSIFY_IMAGE = ROOT / "assets" / "examples" / "7_sneaker.png"
FULL = dict(app_cold=20, app_warm=30, app_classify=60, app_seconds=300, app_prewarm_all=True, explain_reps=50,
            browser_redraws=60, app_early=6, pair_changes=10)
QUICK = dict(app_cold=2, app_warm=2, app_classify=4, app_seconds=60, app_prewarm_all=False, explain_reps=3,
             browser_redraws=5, app_early=2, pair_changes=2)
EARLY_PAIRS = [("tanh", "adam"), ("layerwise", "relu"), ("skip", "weight_std_10"), ("best", "layerwise_6"),
               ("custom_norm", "grad_norm"), ("weight_std_1", "baseline_3")]  # never requested before, no baseline
HOW = ("one gradio_client, sequential requests, interleaved cold/warm/classify; latency includes the client's "
       "upload (classify); compare: the answer alone (cards, image URLs, chart data: a client with "
       "download_files=False), and through gradio_client's default, which also downloads the 5 images before it "
       "returns (another never-seen pair for that one). first = the default pair (answer, then +dl: the same pair "
       "again) "
       "right after the app serves, its start-up work still running; early = never-seen pairs right after that, "
       "with downloads, before the start-up work is done (when it still runs); then the bench waits for the app's "
       "'ready' log line; cold = first request for a pair never requested before (random, not baseline-left); "
       "warm = repeated requests of baseline-left pairs, each requested before. slider / statistic = the chart's "
       "redraw in Chromium (synchronous DOM update + layout), phone viewport; no server request.")


def method_names() -> list[str]:
    from core.methods import METHODS
    return list(METHODS)


def pairs(cfg: dict, client, deadline: float, result: dict) -> tuple[list, list]:
    """(cold pairs, warm pairs) for the timed requests. With app_prewarm_all, first request the pairs the
    app's start-up thread renders, in its order: afterwards they are cached and that thread is done (or on its
    last pair), so it does not compete with the cold requests. --quick: the cold pairs, once requested, are
    the cached ones."""
    names = method_names()
    cold = [(a, b) for a in names for b in names if a != b and a != "baseline" and (a, b) not in EARLY_PAIRS]
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


def request_rounds(cfg: dict, client, answers, cold_pairs: list, warm_pairs: list, deadline: float) -> dict:
    """Cold /compare, warm /compare and two /classify per round, interleaved so that load on the machine hits
    every kind alike; no request starts after `deadline`. Each round times /compare through both clients:
    `client` (gradio_client's default: it downloads the five images into its own folder before it returns),
    and `answers` (download_files=False: the answer alone, image URLs and chart data), each on a pair of its
    own when the pair must be a never-seen one."""
    from gradio_client import handle_file

    def compare(pair) -> tuple[float, float]:
        """(the answer alone, with gradio_client's downloads) for a seen pair, requested twice."""
        return (timed(lambda: answers.predict(*pair, api_name="/compare"))[0],
                timed(lambda: client.predict(*pair, api_name="/compare"))[0])

    def compare_new(first, second) -> tuple[float, float]:
        """The same for never-seen pairs: the answer alone for `first`, with downloads for `second`."""
        return (timed(lambda: answers.predict(*first, api_name="/compare"))[0],
                timed(lambda: client.predict(*second, api_name="/compare"))[0])

    def classify() -> float:
        image = handle_file(str(CLASSIFY_IMAGE))
        return timed(lambda: client.predict(image, "baseline", "best", api_name="/classify"))[0]

    cold, warm, classified, truncated = [], [], [], False
    for i in range(max(cfg["app_cold"], cfg["app_warm"], -(-cfg["app_classify"] // 2))):
        if time.monotonic() > deadline:
            truncated = True
            break
        if i < cfg["app_cold"] and 2 * i + 1 < len(cold_pairs):
            cold.append(compare_new(cold_pairs[2 * i], cold_pairs[2 * i + 1]))
        if i < cfg["app_warm"]:
            warm.append(compare(warm_pairs[i % len(warm_pairs)]))
        for _ in range(2):
            if len(classified) < cfg["app_classify"]:
                classified.append(classify())
    return {"truncated": truncated,
            "compare_cold": latency_stats([t for _, t in cold]), "compare_warm": latency_stats([t for _, t in warm]),
            "compare_cold_answer": latency_stats([a for a, _ in cold]),
            "compare_warm_answer": latency_stats([a for a, _ in warm]),
            "classify": latency_stats(classified)}


def met(result: dict) -> dict:
    def under(key, q, target):
        samples = result[key]["samples_s"]
        return bool(samples) and percentile(samples, q) < TARGETS[target]
    browser = result.get("browser") or {}
    return {"start": result["start_to_serving_s"] < TARGETS["app_start_s"],
            "first_compare": result["first_compare_answer_s"] < TARGETS["first_compare_s"],
            "early_compare_max": bool(result.get("early_compare")) and
            max(result["early_compare"]["samples_s"]) < TARGETS["early_compare_s"],
            "compare_cold_p95_with_downloads": under("compare_cold", 95, "compare_p95_s"),
            "compare_warm_p95_with_downloads": under("compare_warm", 95, "compare_p95_s"),
            "pair_change_max": bool(browser.get("pair_change")) and
            browser["pair_change"]["max_s"] < TARGETS["pair_change_s"],
            "slider_p95": bool(browser.get("slider")) and browser["slider"]["p95_s"] < TARGETS["slider_p95_s"]
            and browser.get("requests") == 0,
            "classify_p50": under("classify", 50, "classify_p50_s")}


def warm(server: AppServer) -> bool:
    """Whether the app's log says its start-up work is done: every pair instant (ui.compare.WARM_DONE)."""
    from ui.compare import WARM_DONE  # imported by bench_app before the app starts: no cost here
    return WARM_DONE in server.log_tail(1_000_000)


def wait_until_warm(server: AppServer, deadline: float) -> float | None:
    """Seconds from the app's start to its start-up work done (as seen by polling its log every 0.2 s); None
    if not done before `deadline`."""
    while time.monotonic() < deadline:
        if warm(server):
            return time.perf_counter() - server.started
        time.sleep(0.2)
    return None


# In the page: n redraws of the chart at random epochs (the slider's input event), then of each statistic,
# each timed from the event to the end of the synchronous redraw and layout.
REDRAWS = """async n => {
  const root = document.querySelector('#diagnostics .vgl'), slider = root.querySelector('.vgl-epoch');
  const timed = f => { const t = performance.now(); f(); void root.offsetHeight; return performance.now() - t; };
  const slide = [], stats = [];
  for (let i = 0; i < n; i++) {
    const e = Math.floor(Math.random() * (+slider.max + 1));
    slide.push(timed(() => { slider.value = e; slider.dispatchEvent(new Event('input', {bubbles: true})); }));
    await new Promise(r => requestAnimationFrame(r));
  }
  for (let i = 0; i < n; i++) {
    const buttons = root.querySelectorAll('.vgl-stats button');
    stats.push(timed(() => buttons[i % buttons.length].click()));
    await new Promise(r => requestAnimationFrame(r));
  }
  return [slide, stats];
}"""


# In the page: the time of the press on a picker's option, then (polled every frame) the time the chart shows the
# new method: both by the page's own clock, so the driver's own overhead in clicking is not counted.
CLICKED = """() => { window.__clicked = null; document.addEventListener('pointerdown', e => {
  if (e.target.closest('[role=option]')) window.__clicked = performance.now(); }, {capture: true, once: true}); }"""
DRAWN = """t => { const h = document.querySelector('#diagnostics .vgl-panel[data-side=right] .vgl-title');
  const done = h && h.textContent.trim() === t && window.__clicked !== null;
  return done ? performance.now() - window.__clicked : false; }"""


def pair_changes(page, n: int) -> list[float]:
    """Seconds from the click on a right method in its picker to the chart drawn for the new pair (the page's
    clock), n times, alternating a layer-wise method (700 or 600 epochs: the largest chart data) and a
    100-epoch one."""
    from core.methods import METHODS
    names = ["layerwise", "relu", "layerwise_6", "tanh"]
    out = []
    for i in range(n):
        title = METHODS[names[i % len(names)]].title
        page.get_by_label("Right method").click()
        option = page.get_by_role("option", name=title, exact=True)
        option.wait_for()
        page.evaluate(CLICKED)
        option.click()
        out.append(page.wait_for_function(DRAWN, arg=title, timeout=30_000).json_value() / 1000)
    return out


def browser_redraws(url: str, n: int, changes: int = 0) -> dict:
    """The Compare chart's redraws in Chromium at a phone viewport and the requests they sent (none); then, at
    a desktop viewport, `changes` pair changes (pair_changes), each timed to the chart drawn."""
    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} is not installed"}
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(url)
            page.wait_for_selector("#diagnostics .vgl.vgl-ready", timeout=60_000)
            requests = []
            page.on("request", lambda r: r.url.startswith(url) and requests.append(r.url))
            slide, stats = page.evaluate(REDRAWS, n)
            sent = len(requests)
            page.set_viewport_size({"width": 1280, "height": 800})
            changed = pair_changes(page, changes)
        finally:
            browser.close()
    return {"slider": latency_stats([t / 1000 for t in slide]), "statistic": latency_stats([t / 1000 for t in stats]),
            "requests": sent, "pair_change": latency_stats(changed) if changed else None}


def bench_app(cfg: dict) -> dict:
    """Start the app on the committed checkpoints and time it; raises if it does not start."""
    from gradio_client import Client

    from ui.compare import DEFAULT_PAIR  # (torch and all: imported now, not while the app is timed)

    server = AppServer(env={"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    result: dict = {"url": server.url, "start_to_serving_s": server.startup_seconds}
    try:
        deadline = time.monotonic() + cfg["app_seconds"]
        result["client_connect_s"], client = timed(lambda: Client(server.url, verbose=False))
        answers = Client(server.url, verbose=False, download_files=False)
        # the app makes every method's parts in a thread at start, the first visitor's pair first
        result["first_compare_answer_s"] = timed(lambda: answers.predict(*DEFAULT_PAIR, api_name="/compare"))[0]
        result["first_compare_s"] = timed(lambda: client.predict(*DEFAULT_PAIR, api_name="/compare"))[0]
        result["first_compare_while_warming"] = not warm(server)
        early = [timed(lambda p=pair: client.predict(*p, api_name="/compare"))[0]
                 for pair in EARLY_PAIRS[:cfg["app_early"]]]
        result["early_compare"] = latency_stats(early)
        result["early_compare_while_warming"] = not warm(server)
        result["warm_after_start_s"] = wait_until_warm(server, deadline)
        cold_pairs, warm_pairs = pairs(cfg, client, deadline, result)
        result.update(request_rounds(cfg, client, answers, cold_pairs, warm_pairs, deadline))
        for c in (client, answers):
            with contextlib.suppress(Exception):
                c.close()
        try:
            result["browser"] = browser_redraws(server.url, cfg["browser_redraws"], cfg["pair_changes"])
        except Exception as e:  # no Playwright, or a page that broke: say so, keep the other figures
            result["browser"] = {"error": f"{type(e).__name__}: {e}"}
        result.update({"how": HOW, "app_torch_threads": "app.py's own setting (VGL_TORCH_THREADS, default 1)",
                       "targets": dict(TARGETS)})
        result["met"] = met(result)
    finally:
        server.stop()
        result["server_log_tail"] = server.log_tail(1500)
    return result


def explain_in_process(reps: int = 20) -> dict:
    """ui.classify.explain (both input-gradient maps of one image, rendered) in this process on one torch thread,
    as the app runs it: the server-side share of an /explain request."""
    import torch

    from ui import classify
    from ui.lab import Lab

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reading = classify.read(Lab(), str(CLASSIFY_IMAGE), "baseline", "best")
        classify.explain(reading)
        runs = [clocked(lambda: classify.explain(reading))[:2] for _ in range(reps)]
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
    except Exception as e:  # ui.classify changed under the benchmark: say so, keep the app figures
        result["explain_in_process"] = {"error": f"{type(e).__name__}: {e}"}
    return result


def table_rows(app: dict | None) -> list[str]:
    if not app:
        return []
    if app.get("skipped") or app.get("error"):
        return [f"app: {'skipped' if app.get('skipped') else 'ERROR ' + app.get('error', '')}"]
    lines = [ROW.format("app: start to serving /", fmt(app["start_to_serving_s"], ".1f", " s"),
                        f"< {TARGETS['app_start_s']:.0f} s"),
             ROW.format("app: first compare" + (", start-up work running" if app.get("first_compare_while_warming")
                                                else "") + ": answer / +dl",
                        f"{fmt(app['first_compare_answer_s'], '.3f')} / {fmt(app['first_compare_s'], '.3f')} s",
                        f"< {TARGETS['first_compare_s']:g} s"),
             ROW.format("app: start-up work done (start to ready)", fmt(app.get("warm_after_start_s"), ".1f", " s"),
                        "")]
    if app.get("early_compare"):
        s = app["early_compare"]
        lines.insert(2, ROW.format("app: never-seen pairs right after" +
                                   (", start-up work running" if app.get("early_compare_while_warming") else "") +
                                   f", +dl: p50 / max (n={s['n']})",
                                   f"{fmt(s['p50_s'], '.3f')} / {fmt(s['max_s'], '.3f')} s",
                                   f"< {TARGETS['early_compare_s']:g} s"))
    compare_target = f"p95 < {TARGETS['compare_p95_s']:g} s"
    for key, label, target in (("compare_cold_answer", "compare, never-seen pair: answer", ""),
                               ("compare_cold", "  with gradio_client's image downloads", compare_target),
                               ("compare_warm_answer", "compare, seen pair: answer", ""),
                               ("compare_warm", "  with gradio_client's image downloads", compare_target),
                               ("classify", "classify", f"p50 < {TARGETS['classify_p50_s']:g} s")):
        s = app[key]
        lines.append(ROW.format(f"app: {label} p50 / p95 (n={s['n']})",
                                f"{fmt(s['p50_s'], '.3f')} / {fmt(s['p95_s'], '.3f')} s", target))
    browser = app.get("browser") or {}
    for key, label in (("slider", "epoch slider redraw (browser)"), ("statistic", "statistic switch (browser)")):
        if key in browser:
            s = browser[key]
            lines.append(ROW.format(f"app: {label} p50 / p95 (n={s['n']})",
                                    f"{fmt(s['p50_s'] * 1000, '.1f')} / {fmt(s['p95_s'] * 1000, '.1f')} ms",
                                    f"p95 < {TARGETS['slider_p95_s'] * 1000:g} ms"))
    if "requests" in browser:
        lines.append(ROW.format("app: requests sent by those redraws", str(browser["requests"]), "0"))
    if browser.get("pair_change"):
        s = browser["pair_change"]
        lines.append(ROW.format(f"app: pair change to chart drawn (browser, layer-wise half) p50 / max (n={s['n']})",
                                f"{fmt(s['p50_s'], '.3f')} / {fmt(s['max_s'], '.3f')} s",
                                f"< {TARGETS['pair_change_s']:g} s"))
    elif browser:
        lines.append(f"app: browser redraws: {browser.get('skipped') or 'ERROR ' + browser.get('error', '')}")
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
