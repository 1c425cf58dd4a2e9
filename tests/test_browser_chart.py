"""The Compare chart in a real browser (Debian's chromium, as tests/test_browser.py): a shared link opens its
pair, statistic and epoch, and a pair of unequal runs plays by each one's share of its training."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from core import history
from core.methods import METHODS
from tests.test_browser import ARTIFACTS, browser, chart, metrics_of, open_page, tab_button  # noqa: F401
from ui import chart_data

pytestmark = [pytest.mark.app, pytest.mark.browser]

DESKTOP = {"width": 1280, "height": 800}


def test_a_link_opens_a_layerwise_pair_at_a_share_of_each_training(browser, server, app_checkpoints):  # noqa: F811
    from playwright.sync_api import expect
    page = open_page(browser, server, DESKTOP, "198.51.100.7", "?left=baseline&right=layerwise&stat=grad_mean_abs"
                                                               "&epoch=50")
    root = chart(page)
    right = root.locator(".vgl-panel[data-side=right]")
    # the link's pair reached the server: the pickers, the cards and the chart are the layer-wise pair's
    expect(right.locator(".vgl-title")).to_have_text(METHODS["layerwise"].title)
    expect(page.locator("h3", has_text=METHODS["layerwise"].title)).to_be_visible()
    expect(page.get_by_label("Right method")).to_have_value(METHODS["layerwise"].title)
    # 700 epochs beside 100: the slider is the share of each one's training, each side at its own epoch
    expect(root.locator(".vgl-epoch-label")).to_have_text("50% of training")
    left = root.locator(".vgl-panel[data-side=left]")
    expect(left.locator(".vgl-when")).to_have_text("epoch 50")
    layerwise = metrics_of(app_checkpoints, "layerwise")
    thin = chart_data.thinned(chart_data.method_data("layerwise", "", layerwise))
    i = max(j for j, e in enumerate(thin["epochs"]) if e <= 350)
    expect(right.locator(".vgl-when")).to_have_text(thin["labels"][i])
    # every cell of the table is the recorded value or its reason in words (each word is sent once, by
    # reference, and put back in the browser: chart_data.packed)
    row = history.row_at(layerwise, thin["epochs"][i])
    for name in history.all_layer_names(history.rows(layerwise)):
        cell = right.locator(f"tbody tr[data-layer={name}] td").last
        value = history.layer_value(row, name, "grad_mean_abs")
        if value is None:
            expect(cell).to_have_text(history.missing_reason(layerwise, row, name, "grad_mean_abs"))
        else:
            assert float(cell.inner_text()) == value, name
    assert "[object" not in root.inner_text() and "undefined" not in root.inner_text()
    # the curves' axis is the share too, and says so
    ticks = root.locator(".vgl-curve[data-curve=acc] .vgl-tick").evaluate_all("ts => ts.map(t => t.textContent)")
    assert "100%" in ticks and "0%" in ticks, ticks
    expect(root.locator(".vgl-x-note")).to_contain_text(f"epoch 100 of {METHODS['baseline'].title}")
    expect(root.locator(".vgl-x-note")).to_contain_text(f"epoch 700 of {METHODS['layerwise'].title}")
    page.screenshot(path=ARTIFACTS / "compare-layerwise-share.png", full_page=True)
    # moving the slider writes the view into the address, for "Copy link"
    root.locator(".vgl-epoch").fill("20")
    expect(left.locator(".vgl-when")).to_have_text("epoch 20")
    query = parse_qs(urlparse(page.url).query)
    assert {k: v[0] for k, v in query.items()} == {"left": "baseline", "right": "layerwise",
                                                    "stat": "grad_mean_abs", "epoch": "20"}
    assert not page.problems, page.problems
    page.close()


def test_a_link_with_a_statistic_and_an_epoch_restores_both(browser, server, app_checkpoints):  # noqa: F811
    from playwright.sync_api import expect
    page = open_page(browser, server, DESKTOP, "198.51.100.8", "?left=relu&right=tanh&stat=saturation&epoch=37")
    root = chart(page)
    expect(root.locator(".vgl-panel[data-side=left] .vgl-title")).to_have_text(METHODS["relu"].title)
    expect(root.locator(".vgl-panel[data-side=right] .vgl-title")).to_have_text(METHODS["tanh"].title)
    expect(root.get_by_role("button", name="Saturation")).to_have_attribute("aria-pressed", "true")
    expect(root.locator(".vgl-epoch-label")).to_have_text("epoch 37 / 100")
    right = root.locator(".vgl-panel[data-side=right]")
    m = metrics_of(app_checkpoints, "tanh")
    shown = right.locator("tbody tr[data-layer=hidden1] td").last
    assert float(shown.inner_text()) == history.layer_value(history.row_at(m, 37), "hidden1", "saturation")
    assert re.search(r"epoch=37", page.url) and not page.problems, page.problems
    page.close()


def test_the_results_figure_is_drawn_when_shown_and_follows_the_pair(browser, server):  # noqa: F811
    """Results' figure (a pair's is ~0.3 s of matplotlib) is drawn when its tab is shown, not on every pair
    change on Compare, and follows the pickers while it is shown."""
    from playwright.sync_api import expect
    page = open_page(browser, server, DESKTOP, "198.51.100.9")
    chart(page)
    img = page.locator(".block").filter(has=page.locator("[data-testid=block-label]",
                                                         has_text="Test accuracy per method")).locator("img")
    expect(img).to_have_count(0)  # not drawn while Compare is shown
    tab_button(page, "Results").click()
    expect(img).to_be_visible()
    before = img.get_attribute("src")
    page.get_by_label("Right method").click()
    page.get_by_role("option", name=METHODS["tanh"].title, exact=True).click()
    expect(img).not_to_have_attribute("src", before)
    assert not page.problems, page.problems
    page.close()


def test_each_tab_has_one_button_whichever_is_shown(browser, server):  # noqa: F811
    """A gr.State directly inside gr.Tabs is drawn as a tab: selecting Results once turned the Playground's
    button into a second "Results"."""
    page = open_page(browser, server, DESKTOP, "198.51.100.10")
    chart(page)
    names = ["Compare", "Classify", "Results", "Playground", "About"]
    for name in names:
        tab_button(page, name).click()
        page.wait_for_timeout(300)
        assert page.get_by_role("tab").all_inner_texts() == names, name
    page.close()
