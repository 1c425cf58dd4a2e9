"""The Playground's ways in and out, in a real browser (Debian's chromium, as tests/test_browser.py): Open in
Playground from a Compare card, the downloads of a finished run, and a link with Playground settings.

Screenshots go to tests/artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest

from core.checkpoint import CONFIG, METRICS, WEIGHTS, load_checkpoint
from core.evaluate import evaluate
from core.methods import METHODS
from tests import test_browser as shared
from tests.test_browser import ARTIFACTS, PHONE, TIMEOUT, full_page_screenshot, open_page, open_tab, pick, tab_button
from ui import pages
from ui import playground as pg

pytestmark = [pytest.mark.app, pytest.mark.browser]  # Chromium against the launched app

browser = shared.browser  # its fixture: Debian's Chromium, launched once for this module too

OPENED = "best"  # the method opened from Compare's right card: its recipe has what the Playground cannot express


@pytest.fixture(scope="module")
def page(browser, server):  # this module's own visitor: one Playground run per address
    page = open_page(browser, server, {"width": 1280, "height": 800}, "198.51.100.11")
    yield page
    page.close()


@pytest.fixture(scope="module")
def phone(browser, server):
    page = open_page(browser, server, PHONE, "198.51.100.12")
    yield page
    page.close()


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def number(page, label: str) -> str:
    """The value a slider's number box or a number field shows."""
    box = page.get_by_label(f"number input for {label}")
    if box.count() == 0:
        box = page.get_by_label(label)
    return box.input_value()


def radio(page, label: str) -> str:
    """The chosen option of the radio group titled `label`."""
    group = page.locator("fieldset.block").filter(
        has=page.locator("[data-testid=block-info]", has_text=re.compile(f"^{label}$")))
    return group.locator("input[type=radio][aria-checked=true]").get_attribute("value")


def assert_settings(page, settings: pg.PlaygroundSettings) -> None:
    """The Playground's widgets show `settings`."""
    assert float(number(page, "Depth (hidden layers)")) == settings.depth
    assert float(number(page, "Width (units per layer)")) == settings.width
    assert float(number(page, "Init std")) == settings.init_std
    assert float(number(page, "Learning rate")) == settings.lr
    assert float(number(page, "Epochs")) == settings.epochs
    assert float(number(page, "Training images")) == settings.train_size
    for label, value in (("Activation", settings.activation), ("Normalization", settings.norm),
                         ("Optimizer", settings.optimizer)):
        assert radio(page, label) == value, label
    assert page.get_by_label("Skip connections").is_checked() == settings.skips
    assert page.get_by_label("Gradient normalization").is_checked() == settings.grad_norm
    assert page.get_by_label("Batch size").input_value() == str(settings.batch_size)


