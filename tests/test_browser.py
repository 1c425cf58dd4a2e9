"""The UI in a real browser: Debian's chromium driven by Playwright against the launched app.

Never runs `playwright install` (no downloads): the browser is /usr/bin/chromium, which tests/run.sh installs.
Screenshots go to tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core import history
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
PHONE = {"width": 390, "height": 844}

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
def browser():
    from playwright.sync_api import expect, sync_playwright
    expect.set_options(timeout=TIMEOUT)
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (tests/run.sh does)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, server, viewport: dict):
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(TIMEOUT)
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console error: {m.text}"))
    page.add_init_script(RECORD_TOASTS)
    page.goto(server.url)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    page = open_page(browser, server, {"width": 1280, "height": 900})
    yield page
    page.close()


@pytest.fixture(scope="module")
def phone(browser, server):
    """The page on a phone-sized screen (an iPhone 12-15's CSS viewport)."""
    page = open_page(browser, server, PHONE)
    yield page
    page.close()


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


def chart(page):
    """The Compare tab's browser-drawn chart, once it has its data."""
    from playwright.sync_api import expect
    root = page.locator("#diagnostics .vgl")
    expect(root).to_have_class(re.compile(r"\bvgl-ready\b"))
    return root


def full_page_screenshot(page, path: Path) -> None:
    """Scrolled through first: images below the fold load lazily and would be blank in the screenshot."""
    height = page.evaluate("document.documentElement.scrollHeight")
    for y in range(0, height, 500):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(60)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=path, full_page=True)


def metrics_of(app_checkpoints: Path, name: str) -> dict:
    return json.loads((app_checkpoints / name / "metrics.json").read_text())


# The smallest font size any text of the element is drawn at, in CSS px: each text node's computed size,
# times the scale of its SVG (1 when an SVG is drawn at its own viewBox size, as the chart's are).
SMALLEST_TEXT = """root => {
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let smallest = Infinity, where = "";
  while (walk.nextNode()) {
    const node = walk.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el.getClientRects().length) continue;
    let size = parseFloat(getComputedStyle(el).fontSize);
    const svg = el.closest("svg");
    if (svg && svg.viewBox.baseVal && svg.viewBox.baseVal.width) {
      size *= svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    }
    if (size < smallest) { smallest = size; where = node.textContent.trim().slice(0, 40); }
  }
  return [smallest, where];
}"""


def test_compare_a_non_default_method(page):
    from playwright.sync_api import expect
    expect(page.locator("h3", has_text=METHODS["batchnorm"].title)).to_be_visible()  # the default pair
    page.get_by_text("The figures as images (PNG, to download)").click()  # the PNGs sit in a closed accordion
    flow = figure(page, "flow")
    expect(flow).to_be_visible()
    before = flow.get_attribute("src")
    page.get_by_label("Right method").click()
    page.get_by_role("option", name=METHODS[RIGHT].title, exact=True).click()
    expect(page.locator("h3", has_text=METHODS[RIGHT].title)).to_be_visible()
    expect(page.locator("h3", has_text=METHODS["batchnorm"].title)).to_have_count(0)
    expect(flow).not_to_have_attribute("src", before)  # a new figure, not the old one
    expect(page.get_by_text(re.compile(r"Test accuracy \d+\.\d\d%"))).to_have_count(2)
    expect(chart(page).locator(".vgl-panel[data-side=right] .vgl-title")).to_have_text(METHODS[RIGHT].title)
    for label in ("flow", "curves", "weight-change", "preds-left", "preds-right"):
        img = figure(page, label)
        expect(img).to_be_visible()
        assert loaded(img), f"{label}: the image did not load"
        assert img.bounding_box()["width"] > 300, label
    for svg in chart(page).locator(".vgl-panel svg, .vgl-curve svg").all():  # two panels, two curves, in pairs
        assert svg.bounding_box()["width"] > 500
    full_page_screenshot(page, ARTIFACTS / "compare.png")


