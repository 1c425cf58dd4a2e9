"""axe-core (tests/vendor/axe.min.js) on every tab of a running app, in Debian's Chromium, on a desktop and a
phone screen: the violations per tab and screen, split into the app's own and those inside Gradio's footer, and
a screenshot of each tab (tests/artifacts/<prefix>-<tab>-<screen>.png).

    python -m bench.a11y                               # this checkout's app (committed checkpoints)
    python -m bench.a11y --app /tmp/old-tree/app.py --prefix before   # another version of the app

tests/test_browser_a11y.py runs audit() on the launched app and asserts the app's own part has no critical or
serious violation. Never runs `playwright install`: the browser is /usr/bin/chromium.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.common import AppServer

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "vendor" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
TABS = ("Compare", "Classify", "Results", "Playground", "About")
SCREENSHOT_TABS = ("Compare", "Classify", "Results")  # the screenshots committed (.gitignore's exceptions)
# Gradio's own footer ("Use via API", "Built with Gradio", "Settings"): not the app's to fix. Its violations are
# counted and printed apart, never hidden.
EXCLUDED = "footer"
SERIOUS = ("critical", "serious")
# the first example thumbnail: Gradio's gr.Examples gallery (the old app) or the app's own example buttons
EXAMPLE = "button.gallery-item, #examples button"
TIMEOUT = 60_000  # ms: the CPU may be busy

# axe on the whole document; each violating node marked as inside EXCLUDED or not (by the element itself).
RUN_AXE = """async excluded => {
  const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => {
    const el = document.querySelector(n.target[0]);
    return {target: n.target.join(" "), html: n.html.slice(0, 160), excluded: !!(el && el.closest(excluded))};
  })}));
}"""


def show_tab(page, name: str) -> None:
    """Open the tab and wait until what it shows has arrived: Compare's chart, Classify's answers to an example
    (its first example thumbnail clicked), Results' figure; Playground and About are static."""
    tab = page.get_by_role("tab", name=name)
    if not tab.is_visible():  # (a version of the page whose last tabs sit under "More tabs" on a phone)
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator("button", has_text=name).last
    tab.click()
    if name == "Compare":
        page.locator("#diagnostics .vgl.vgl-ready").wait_for()
        page.locator("#preds-right img").wait_for(state="attached")
    elif name == "Classify":
        page.locator(EXAMPLE).first.click()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=label]')]"
                               ".every(l => /\\d%/.test(l.innerText))", timeout=TIMEOUT)
    elif name == "Results":
        # (the accuracy figure, drawn for the pair: every version of the Results tab has it)
        page.locator(".block").filter(has=page.locator("[data-testid=block-label]", has_text="Test accuracy per method")
                                      ).locator("img").wait_for(state="attached")
    # scrolled through: images below the fold load lazily (blank in a screenshot, unchecked by axe)
    for y in range(0, page.evaluate("document.documentElement.scrollHeight"), 500):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(60)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(800)  # transitions settle


def tally(violations: list[dict], excluded: bool) -> Counter:
    """(impact, rule) -> nodes, for the nodes inside (excluded=True) or outside EXCLUDED."""
    c = Counter()
    for v in violations:
        n = sum(1 for node in v["nodes"] if node["excluded"] == excluded)
        if n:
            c[(v["impact"], v["id"])] += n
    return c


def audit(browser, url: str, screen: str, prefix: str | None = None) -> dict[str, list[dict]]:
    """Tab -> axe's violations on it at SCREENS[screen], after show_tab(); screenshots when `prefix` is given."""
    page = browser.new_page(viewport=SCREENS[screen])
    page.set_default_timeout(TIMEOUT)
    try:
        page.goto(url)
        page.get_by_role("tab", name="Compare").wait_for()
        found = {}
        for name in TABS:
            show_tab(page, name)
            if "axe" not in page.evaluate("Object.keys(window)"):
                page.add_script_tag(path=str(AXE))
            found[name] = page.evaluate(RUN_AXE, EXCLUDED)
            if prefix and name in SCREENSHOT_TABS:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=ARTIFACTS / f"{prefix}-{name.lower()}-{screen}.png", full_page=True)
        return found
    finally:
        page.close()


def report(found: dict[str, list[dict]], screen: str) -> str:
    lines = []
    for tab, violations in found.items():
        for label, excluded in (("app", False), (f"excluded ({EXCLUDED})", True)):
            counts = tally(violations, excluded)
            text = ", ".join(f"{impact} {rule} {n}" for (impact, rule), n in sorted(counts.items())) or "none"
            lines.append(f"{screen:7s} {tab:10s} {label:18s} {text}")
    return "\n".join(lines)


def serious_in_app(found: dict[str, list[dict]]) -> list[str]:
    """Each critical or serious violation outside EXCLUDED: 'tab: impact rule: target' per node."""
    return [f"{tab}: {v['impact']} {v['id']}: {node['target']} {node['html']}"
            for tab, violations in found.items() for v in violations if v["impact"] in SERIOUS
            for node in v["nodes"] if not node["excluded"]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", type=Path, default=None, help="another app.py to run (default: this checkout's)")
    parser.add_argument("--prefix", default="after", help="screenshot names: <prefix>-<tab>-<screen>.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright
    with AppServer(app=args.app, timeout=300) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for screen in SCREENS:
            found = audit(browser, server.url, screen, args.prefix)
            print(report(found, screen), flush=True)
            for line in serious_in_app(found):
                print("  ", line)
        browser.close()


if __name__ == "__main__":
    main()
