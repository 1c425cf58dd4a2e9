"""The UI in a real browser: Debian's chromium driven by Playwright against the launched app.

Never runs `playwright install` (no downloads): the browser is /usr/bin/chromium, which tests/run.sh installs.
Screenshots go to tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from core import history
from core.data import CLASSES
from core.methods import METHODS
from core.results import results_rows
from tests import imagefiles as F
from tests.helpers import ROOT
from ui import figures
from ui import playground as pg

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


def open_page(browser, server, viewport: dict, address: str, query: str = ""):
    """The app in a new page (at `query`, e.g. "?left=relu"), as the visitor at `address`: the Space's proxy
    names each client in X-Forwarded-For, and the Playground allows one run per address (the desktop and the
    phone are two visitors)."""
    page = browser.new_page(viewport=viewport, extra_http_headers={"X-Forwarded-For": address})
    page.set_default_timeout(TIMEOUT)
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console error: {m.text}"))
    # which resource failed (the console line does not say)
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
    page.add_init_script(RECORD_TOASTS)
    page.goto(server.url + query)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    page = open_page(browser, server, {"width": 1280, "height": 900}, "198.51.100.1")
    yield page
    page.close()


@pytest.fixture(scope="module")
def phone(browser, server):
    """The page on a phone-sized screen (an iPhone 12-15's CSS viewport)."""
    page = open_page(browser, server, PHONE, "198.51.100.2")
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
    expect(left.locator("table caption")).to_have_text("Error |∂L/∂z|, exact values")
    assert float(shown.inner_text()) == history.layer_value(row, "hidden1", "error_mean_abs")
    expect(root.locator(".vgl-missing")).to_have_count(0)  # every committed checkpoint records it
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
    tab_button(page, "Classify").click()
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


def test_results_tab(page, app_checkpoints):
    """The accuracy figure of every committed method, drawn for the pair chosen on Compare: the left method's
    bar blue, the right one's orange; the table above it."""
    from playwright.sync_api import expect
    tab_button(page, "Results").click()
    img = block(page, "Test accuracy per method").locator("img")
    expect(img).to_be_visible()
    assert loaded(img)
    fig = figures.results_figure(results_rows(app_checkpoints, strict=False), "baseline", RIGHT)
    size = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [round(v * fig.dpi) for v in fig.get_size_inches()]
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(img.evaluate("i => i.src")).body())).convert("RGB"))
    for colour in (figures.LEFT_COLOR, figures.RIGHT_COLOR):  # (the page's image is a lossy WebP: near, not exact)
        rgb = np.array([round(c * 255) for c in to_rgb(colour)])
        assert (np.abs(shown.reshape(-1, 3).astype(int) - rgb).max(axis=1) <= 8).sum() > 200, colour
    # the table, one row per method by its name, under a three-line takeaway
    expect(page.locator("#results-table th[scope=row]", has_text=METHODS[RIGHT].title)).to_be_visible()
    expect(page.locator("#results-takeaway li")).to_have_count(3)
    page.screenshot(path=ARTIFACTS / "results.png", full_page=True)


def test_results_on_a_phone_scroll_in_their_own_box(phone):
    """390x844: the page itself never scrolls sideways; the table does, inside its focusable box, and its
    columns are readable (no one-letter-wide column); every tab is in the bar, none behind a menu."""
    from playwright.sync_api import expect
    for name in ("Compare", "Classify", "Results", "Playground", "About"):
        expect(tab_button(phone, name)).to_be_visible()
    expect(phone.get_by_role("button", name="More tabs")).to_be_hidden()
    tab_button(phone, "Results").click()
    box = phone.locator("#results-table .results-box")
    expect(box).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    width, inner = box.evaluate("b => [b.clientWidth, b.scrollWidth]")
    assert inner > width  # it scrolls inside its box
    assert box.get_attribute("tabindex") == "0"
    narrowest = min(th.bounding_box()["width"] for th in phone.locator("#results-table thead th").all())
    assert narrowest >= 40, narrowest
    phone.screenshot(path=ARTIFACTS / "results_phone.png")
    tab_button(phone, "Compare").click()


def test_the_first_screen_shows_both_gradient_flows_and_pickers_only_where_they_act(page, phone):
    """The payoff above the fold: on 1280x800 and 390x844 the chart's first panel's bars are on the first screen;
    the method pickers show on Compare, Classify and Results, not on Playground or About."""
    from playwright.sync_api import expect
    for p, height in ((page, 800), (phone, PHONE["height"])):
        tab_button(p, "Compare").click()
        bars = chart(p).locator(".vgl-panel[data-side=left] svg.vgl-bars")
        expect(bars).to_be_visible()
        p.evaluate("window.scrollTo(0, 0)")
        # (on the phone the two panels are stacked: the left method's bars start on the first screen, the right
        # one's below it)
        assert bars.bounding_box()["y"] < height - 150, bars.bounding_box()
        for tab, shown in (("Playground", False), ("About", False), ("Classify", True)):
            tab_button(p, tab).click()
            picker = p.get_by_label("Left method")
            expect(picker).to_be_visible() if shown else expect(picker).to_be_hidden()
        tab_button(p, "Compare").click()


