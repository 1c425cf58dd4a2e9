"""The launched app, called through gradio_client the way the README documents."""
import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from PIL import Image

from conftest import BROKEN, ROOT
from core.methods import METHODS

EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def test_api_names_the_two_endpoints(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == {"/compare", "/classify"}


def test_compare_returns_cards_figures_and_epoch_range(client, app_checkpoints):
    card_l, card_r, flow, curves, change, preds_l, preds_r, slider = client.predict(
        "baseline", "relu", api_name="/compare")
    metrics = json.loads((app_checkpoints / "relu" / "metrics.json").read_text())
    assert card_l.startswith("### " + METHODS["baseline"].title) and "Test accuracy" in card_l
    assert f"**Test accuracy {metrics['test_acc']:.2%}**" in card_r
    for path in (flow, curves, change, preds_l, preds_r):
        with Image.open(path) as im:
            assert im.width >= 400 and im.height >= 200
    assert slider["maximum"] == metrics["epochs"] and slider["value"] == metrics["epochs"]


def test_compare_any_two_methods(client):
    card_l, card_r, *_ = client.predict("layerwise", "grad_norm", api_name="/compare")
    assert METHODS["layerwise"].title in card_l and METHODS["grad_norm"].title in card_r


def test_broken_checkpoint_is_explained_and_the_rest_work(client, app_checkpoints):
    card_l, card_r, *_ = client.predict(BROKEN, "baseline", api_name="/compare")
    assert "Unavailable" in card_l and f"python -m core.train --method {BROKEN}" in card_l
    assert str(app_checkpoints / BROKEN / "model.safetensors") in card_l
    assert "Test accuracy" in card_r


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

