"""The UI in a real browser: Debian's chromium driven by Playwright against the launched app.

Never runs `playwright install` (no downloads): the browser is /usr/bin/chromium, which tests/run.sh installs.
Screenshots go to tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.data import CLASSES
from core.methods import METHODS
from tests import imagefiles as F
from tests.helpers import ROOT

pytestmark = [pytest.mark.app, pytest.mark.browser]  # Chromium against the launched app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
RIGHT = "relu"  # a non-default right method (the default pair is baseline / batchnorm)
TIMEOUT = 30_000  # ms, for anything that waits on the server (CPU may be busy)

# Every toast message the page shows, whenever it shows it (toasts fade out after a few seconds, and gradio
# stacks messages of the same kind into one toast).
RECORD_TOASTS = """
window.__toasts = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[data-testid=toast-text]')) {
    if (!el.dataset.seen) { el.dataset.seen = '1'; window.__toasts.push(el.innerText); }
  }
}).observe(document, {childList: true, subtree: true});
"""


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import expect, sync_playwright
    expect.set_options(timeout=TIMEOUT)
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (tests/run.sh does)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT)
        page.problems = []
        page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
        page.on("console", lambda m: m.type == "error" and page.problems.append(f"console error: {m.text}"))
        page.add_init_script(RECORD_TOASTS)
        page.goto(server.url)
        yield page
        browser.close()


def block(page, label: str):
    """The component whose label starts with `label`."""
    return page.locator(".block").filter(has=page.locator("[data-testid=block-label]", has_text=label))


def figure(page, elem_id: str):
    """A Compare figure: shown without a label (the figure has its own title), found by its elem_id."""
    return page.locator(f"#{elem_id} img")


def loaded(img) -> bool:
    """The image has loaded with real pixels (waits for it if a new src is still loading)."""
    return img.evaluate("""i => (i.complete && i.naturalWidth > 0) ? true : new Promise(resolve => {
        i.addEventListener("load", () => resolve(i.naturalWidth > 0), {once: true});
        i.addEventListener("error", () => resolve(false), {once: true});
        setTimeout(() => resolve(i.complete && i.naturalWidth > 0), 20000);
    })""")


def toasts(page) -> list[str]:
    return page.evaluate("window.__toasts")


def test_compare_a_non_default_method(page):
    from playwright.sync_api import expect
    expect(page.locator("h3", has_text=METHODS["batchnorm"].title)).to_be_visible()  # the default pair
    flow = figure(page, "flow")
    expect(flow).to_be_visible()
    before = flow.get_attribute("src")
    page.get_by_label("Right method").click()
    page.get_by_role("option", name=METHODS[RIGHT].title, exact=True).click()
    expect(page.locator("h3", has_text=METHODS[RIGHT].title)).to_be_visible()
    expect(page.locator("h3", has_text=METHODS["batchnorm"].title)).to_have_count(0)
    expect(flow).not_to_have_attribute("src", before)  # a new figure, not the old one
    expect(page.get_by_text(re.compile(r"Test accuracy \d+\.\d\d%"))).to_have_count(2)
    for label in ("flow", "curves", "weight-change", "preds-left", "preds-right"):
        img = figure(page, label)
        expect(img).to_be_visible()
        assert loaded(img), f"{label}: the image did not load"
        assert img.bounding_box()["width"] > 300, label
    page.screenshot(path=ARTIFACTS / "compare.png", full_page=True)


def test_classify_an_upload(page):
    from playwright.sync_api import expect
    page.get_by_role("tab", name="Classify").click()
    page.locator("input[type=file]").set_input_files(ROOT / "assets" / "examples" / "1_trouser.png")
    left, right = page.locator("[data-testid=label]").nth(0), page.locator("[data-testid=label]").nth(1)
    for out in (left, right):
        expect(out).to_contain_text(re.compile(r"\d+%"))
    classes = "|".join(re.escape(c) for c in CLASSES)
    for out in (left, right):  # the top class, then five "class ... NN%" rows
        rows = re.findall(rf"({classes})\s*\n\s*(\d+)%", out.inner_text())
        assert len(rows) == 5, out.inner_text()
    assert right.inner_text().split("\n").count("Trouser") >= 2  # heading and first row: relu gets it right
    seen = block(page, "What the models see").locator("img")
    expect(seen).to_be_visible()
    assert loaded(seen)
    page.screenshot(path=ARTIFACTS / "classify.png", full_page=True)


def test_a_bad_upload_shows_our_message(page, tmp_path):
    from playwright.sync_api import expect
    message = "The file is text, not an image (although its name ends in .png)"
    page.locator("input[type=file]").set_input_files(F.text_named_png(tmp_path / "shirt.png"))
    expect(page.locator("[data-testid=toast-text]").filter(has_text=message).first).to_be_visible()
    page.wait_for_timeout(1000)  # both handlers of the upload have answered
    page.screenshot(path=ARTIFACTS / "bad_upload.png")  # the viewport, where the toast is
    assert message in toasts(page)


def test_results_tab(page):
    from playwright.sync_api import expect
    page.get_by_role("tab", name="Results").click()
    img = block(page, "Test accuracy per method").locator("img")
    expect(img).to_be_visible()
    assert loaded(img)
    page.screenshot(path=ARTIFACTS / "results.png", full_page=True)


def test_no_error_other_than_the_bad_upload(page):
    """Runs last: no error toast, page error or console error apart from the deliberate bad upload."""
    other = [t for t in toasts(page) if "not an image" not in t]
    assert not other, other
    assert not page.problems, page.problems