def test_open_in_playground_fills_the_settings_and_switches_tab(page):
    """Compare's right card: the method's recipe in the Playground's widgets, that method as the reference,
    the Playground tab selected (the method pickers hidden, as when a visitor selects it), a notice saying what
    the Playground could not carry over, and the settings in the address beside the chart's own."""
    from playwright.sync_api import expect
    expect(page.locator("#diagnostics .vgl.vgl-ready")).to_be_visible()
    pick(page, "Right method", METHODS[OPENED].title)
    expect(page.locator("#diagnostics .vgl-panel[data-side=right] .vgl-title")).to_have_text(METHODS[OPENED].title)
    page.locator("#open-right").click()
    expect(tab_button(page, "Playground")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_label("Left method")).to_be_hidden()
    notice = page.locator("#playground-notice")
    expect(notice).to_contain_text(f"Opened from Compare: {METHODS[OPENED].title}")
    settings, left_out = pg.from_method(METHODS[OPENED])
    for phrase in left_out:  # each thing the Playground cannot express is said
        expect(notice).to_contain_text(phrase.split(" (")[0])
    assert_settings(page, settings)
    expect(page.get_by_label("Reference: a pre-trained method")).to_have_value(METHODS[OPENED].title)
    expect(page.locator("#playground-chart .vgl-panel[data-side=right] .vgl-title")).to_have_text(
        METHODS[OPENED].title)
    page.wait_for_function("new URLSearchParams(location.search).get('tab') === 'playground'")
    q = query(page)
    assert {k: q[k] for k in pg.to_query(settings, OPENED)} == pg.to_query(settings, OPENED)
    assert q["right"] == OPENED  # the Compare chart's own parameters are kept
    # and the chart's writer keeps ours: a new epoch on Compare's chart rewrites only its own keys
    tab_button(page, "Compare").click()
    page.locator("#diagnostics .vgl-epoch").evaluate(
        "s => { s.value = 3; s.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.wait_for_function("new URLSearchParams(location.search).get('epoch') === '3'")
    # (less tab=playground: on another tab the address no longer opens the Playground)
    assert query(page) == {**{k: v for k, v in q.items() if k != "tab"}, "epoch": "3"}
    assert not page.problems, page.problems


def test_a_finished_run_downloads_as_a_checkpoint_that_loads_back(page, fashion, tmp_path):
    """A short run (1 epoch on 500 images): once it has ended the three files download under their names, the
    address holds the run's settings, and the files, put in one folder under their checkpoint names, load with
    core.checkpoint.load_checkpoint into the model that was trained: its accuracy on the test split is the one
    the metrics record."""
    from playwright.sync_api import expect
    open_tab(page, "Playground")
    downloads = page.locator("#playground-downloads")
    for label, value in (("Epochs", "1"), ("Training images", "500")):
        box = page.get_by_label(f"number input for {label}")
        box.fill(value)
        box.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(downloads).to_be_hidden()
    expect(page.locator("#playground-status")).to_contain_text("✔ Done.", timeout=120_000)
    expect(downloads).to_be_visible()
    assert query(page)["epochs"] == "1" and query(page)["n"] == "500"
    folder = tmp_path / "downloaded"
    folder.mkdir()
    for i, (name, shown_as) in enumerate(pg.EXPORT_NAMES.items()):
        button = page.locator(f"#playground-download-{i}")
        expect(button).to_contain_text(pages.DOWNLOAD_LABELS[i])
        with page.expect_download(timeout=TIMEOUT) as got:
            button.click()
        assert got.value.suggested_filename == shown_as
        got.value.save_as(folder / name)
    model, metrics = load_checkpoint(folder, "playground")
    assert metrics["epochs"] == 1 and metrics["limit"] == 500 and metrics["stopped"] is None
    assert metrics["config"]["activation"] == "relu"  # the recipe Open in Playground set (test above)
    assert evaluate(model, fashion.test)[1] == pytest.approx(metrics["test_acc"], abs=1e-9)
    assert {f.name for f in folder.iterdir()} == {CONFIG, METRICS, WEIGHTS}
    full_page_screenshot(page, ARTIFACTS / "playground_share.png")
    assert not page.problems, page.problems


def test_a_stopped_run_downloads_as_of_its_last_epoch(page, tmp_path):
    """Stop during a long run: the downloads appear, and the metrics say the run stopped and where."""
    from playwright.sync_api import expect
    for label, value in (("Epochs", "20"), ("Training images", "54000")):
        box = page.get_by_label(f"number input for {label}")
        box.fill(value)
        box.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    status = page.locator("#playground-status")
    expect(status).to_contain_text("Epoch 1/20", timeout=120_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(status).to_contain_text("stopped at your request")
    expect(page.locator("#playground-downloads")).to_be_visible()
    with page.expect_download(timeout=TIMEOUT) as got:
        page.locator("#playground-download-0").click()
    got.value.save_as(tmp_path / METRICS)
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert metrics["stopped"].startswith("stopped at your request during epoch")
    assert 1 <= metrics["epochs"] < 20 and len(metrics["history"]) == metrics["epochs"] + 1
    assert not page.problems, page.problems


def test_a_link_restores_the_playground_settings_on_a_phone(phone, server):
    """A link with Playground settings opens the Playground with them (a bad value is ignored, the default kept,
    and said); then a run on a 390 px screen: its downloads fit the screen."""
    from playwright.sync_api import expect
    phone.goto(f"{server.url}?tab=playground&depth=3&width=32&act=tanh&gn=1&opt=adam&lr=abc&bs=64&epochs=1"
               "&n=500&ref=relu&left=baseline&right=relu")
    expect(tab_button(phone, "Playground")).to_have_attribute("aria-selected", "true")
    expect(phone.locator("#playground-notice")).to_contain_text("Settings from the link")
    expect(phone.locator("#playground-notice")).to_contain_text("lr=")
    expected = pg.PlaygroundSettings(depth=3, width=32, activation="tanh", grad_norm=True, optimizer="adam",
                                     batch_size=64, epochs=1, train_size=500)
    assert_settings(phone, expected)
    expect(phone.get_by_label("Reference: a pre-trained method")).to_have_value(METHODS["relu"].title)
    phone.get_by_role("button", name="Train", exact=True).click()
    expect(phone.locator("#playground-status")).to_contain_text("✔ Done.", timeout=120_000)
    expect(phone.locator("#playground-status")).to_contain_text("3x32 tanh")
    downloads = phone.locator("#playground-downloads")
    expect(downloads).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for i in range(3):  # each button whole on the screen
        box = phone.locator(f"#playground-download-{i}").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    full_page_screenshot(phone, ARTIFACTS / "playground_share_phone.png")
    downloads.scroll_into_view_if_needed()
    phone.screenshot(path=ARTIFACTS / "playground_share_phone_downloads.png")
    # back on Compare, the address no longer says "open the Playground" (its settings may stay: inert there)
    assert "tab=playground" in phone.url
    open_tab(phone, "Compare")
    phone.wait_for_function("() => !location.search.includes('tab=')")
    assert "left=baseline" in phone.url
    assert not phone.problems, phone.problems
