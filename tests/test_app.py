"""The launched app, called through gradio_client the way the README documents."""
import json

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from core.methods import METHODS
from tests.helpers import BROKEN, ROOT
from ui import classify, compare, figures
from ui.lab import Lab

pytestmark = pytest.mark.app  # every test here calls the launched app

EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def lab(app_checkpoints):
    """What the app computes, here in the test process: the values its answers must carry."""
    return Lab(app_checkpoints)


def _rgb(path) -> bytes:
    with Image.open(path) as im:
        assert im.format == "PNG", path
        return im.convert("RGB").tobytes()


def test_api_names_the_endpoints(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(named) == {"/compare", "/classify", "/explain"}


def test_every_public_endpoint_is_a_described_mcp_tool(server):
    import urllib.request
    tools = json.loads(urllib.request.urlopen(server.url + "gradio_api/mcp/schema", timeout=30).read())
    assert {t["name"] for t in tools} == {"compare", "classify", "explain"}  # nothing private leaks
    for tool in tools:
        assert len(tool["description"]) > 80, tool["name"]
        properties = tool["inputSchema"]["properties"]
        assert {"left", "right"} <= set(properties) and all(p.get("description") for p in properties.values())
        assert properties["left"]["enum"] == list(METHODS)  # the registry's names, for an agent to choose from


def test_compare_returns_cards_figures_and_epoch_range(client, app_checkpoints, lab):
    # the chart's data comes last, after the outputs /compare always had (tests/test_compare.py checks it)
    card_l, card_r, flow, curves, change, preds_l, preds_r, slider, _chart = client.predict(
        "baseline", "relu", api_name="/compare")
    metrics = json.loads((app_checkpoints / "relu" / "metrics.json").read_text())
    assert (card_l, card_r) == (compare.card(lab, "baseline"), compare.card(lab, "relu"))
    assert card_l.startswith("### " + METHODS["baseline"].title)
    assert f"**Test accuracy {metrics['test_acc']:.2%}** (10,000 test images, seed {metrics['seed']})" in card_r
    c = compare.comparison(lab, "baseline", "relu")  # what this process makes of the same files: the same pixels
    for got, made in ((flow, c.gradient_flow), (curves, c.curves), (change, c.weight_change),
                      (preds_l, c.predictions[0]), (preds_r, c.predictions[1])):
        assert _rgb(got) == _rgb(made), got
    with Image.open(flow) as im:
        assert im.size == tuple(round(v * figures.DPI) for v in figures.FLOW_SIZE)
    assert slider["maximum"] == metrics["epochs"] and slider["value"] == metrics["epochs"]


def test_compare_any_two_methods(client, lab):
    card_l, card_r, *_ = client.predict("layerwise", "grad_norm", api_name="/compare")
    assert card_l == compare.card(lab, "layerwise") and card_r == compare.card(lab, "grad_norm")
    assert card_l.startswith(f"### {METHODS['layerwise'].title}\n") and " · 7 stages x " in card_l


def test_broken_checkpoint_is_explained_and_the_rest_work(client, app_checkpoints, lab):
    card_l, card_r, *_ = client.predict(BROKEN, "baseline", api_name="/compare")
    assert "Unavailable" in card_l and f"python -m core train --method {BROKEN}" in card_l
    assert f"**Unavailable:** {BROKEN}/model.safetensors: not a readable safetensors file" in card_l
    assert str(app_checkpoints) not in card_l  # files are named relative to the checkpoints folder
    assert card_l == compare.card(lab, BROKEN) and card_r == compare.card(lab, "baseline")


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
    with pytest.raises(Exception, match="Left method: .nope. is not a method here; choose one of: baseline"):
        client.predict("nope", "relu", api_name="/compare")
    assert server.alive()
    left, _ = client.predict(handle_file(str(EXAMPLES / "1_trouser.png")), "baseline", "relu",
                             api_name="/classify")
    assert len(left["confidences"]) == 5


# --- /classify's signature, /explain ---------------------------------------------------------------------
def _signature(client, endpoint: str) -> tuple[list, list]:
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"][endpoint]
    return ([(p["parameter_name"], p["component"]) for p in api["parameters"]],
            [(r["label"], r["component"]) for r in api["returns"]])


def test_classify_signature_is_unchanged(client):
    assert _signature(client, "/classify") == (
        [("image", "Image"), ("left", "Dropdown"), ("right", "Dropdown")],
        [("Left method", "Label"), ("Right method", "Label")])


def test_explain_signature(client):
    inputs, outputs = _signature(client, "/explain")
    assert inputs == [("image", "Image"), ("left", "Dropdown"), ("right", "Dropdown")]
    assert [c for _, c in outputs] == ["Image", "Image", "Image", "Json", "Json"]


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG", path  # lossless: the 28x28 squares and the colours arrive exactly
        return np.asarray(im.convert("RGB"))


def test_explain_example_baseline_vs_batchnorm(client, lab):
    sneaker = EXAMPLES / "7_sneaker.png"
    map_l, map_r, bar, numbers_l, numbers_r = client.predict(handle_file(str(sneaker)), "baseline", "batchnorm",
                                                             api_name="/explain")
    expected = classify.explain(classify.read(lab, str(sneaker), "baseline", "batchnorm"))
    for path, image in zip((map_l, map_r), expected.images, strict=True):
        got = _pixels(path)
        assert got.shape == (224, 224, 3)
        assert (np.repeat(np.repeat(got[::8, ::8], 8, axis=0), 8, axis=1) == got).all()  # 28x28 squares
        np.testing.assert_array_equal(got, image)
    np.testing.assert_array_equal(_pixels(bar), expected.colorbar)
    assert [numbers_l, numbers_r] == list(expected.numbers)  # JSON round-trips floats exactly
    assert numbers_l["method"] == "baseline" and numbers_r["method"] == "batchnorm"
    assert numbers_l["available"] and numbers_r["available"] and numbers_l["scale"] == numbers_r["scale"]
    # the baseline's gradient has vanished by the input: orders of magnitude below BatchNorm's
    assert numbers_l["input_grad_mean_abs"] < 1e-4 * numbers_r["input_grad_mean_abs"]
    assert numbers_l["hidden1_grad_mean_abs"] < 1e-4 * numbers_r["hidden1_grad_mean_abs"]
    assert numbers_r["input_grad_mean_abs"] > 1e-2
    # each side's predicted class is /classify's top class for the same upload and pair
    top_l, top_r = client.predict(handle_file(str(sneaker)), "baseline", "batchnorm", api_name="/classify")
    assert numbers_r["predicted"] == top_r["label"]


def test_explain_unavailable_method_has_a_note_not_a_crash(client, server, lab):
    map_l, map_r, bar, numbers_l, numbers_r = client.predict(
        handle_file(str(EXAMPLES / "1_trouser.png")), BROKEN, "relu", api_name="/explain")
    assert map_l is None and _pixels(map_r).shape == (224, 224, 3) and bar is not None
    assert numbers_l["available"] is False and numbers_l["predicted"] is None
    assert numbers_l["error"] == lab.entry(BROKEN).error and f"python -m core train --method {BROKEN}" in numbers_l[
        "error"]
    assert numbers_r["available"] is True and numbers_r["predicted"] == "Trouser"
    assert server.alive()


def test_explain_bad_input_gives_the_classify_messages(client, server, tmp_path):
    fake = tmp_path / "shirt.png"
    fake.write_text("definitely not a png")
    for endpoint in ("/classify", "/explain"):
        with pytest.raises(Exception, match="Upload, paste or pick an image first"):
            client.predict(None, "baseline", "relu", api_name=endpoint)
        with pytest.raises(Exception, match=r"The file is text, not an image \(although its name ends in \.png\)"):
            client.predict(handle_file(str(fake)), "baseline", "relu", api_name=endpoint)
        with pytest.raises(Exception, match="Right method: .nope. is not a method here; choose one of: baseline"):
            client.predict(handle_file(str(EXAMPLES / "1_trouser.png")), "baseline", "nope", api_name=endpoint)
    assert server.alive()
    *_, numbers_l, _ = client.predict(handle_file(str(EXAMPLES / "1_trouser.png")), "baseline", "relu",
                                      api_name="/explain")
    assert numbers_l["available"]