def test_compare_on_a_phone_fits_the_screen_and_reads(phone, app_checkpoints):
    """390x844: no sideways scrolling, every chart as wide as the screen, no text under 9 px, exact values."""
    from playwright.sync_api import expect
    root = chart(phone)
    expect(root.locator(".vgl-panel[data-side=left] .vgl-title")).to_have_text(METHODS["baseline"].title)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    svgs = root.locator(".vgl-panel svg, .vgl-curve svg").all()
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.bounding_box()["width"] >= 0.9 * PHONE["width"], svg.get_attribute("aria-label")
    smallest, where = root.evaluate(SMALLEST_TEXT)
    assert smallest >= 9, f"{smallest:.1f} px: {where!r}"
    # the exact values behind the bars, in the table under each panel
    m = metrics_of(app_checkpoints, "baseline")
    table = root.locator(".vgl-panel[data-side=left] table.vgl-values")
    expect(table.locator("thead th").nth(2)).to_have_text("epoch 100 (last)")
    for i, name in enumerate(history.all_layer_names(history.rows(m))):
        cells = table.locator(f"tbody tr[data-layer={name}] td")
        for cell, row in zip(cells.all(), (m["history"][0], m["history"][-1]), strict=True):
            assert float(cell.inner_text()) == history.layer_value(row, name, "grad_mean_abs"), (name, i)
    full_page_screenshot(phone, ARTIFACTS / "compare_phone.png")
    assert not phone.problems, phone.problems


def test_the_player_steps_through_epochs_without_asking_the_server(phone, server):
    from playwright.sync_api import expect
    root = chart(phone)
    label = root.locator(".vgl-epoch-label")
    expect(label).to_have_text("epoch 100 / 100")
    requests = []
    phone.on("request", lambda r: r.url.startswith(server.url) and requests.append(r.url))
    root.locator(".vgl-play").click()  # at the last epoch: starts over from init
    seen = set()
    for _ in range(12):
        phone.wait_for_timeout(150)
        seen.add(root.locator(".vgl-panel[data-side=left] .vgl-when").inner_text())
    phone.screenshot(path=ARTIFACTS / "compare_phone_playing.png")
    root.locator(".vgl-play").click()  # pause
    epoch = int(re.match(r"epoch (\d+) /", label.inner_text()).group(1))
    assert 0 < epoch < 100 and len(seen) >= 4, (epoch, seen)
    assert not requests, requests
    assert root.locator(".vgl-epoch").input_value() == str(epoch)


def test_the_epoch_slider_and_the_statistic_selector_redraw_in_place(phone, server, app_checkpoints):
    from playwright.sync_api import expect
    root = chart(phone)
    requests = []
    phone.on("request", lambda r: r.url.startswith(server.url) and requests.append(r.url))
    root.locator(".vgl-epoch").fill("37")
    left = root.locator(".vgl-panel[data-side=left]")
    expect(left.locator(".vgl-when")).to_have_text("epoch 37")
    m = metrics_of(app_checkpoints, "baseline")
    row = history.row_at(m, 37)
    shown = left.locator("tbody tr[data-layer=hidden1] td").last  # the column of the epoch shown
    assert float(shown.inner_text()) == history.layer_value(row, "hidden1", "grad_mean_abs")
    root.get_by_role("button", name="Update / weight").click()
    expect(root.get_by_role("button", name="Update / weight")).to_have_attribute("aria-pressed", "true")
    expect(left.locator("table caption")).to_have_text("Update / weight, exact values")
    expect(left.locator(".vgl-guide-label")).to_have_text("healthy ≈ 1e-3")
    assert float(shown.inner_text()) == history.layer_value(row, "hidden1", "update_ratio")
    root.locator(".vgl-epoch").fill("0")  # init: no update yet, and the table says so
    expect(shown).to_have_text("no update yet")
    root.locator(".vgl-epoch").fill("37")
    root.get_by_role("button", name="Error |∂L/∂z|").click()
    for side in ("left", "right"):  # the committed checkpoints predate it: said, not silently blank
        panel = root.locator(f".vgl-panel[data-side={side}]")
        expect(panel.locator(".vgl-missing").nth(1)).to_have_text("not recorded for this checkpoint")
    root.get_by_role("button", name="Saturation").click()
    expect(left.locator("table caption")).to_have_text("Saturation, exact values")
    texts = left.locator("svg .vgl-tick").evaluate_all("ts => ts.map(t => t.textContent)")
    ticks = [float(t) for t in texts if re.fullmatch(r"[\d.]+", t)]
    assert ticks[0] == 0 and ticks == sorted(ticks)  # a linear axis from 0
    phone.screenshot(path=ARTIFACTS / "compare_phone_saturation.png", full_page=False)
    root.get_by_role("button", name="Weight gradient").click()
    assert not requests, requests
    assert not phone.problems, phone.problems


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