# --- Playground ----------------------------------------------------------------------------------------------

def tab_button(page, name: str):
    """The tab bar's button `name`; strict: there is one (a gr.State put directly in gr.Tabs once drew a
    second "Results" button in the Playground's place)."""
    return page.get_by_role("tab", name=name, exact=True)


def open_tab(page, name: str) -> None:
    """Click a tab: in the tab bar, or on a phone, where the last tabs sit under "More tabs", in that menu."""
    page.get_by_role("tab").first.wait_for()  # the tab bar is drawn
    tab = tab_button(page, name)
    if not tab.is_visible():
        page.get_by_role("button", name="More tabs").click()
        tab = page.locator("button", has_text=name).last
    tab.click()


def pick(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()


def playground_chart(page):
    from playwright.sync_api import expect
    root = page.locator("#playground-chart .vgl")
    expect(root).to_have_class(re.compile(r"\bvgl-ready\b"))
    return root


# Every epoch label the Playground chart shows and every status epoch, in order, as the page draws them.
RECORD_PLAYGROUND = """() => {
  window.__pg = {labels: [], status: []};
  const chart = document.querySelector("#playground-chart"), status = document.querySelector("#playground-status");
  const note = (list, text) => { if (text && list[list.length - 1] !== text) list.push(text); };
  new MutationObserver(() => note(window.__pg.labels, chart.querySelector(".vgl-epoch-label")?.textContent))
    .observe(chart, {childList: true, subtree: true, characterData: true});
  new MutationObserver(() => note(window.__pg.status, (status.innerText.match(/Epoch \\d+\\/\\d+/) || [""])[0]))
    .observe(status, {childList: true, subtree: true, characterData: true});
}"""

# Each panel's table at every epoch the slider reaches: [[left cells], [right cells], left label, right label].
TABLES_AT_EVERY_EPOCH = """(root) => {
  const slider = root.querySelector(".vgl-epoch"), out = [];
  for (let e = 0; e <= +slider.max; e++) {
    slider.value = e;
    slider.dispatchEvent(new Event("input", {bubbles: true}));
    out.push(["left", "right"].map(side => {
      const panel = root.querySelector(`.vgl-panel[data-side=${side}]`);
      return [[...panel.querySelectorAll("tbody tr")].map(tr => tr.lastElementChild.textContent),
              panel.querySelector(".vgl-when").textContent];
    }));
  }
  return out;
}"""


def cell_value(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # a reason ("no update yet", ...)


def test_the_playground_streams_every_epoch_beside_the_reference(page, server, app_checkpoints):
    """The default run (10 epochs on 10,000 images) with ReLU as the reference: the chart is updated after every
    epoch, 0 to 10, and at the end shows at every epoch the run's own numbers (the same run through the API:
    the same seed gives the same numbers) beside ReLU's recorded ones at the same epoch."""
    from playwright.sync_api import expect
    open_tab(page, "Playground")
    root = playground_chart(page)
    left, right = (root.locator(f".vgl-panel[data-side={s}]") for s in ("left", "right"))
    expect(left.locator(".vgl-missing").nth(1)).to_have_text("press Train to start")  # before a run
    expect(right.locator(".vgl-title")).to_have_text(METHODS["baseline"].title)
    pick(page, "Reference: a pre-trained method", METHODS[RIGHT].title)
    expect(right.locator(".vgl-title")).to_have_text(METHODS[RIGHT].title)  # redrawn before any run
    page.evaluate(RECORD_PLAYGROUND)
    page.get_by_role("button", name="Train", exact=True).click()
    status = page.locator("#playground-status")
    expect(status).to_contain_text("✔ Done.", timeout=120_000)
    expect(left.locator(".vgl-title")).to_have_text(re.compile(r"Your network \(7x128 sigmoid\)"))
    expect(root.locator(".vgl-epoch-label")).to_have_text("epoch 10 / 10")
    seen = page.evaluate("window.__pg")
    epochs = [f"Epoch {e}/10" for e in range(11)]
    assert seen["status"] == epochs, seen["status"]  # one update per epoch, each shown, in order
    labels = [f"epoch {e} / 10" for e in range(11)]
    assert seen["labels"] in (labels, ["epoch 10 / 10", *labels]), seen["labels"]  # (after the reference alone)
    full_page_screenshot(page, ARTIFACTS / "playground.png")

    # the same run through the API: its last update holds every epoch's numbers
    args = dict(depth=7, width=128, activation="sigmoid", init_std=0.05, norm="none", skips=False, grad_norm=False,
                optimizer="sgd", lr=0.01, epochs=10, train_size=10_000, batch_size=512, reference=RIGHT)
    data, _ = server.client().predict(*args.values(), api_name="/playground")
    run = data["left"]
    assert run["epochs"] == list(range(11))
    relu = metrics_of(app_checkpoints, RIGHT)
    for epoch, ((mine, mine_when), (ref, ref_when)) in enumerate(root.evaluate(TABLES_AT_EVERY_EPOCH)):
        assert [cell_value(c) for c in mine] == run["stats"]["grad_mean_abs"]["values"][epoch], epoch
        assert mine_when.startswith(f"epoch {epoch}") and ref_when.startswith(f"epoch {epoch}")
        row = relu["history"][epoch]
        assert row["epoch"] == epoch
        assert [cell_value(c) for c in ref] == [history.layer_value(row, n, "grad_mean_abs") for n in
                                                history.layer_names(row)], epoch
    assert not page.problems, page.problems


def test_the_playground_on_a_phone(phone, app_checkpoints):
    """A short run on a 390 px screen: the controls reach the run (2 epochs, 500 images), the status sits right
    under the Train button, and the chart fits the screen with readable text."""
    from playwright.sync_api import expect
    open_tab(phone, "Playground")
    root = playground_chart(phone)
    for label, value in (("Epochs", "2"), ("Training images", "500")):
        box = phone.get_by_label(f"number input for {label}")
        box.fill(value)
        box.press("Enter")
    train = phone.get_by_role("button", name="Train", exact=True)
    train.click()
    status = phone.locator("#playground-status")
    expect(status).to_contain_text("✔ Done.", timeout=120_000)
    expect(status).to_contain_text("2 epochs on 500 images")
    expect(root.locator(".vgl-epoch-label")).to_have_text("epoch 2 / 2")
    for curve in root.locator(".vgl-curve svg").all():  # whole epochs on the axis, no 0.5
        ticks = curve.locator("text.vgl-tick[text-anchor=middle]").evaluate_all("ts => ts.map(t => t.textContent)")
        assert ticks == ["0", "1", "2"]
    assert 0 <= status.bounding_box()["y"] - (train.bounding_box()["y"] + train.bounding_box()["height"]) < 60
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    svgs = root.locator(".vgl-panel svg.vgl-bars, .vgl-curve svg").all()
    assert len(svgs) == 4
    for svg in svgs:  # one per row, as wide as the screen less the page's and the column's margins
        assert svg.bounding_box()["width"] >= 0.85 * PHONE["width"], svg.get_attribute("aria-label")
    smallest, where = root.evaluate(SMALLEST_TEXT)
    assert smallest >= 9, f"{smallest:.1f} px: {where!r}"
    full_page_screenshot(phone, ARTIFACTS / "playground_phone.png")
    assert not phone.problems, phone.problems


def test_a_second_visitor_waits_in_the_queue_and_is_told_so(page, phone):
    """One run at a time: while the desktop page trains, the phone's Train says it is waiting, how many runs are
    ahead and for at most how long (the running one's limit shrinks to SHARED_LIMIT as soon as someone waits);
    its Stop drops it from the queue (the running one goes on); Stop on the desktop ends the running one, which
    says where."""
    from playwright.sync_api import expect
    for label, value in (("Epochs", "20"), ("Training images", "54000")):  # minutes, if it ran to the end
        box = page.get_by_label(f"number input for {label}")
        box.fill(value)
        box.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    mine, theirs = page.locator("#playground-status"), phone.locator("#playground-status")
    expect(mine).to_contain_text("Epoch 1/20", timeout=120_000)
    page.screenshot(path=ARTIFACTS / "playground_running.png", full_page=True)
    phone.get_by_role("button", name="Train", exact=True).click()
    expect(theirs).to_contain_text("Starting… If another visitor's run is going, yours waits for it")
    expect(theirs).to_contain_text(re.compile(r"Busy: 1 run ahead of yours, about (\d+) s at most"))
    waited = int(re.search(r"about (\d+) s", theirs.inner_text()).group(1))
    assert 0 < waited <= pg.SHARED_LIMIT, waited
    phone.screenshot(path=ARTIFACTS / "playground_phone_queued.png")
    phone.get_by_role("button", name="Stop", exact=True).click()
    expect(theirs).to_contain_text("✔ Done.")  # its last run's status again
    expect(theirs).to_contain_text("2 epochs on 500 images")
    expect(mine).to_contain_text("training…")  # the running one goes on
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(mine).to_contain_text(re.compile(r"⏹ Training stopped at your request during epoch \d+\."))
    assert not page.problems and not phone.problems, (page.problems, phone.problems)


def test_a_refused_setting_is_a_message_and_the_page_keeps_its_run(phone):
    from playwright.sync_api import expect
    box = phone.get_by_label("Init std")
    box.fill("0")
    phone.get_by_role("button", name="Train", exact=True).click()
    message = "Init std must be greater than 0 and at most 20, got 0"
    expect(phone.locator("[data-testid=toast-text]").filter(has_text=message).first).to_be_visible()
    status = phone.locator("#playground-status")
    expect(status).to_contain_text("✔ Done.")  # the last run's status, not "Starting…"
    expect(status).to_contain_text("2 epochs on 500 images")
    expect(playground_chart(phone).locator(".vgl-epoch-label")).to_have_text("epoch 2 / 2")
    box.fill("0.05")
    assert not phone.problems, phone.problems


def test_no_error_other_than_the_bad_upload(page):
    """Runs last: no error toast, page error or console error apart from the deliberate bad upload."""
    other = [t for t in toasts(page) if "not an image" not in t]
    assert not other, other
    assert not page.problems, page.problems
