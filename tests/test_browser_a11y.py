"""axe-core (tests/vendor/axe.min.js) on every tab of the launched app, desktop 1280x800 and phone 390x844: no
critical or serious violation in the app's own components. Gradio's own footer is left out (bench.a11y.EXCLUDED),
and what it holds is printed, with everything else axe found (run with -s to see it). Its screenshots are
tests/artifacts/test-<tab>-<screen>.png (git-ignored: this app serves the test checkpoints, one broken); the
committed after-*.png come from `python -m bench.a11y`, on the committed checkpoints."""
import re

import pytest

from bench import a11y
from core.methods import METHODS
from tests import test_browser

browser, page = test_browser.browser, test_browser.page  # its fixtures: Chromium, the app's page at 1280x900

pytestmark = [pytest.mark.app, pytest.mark.browser]  # Chromium against the launched app


@pytest.mark.parametrize("screen", list(a11y.SCREENS))
def test_no_critical_or_serious_violation_in_the_apps_own_components(browser, server, screen):
    found = a11y.audit(browser, server.url, screen, prefix="test")
    print("\n" + a11y.report(found, screen))
    assert set(found) == set(a11y.TABS)
    assert not a11y.serious_in_app(found), "\n".join(a11y.serious_in_app(found))
    for tab in a11y.SCREENSHOT_TABS:
        assert (a11y.ARTIFACTS / f"test-{tab.lower()}-{screen}.png").stat().st_size > 10_000, tab


def test_prediction_grids_say_what_they_show(page):
    """Each Compare prediction grid's image has a text alternative naming the method and each image's answer."""
    from playwright.sync_api import expect
    for side, name in (("left", "baseline"), ("right", "batchnorm")):
        words = rf"^{re.escape(METHODS[name].title)}'s predictions on 12 test images: \d+ of 12 right; T-shirt/top → "
        expect(page.locator(f"#preds-{side} img")).to_have_attribute("alt", re.compile(words))


def test_example_buttons_have_names_and_classify(page):
    """Each example is a button named by its class (and for a photo-like one, what was done to it); clicking one
    classifies it. (Gradio adds its icon's alt, "<name> icon", to the name.)"""
    from playwright.sync_api import expect
    page.get_by_role("tab", name="Classify").click()
    buttons = page.locator("#examples button")
    expect(buttons).to_have_count(14)
    for name in ("Sneaker", "Ankle boot", "Sneaker, photo-like (light background)"):
        button = buttons.filter(has=page.get_by_text(name, exact=True))
        expect(button).to_have_accessible_name(re.compile("^" + re.escape(name).replace("\\ ", " ")))
    buttons.filter(has=page.get_by_text("Sneaker", exact=True)).click()
    expect(page.locator("[data-testid=label]").nth(1)).to_contain_text("Sneaker")  # the right method: BatchNorm
