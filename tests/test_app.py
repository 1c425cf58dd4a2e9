"""The launched app, called through gradio_client the way the README documents."""
import json

import pytest
from gradio_client import handle_file
from PIL import Image

from core import pages
from core.lab import Lab
from core.methods import METHODS
from tests.helpers import BROKEN, ROOT

pytestmark = pytest.mark.app  # every test here calls the launched app

EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def lab(app_checkpoints):
    """What the app computes, here in the test process: the values its answers must carry."""
    return Lab(app_checkpoints)


def _size(fig) -> tuple[int, int]:
    """The pixel size a figure renders at."""
    return tuple(round(v * fig.dpi) for v in fig.get_size_inches())


def test_api_names_the_two_endpoints(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == {"/compare", "/classify"}


def test_compare_returns_cards_figures_and_epoch_range(client, app_checkpoints, lab):
    card_l, card_r, flow, curves, change, preds_l, preds_r, slider = client.predict(
        "baseline", "relu", api_name="/compare")
    metrics = json.loads((app_checkpoints / "relu" / "metrics.json").read_text())
    assert (card_l, card_r) == (pages.card(lab.entry("baseline")), pages.card(lab.entry("relu")))
    assert card_l.startswith("### " + METHODS["baseline"].title)
    assert f"**Test accuracy {metrics['test_acc']:.2%}** (10,000 test images, seed {metrics['seed']})" in card_r
    c = lab.compare("baseline", "relu")
    expected = {flow: c.gradient_flow, curves: c.curves, change: c.weight_change,
                preds_l: lab.predictions("baseline"), preds_r: lab.predictions("relu")}
    for path, fig in expected.items():  # each output is its own figure, as a PNG of that figure's size
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == _size(fig), path
    assert slider["maximum"] == metrics["epochs"] and slider["value"] == metrics["epochs"]


def test_compare_any_two_methods(client, lab):
    card_l, card_r, *_ = client.predict("layerwise", "grad_norm", api_name="/compare")
    assert card_l == pages.card(lab.entry("layerwise")) and card_r == pages.card(lab.entry("grad_norm"))
    assert card_l.startswith(f"### {METHODS['layerwise'].title}\n") and " · 7 stages x " in card_l


def test_broken_checkpoint_is_explained_and_the_rest_work(client, app_checkpoints, lab):
    card_l, card_r, *_ = client.predict(BROKEN, "baseline", api_name="/compare")
    assert "Unavailable" in card_l and f"python -m core train --method {BROKEN}" in card_l
    assert str(app_checkpoints / BROKEN / "model.safetensors") in card_l
    assert card_l == pages.card(lab.entry(BROKEN)) and card_r == pages.card(lab.entry("baseline"))


def test_classify_real_image_with_two_models(client):
    left, right = client.predict(handle_file(str(EXAMPLES / "7_sneaker.png")), "baseline", "best",
                                 api_name="/classify")
    for out in (left, right):
        assert len(out["confidences"]) == 5
        values = [c["confidence"] for c in out["confidences"]]
        assert values == sorted(values, reverse=True) and sum(values) <= 1.0001
    assert right["label"] == "Sneaker"  # the strongest model gets a clear example right
    assert abs(left["confidences"][0]["confidence"] - 0.1) < 0.1  # the baseline is near chance


def test_classify_bad_file_gives_a_clear_message_and_server_keeps_serving(client, server, tmp_path):
    fake = tmp_path / "shirt.png"
    fake.write_text("definitely not a png")
    with pytest.raises(Exception, match="not an image"):
        client.predict(handle_file(str(fake)), "baseline", "relu", api_name="/classify")
    with pytest.raises(Exception, match="nope is not in the list of choices"):
        client.predict("nope", "relu", api_name="/compare")
    assert server.alive()
    left, _ = client.predict(handle_file(str(EXAMPLES / "1_trouser.png")), "baseline", "relu",
                             api_name="/classify")
    assert len(left["confidences"]) == 5

