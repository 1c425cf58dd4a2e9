"""How long the Playground's default run takes as a visitor and as an API caller sees it: 10 epochs on 10,000
images (7x128 sigmoid, batch 512, reference baseline), against a launched app (bench.common.AppServer).

    python -m bench.playground_live [--runs 5] [--app PATH] [--no-cold] [--json PATH]

- browser: Debian's Chromium (/usr/bin/chromium, the flags of tests/test_browser.py), desktop viewport. Timed in the
  page itself (performance.now): from the Train click to the status saying "✔ Done.", with the time each
  epoch's status arrived. Each run on a freshly loaded page;
- client: gradio_client's submit of /playground with the same settings, until the job is done, and until its
  first output (epoch 0);
- cold: one browser run started as soon as the app serves, while its start-up work (pre-rendering the
  Compare figures, loading the Playground's data, torch's warm-up) may still be going: what the first visitor
  after a restart gets;
- warm: after the app's log says the Compare work is done, one untimed run, then --runs browser runs and
  --runs client runs, interleaved (browser, client, browser, ...) so that both see the same machine load.
Medians (bench.common.percentile) and every sample are printed, with the load average before each run: the
figures are wall-clock seconds on a shared machine. --app runs another version of app.py (a copy of the tree
before a change, say) from its own folder, so before and after run through the same script.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import RESULTS, AppServer, fmt, loadavg, log, percentile, write_json

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # as tests/test_browser.py
DESKTOP = {"width": 1280, "height": 900}
# The /playground inputs in the order an API caller sends them: the controls (the default run), the reference.
DEFAULT_RUN = dict(depth=7, width=128, activation="sigmoid", init_std=0.05, norm="none", skips=False,
                   grad_norm=False, optimizer="sgd", lr=0.01, epochs=10, train_size=10_000, batch_size=512,
                   reference="baseline")
WARM_LINE = "Compare: every method's panels"  # the start of ui.compare.WARM_DONE (the --app version's may differ)

# In the page: the Train click's time and each change of the status text (performance.now, ms), recorded by the
# page itself so that no round trip to Playwright is counted. The status is the Markdown that says "Press
# Train to start" before the run (found by that text: the same in every version of the app).
RECORDER = """() => {
  const idle = [...document.querySelectorAll("[data-testid=markdown], .prose")]
    .filter(el => el.innerText.includes("to start")).pop();
  if (!idle) throw new Error("no status markdown saying 'Press Train to start'");
  window.__run = {click: null, epochs: {}, done: null};
  const train = [...document.querySelectorAll("button")].find(b => b.innerText.trim() === "Train");
  train.addEventListener("click", () => { window.__run.click = performance.now(); }, {capture: true});
  const look = () => {
    const text = idle.innerText, now = performance.now(), m = text.match(/Epoch (\\d+)\\/(\\d+)/);
    if (m && !(m[1] in window.__run.epochs)) window.__run.epochs[m[1]] = now;
    if (text.includes("✔ Done.") && window.__run.done === null) window.__run.done = now;
  };
  new MutationObserver(look).observe(idle, {childList: true, subtree: true, characterData: true});
}"""


def browser_run(browser, url: str, timeout_s: float = 300) -> dict:
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.set_default_timeout(timeout_s * 1000)
        page.goto(url)
        page.get_by_role("tab", name="Playground").click()
        page.get_by_role("button", name="Train", exact=True).wait_for()
        page.wait_for_function("document.body.innerText.includes('to start')")
        page.evaluate(RECORDER)
        load = loadavg()
        page.get_by_role("button", name="Train", exact=True).click()
        page.wait_for_function("window.__run.done !== null", polling=50, timeout=timeout_s * 1000)
        run = page.evaluate("window.__run")
    finally:
        page.close()
    click = run["click"]
    epochs = {int(k): (v - click) / 1000 for k, v in run["epochs"].items()}
    return {"seconds": (run["done"] - click) / 1000, "first_update_s": epochs.get(0),
            "epochs_s": [epochs[k] for k in sorted(epochs)], "loadavg": load}


def client_run(client, timeout_s: float = 300) -> dict:
    load = loadavg()
    start = time.perf_counter()
    job = client.submit(*DEFAULT_RUN.values(), api_name="/playground")
    first = None
    while not job.done():
        if first is None and job.outputs():
            first = time.perf_counter() - start
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"/playground did not finish in {timeout_s} s: {job.status()}")
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    outputs = job.outputs()
    assert len(outputs) == DEFAULT_RUN["epochs"] + 1, len(outputs)
    return {"seconds": seconds, "first_update_s": first, "loadavg": load}


def wait_for_warm(server: AppServer, timeout_s: float = 600) -> float:
    start = time.perf_counter()
    while WARM_LINE not in server.log_tail(1_000_000):
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError("the app never said its start-up work was done")
        time.sleep(0.5)
    return time.perf_counter() - start


def summary(runs: list[dict]) -> str:
    seconds = [r["seconds"] for r in runs]
    firsts = [r["first_update_s"] for r in runs if r["first_update_s"] is not None]
    return (f"median {fmt(percentile(seconds, 50))} s (min {fmt(min(seconds))}, max {fmt(max(seconds))}, "
            f"n={len(runs)}); "
            f"first update after {fmt(percentile(firsts, 50))} s (median); runs: "
            + ", ".join(f"{r['seconds']:.2f} (load {r['loadavg'][0]:.1f})" for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs of each kind (browser, client)")
    parser.add_argument("--app", type=Path, default=None, help="another app.py to run (default: this one)")
    parser.add_argument("--no-cold", action="store_true", help="skip the run right after the app starts")
    parser.add_argument("--json", type=Path, default=RESULTS / "playground_live.json")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = {"app": str(args.app or "app.py"), "loadavg_start": loadavg(), "settings": DEFAULT_RUN}
    print(f"app {out['app']}; load average at start {out['loadavg_start']} (2 CPUs: above 2, processes wait)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        server = AppServer(env={"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}, app=args.app)
        try:
            out["app_start_s"] = server.startup_seconds
            if not args.no_cold:
                log("cold run (right after the app serves)...")
                out["cold"] = browser_run(browser, server.url)
                print(f"cold browser run, started {server.startup_seconds:.1f} s after launch: "
                      f"{out['cold']['seconds']:.2f} s (load {out['cold']['loadavg'][0]:.1f}); epochs at "
                      + ", ".join(f"{s:.1f}" for s in out["cold"]["epochs_s"]))
            log(f"waited {wait_for_warm(server):.0f} s for the app's start-up work; warm-up run...")
            client = server.client()
            client_run(client)
            out["browser"], out["client"] = [], []
            for i in range(args.runs):
                log(f"run {i + 1}/{args.runs}")
                out["browser"].append(browser_run(browser, server.url))
                out["client"].append(client_run(client))
        finally:
            server.stop()
            browser.close()
    out["loadavg_end"] = loadavg()
    print(f"warm, in Chromium (Train click to '✔ Done.'): {summary(out['browser'])}")
    print(f"warm, through gradio_client (submit to done):  {summary(out['client'])}")
    print(f"load average at end {out['loadavg_end']}")
    print(f"wrote {write_json(args.json, out)}")


if __name__ == "__main__":
    main()
