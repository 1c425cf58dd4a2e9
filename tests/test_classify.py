"""ui.classify without Gradio, the one path of the Classify tab, /classify and /explain: an upload read once,
both methods' top classes and input-gradient maps, on the committed checkpoints (one of them corrupted:
conftest's app_checkpoints). Also the About tab's diagnostics section, whose examples quote the committed
metrics.json."""
import json
import time

import numpy as np
import pytest
import torch

import ui.classify
from core.data import CLASSES, to_images
from core.explain import gradient_map, render_colorbar, render_map, shared_scale
from core.methods import METHODS
from core.preprocess import preprocess
from core.upload import ImageError
from tests.helpers import BROKEN, ROOT
from ui import pages
from ui.classify import Explanation, enlarged, explain, labelled_colorbar, read, top_classes
from ui.lab import Lab

EXAMPLES = ROOT / "assets" / "examples"
SNEAKER = EXAMPLES / "7_sneaker.png"


@pytest.fixture(scope="module")
def lab(app_checkpoints):
    return Lab(app_checkpoints)


def blocks_of(image: np.ndarray, side: int = 28) -> np.ndarray:
    """The side x side picture an upscaled image was drawn from; fails unless every block is one colour."""
    k = image.shape[0] // side
    assert image.shape[:2] == (side * k, side * k)
    small = image[::k, ::k]
    assert (np.repeat(np.repeat(small, k, axis=0), k, axis=1) == image).all(), "not square blocks"
    return small


def test_explain_baseline_vs_batchnorm_on_an_example(lab):
    e = explain(read(lab, str(SNEAKER), "baseline", "batchnorm"))
    assert isinstance(e, Explanation)
    x, _ = preprocess(str(SNEAKER))
    found = [gradient_map(lab.entry(name).model, x) for name in ("baseline", "batchnorm")]
    scale = shared_scale(found[0][1], found[1][1])
    # core.explain's maps, both on the one scale of the two
    for ours, (_, grad, _, _) in zip(e.images, found, strict=True):
        assert ours.dtype == np.uint8 and ours.shape == (224, 224, 3)
        np.testing.assert_array_equal(ours, render_map(grad, scale))
        assert blocks_of(ours).shape == (28, 28, 3)
    base, bn = e.numbers
    for side, name, (predicted, _, input_grad, hidden1) in zip(e.numbers, ("baseline", "batchnorm"), found):
        assert side == {"method": name, "title": METHODS[name].title, "available": True,
                        "predicted": CLASSES[predicted], "input_grad_mean_abs": input_grad,
                        "hidden1_grad_mean_abs": hidden1, "scale": list(scale), "error": None}
    # the vanished gradient: orders of magnitude apart, at the input and at hidden layer 1
    assert base["input_grad_mean_abs"] < 1e-4 * bn["input_grad_mean_abs"]
    assert base["hidden1_grad_mean_abs"] < 1e-4 * bn["hidden1_grad_mean_abs"]
    assert bn["input_grad_mean_abs"] > 1e-2
    # so the baseline's map is near-empty (the colormap's dark end) next to BatchNorm's
    brightness = [im.astype(float).mean() for im in e.images]
    assert brightness[0] < 0.5 * brightness[1]
    # its prediction is the top class /classify gives for the same upload
    top_left, top_right = top_classes(read(lab, str(SNEAKER), "baseline", "batchnorm"))
    assert bn["predicted"] == next(iter(top_right))
    # the colour bar: the shared scale with its ticks, RGB, wide
    assert e.colorbar.dtype == np.uint8 and e.colorbar.ndim == 3 and e.colorbar.shape[1] > 5 * e.colorbar.shape[0]
    np.testing.assert_array_equal(e.colorbar, labelled_colorbar(scale))
    # the words under the maps carry the same numbers
    assert e.cards[0].startswith(f"**{METHODS['baseline'].title}** predicts **{base['predicted']}**")
    for card, side in zip(e.cards, e.numbers, strict=True):
        assert pages.power_of_ten(side["input_grad_mean_abs"]) in card
        assert pages.power_of_ten(side["hidden1_grad_mean_abs"]) in card
    assert "eval mode" in e.note and "running mean and variance" in e.note
    assert "Custom" not in e.note and "Only one map" not in e.note


def test_labelled_colorbar_holds_the_bar():
    scale = (1e-9, 1.0)
    img = labelled_colorbar(scale, length=400, zoom=2)
    bar = render_colorbar(scale, 800, thickness=32)
    # the bar itself is drawn in unchanged, once, under the caption (60 px from each side)
    assert img.shape[1] == 800 + 2 * 60
    rows = [y for y in range(img.shape[0] - 31) if (img[y:y + 32, 60:860] == bar).all()]
    assert len(rows) == 1 and rows[0] > 20  # the caption above it


def test_explain_one_side_unavailable(lab):
    e = explain(read(lab, str(SNEAKER), BROKEN, "baseline"))
    broken = lab.entry(BROKEN)
    assert e.images[0] is None and e.images[1].shape == (224, 224, 3)
    assert e.numbers[0] == {"method": BROKEN, "title": METHODS[BROKEN].title, "available": False,
                            "predicted": None, "input_grad_mean_abs": None, "hidden1_grad_mean_abs": None,
                            "scale": e.numbers[1]["scale"], "error": broken.error}
    assert e.cards[0] == f"**{METHODS[BROKEN].title}**: **no map**, its checkpoint is unavailable. {broken.error}"
    assert f"python -m core train --method {BROKEN}" in e.cards[0]
    # the scale is the available map's alone
    x, _ = preprocess(str(SNEAKER))
    _, grad, input_grad, _ = gradient_map(lab.entry("baseline").model, x)
    assert e.numbers[1]["scale"] == list(shared_scale(grad))
    assert e.numbers[1]["input_grad_mean_abs"] == input_grad
    np.testing.assert_array_equal(e.images[1], render_map(grad, shared_scale(grad)))
    assert "Only one map: the colour scale spans its own values" in e.note  # so its colours are not its size
    # neither side available: no maps, no bar, and still no crash
    none = explain(read(lab, str(SNEAKER), BROKEN, BROKEN))
    assert none.images == (None, None) and none.colorbar is None
    assert [n["available"] for n in none.numbers] == [False, False]


def test_one_preprocessing_and_clear_errors(lab, monkeypatch, tmp_path):
    calls = []

    def counted(image):
        calls.append(image)
        return preprocess(image)
    monkeypatch.setattr(ui.classify, "preprocess", counted)
    r = read(lab, str(SNEAKER), "baseline", "batchnorm")  # what the page's event does, once, for all it shows
    assert len(calls) == 1 and r.x.shape == (1, 784) and r.preview.shape == (28, 28)
    assert explain(r).numbers == explain(read(lab, str(SNEAKER), "baseline", "batchnorm")).numbers
    assert top_classes(r) == top_classes(read(lab, str(SNEAKER), "baseline", "batchnorm"))
    assert len(calls) == 3
    # unknown names fail before any decoding; no image and a non-image are ImageErrors, the visitor's messages
    with pytest.raises(ValueError, match="'nope' is not a method here; choose one of: baseline"):
        read(lab, str(SNEAKER), "baseline", "nope")
    with pytest.raises(ImageError, match="^Upload, paste or pick an image first$"):
        read(lab, None, "baseline", "batchnorm")
    assert len(calls) == 3
    bad = tmp_path / "shirt.png"
    bad.write_text("this is not a png")
    with pytest.raises(ImageError, match="not an image"):
        read(lab, str(bad), "baseline", "batchnorm")


def test_explain_is_read_only_and_works_under_no_grad(lab):
    model = lab.entry("batchnorm").model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        e = explain(read(lab, str(EXAMPLES / "1_trouser.png"), "batchnorm", "custom_norm"))
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(n["available"] for n in e.numbers)


def test_classify_gives_top5_for_both_and_the_model_view(lab):
    sneaker = to_images(lab.sample.x[int(torch.nonzero(lab.sample.y == 7)[0])])[0]  # a real one, as an array
    left, right = top_classes(read(lab, sneaker, "baseline", "batchnorm"))
    left = left["confidences"]  # baseline answers the same for every image: "No prediction" above them
    assert len(left) == 5 and len(right) == 5 and next(iter(right)) == "Sneaker"
    assert list(left.values()) == sorted(left.values(), reverse=True) and 0.99 < sum(right.values()) <= 1.0001
    seen = read(lab, sneaker, "baseline", "batchnorm").preview
    assert seen.shape == (28, 28) and seen.dtype == np.uint8
    big = enlarged(seen)
    assert big.shape == (224, 224) and (big[::8, ::8] == seen).all() and (big[7::8, 7::8] == seen).all()
    # a broken method gives no probabilities rather than failing the other side
    broken, ok = top_classes(read(lab, sneaker, BROKEN, "baseline"))
    assert broken == {} and len(ok["confidences"]) == 5


def test_one_explanation_is_fast(lab):
    """Both maps, rendered with their colour bar, on one torch thread as the app runs (app.py; VGL_TORCH_THREADS)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = read(lab, str(SNEAKER), "baseline", "batchnorm")
        explain(r)  # warm-up
        times = []
        for _ in range(10):
            start = time.perf_counter()
            explain(r)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert np.median(times) < 0.1, times


def test_note_says_what_the_map_means_for_each_normalisation():
    note = pages.gradient_note([METHODS["baseline"], METHODS["relu"]])
    assert note == "*Every model runs as deployed (eval mode) on this one image.*"
    note = pages.gradient_note([METHODS["custom_norm"], METHODS["grad_norm"]])
    assert "this image's own mean and std over its 128 units" in note and "96.5%" in note
    assert "raw derivative" in note and "BatchNorm" not in note
    note = pages.gradient_note([METHODS["batchnorm"], METHODS["best"]])
    assert note.count("running mean and variance") == 1
    assert f"**{METHODS['batchnorm'].title} and {METHODS['best'].title}:**" in note


def test_custom_norm_agreement_quoted_in_the_note(lab):
    """The note's 96.5%: the custom normalization's prediction on one image vs inside the sample's batch."""
    model, sample = lab.entry("custom_norm").model, lab.sample
    with torch.no_grad():
        batch = model(sample.x).argmax(1)
        single = torch.cat([model(x[None]).argmax(1) for x in sample.x])
    agree = float((batch == single).float().mean())
    assert f"{agree:.1%}" in pages.gradient_note([METHODS["custom_norm"]])


def test_power_of_ten():
    assert pages.power_of_ten(3.88e-08) == "3.9 × 10⁻⁸"
    assert pages.power_of_ten(0.2865) == "2.9 × 10⁻¹"
    assert pages.power_of_ten(12.0) == "1.2 × 10¹"
    assert pages.power_of_ten(0.0) == "0"


# --- About: the diagnostics section quotes the committed metrics.json -----------------------------------
def _last(name: str, layer: str, key: str) -> float:
    metrics = json.loads((ROOT / "checkpoints" / name / "metrics.json").read_text())
    return next(row for row in metrics["history"][-1]["layers"] if row["name"] == layer)[key]


def test_about_explains_every_diagnostic_with_committed_numbers():
    about = pages.about()
    section = " ".join(about[about.index("## Reading the diagnostics"):about.index("## The cures")].split())
    for name in ("Weight gradient, mean |∂L/∂W|", "Backpropagated error, mean |∂L/∂z|", "Update-to-weight ratio",
                 "Saturation share", "Activation std", "Relative weight change ‖W − W₀‖ / ‖W₀‖",
                 "Input-gradient map"):
        assert f"**{name}" in section, name
    quoted = [("baseline", "hidden1", "grad_mean_abs"), ("baseline", "output", "grad_mean_abs"),
              ("batchnorm", "hidden1", "grad_mean_abs"), ("batchnorm", "output", "grad_mean_abs"),
              ("baseline", "output", "update_ratio"), ("baseline", "hidden1", "update_ratio"),
              ("baseline", "hidden1", "rel_weight_change"), ("baseline", "hidden1", "error_mean_abs"),
              ("baseline", "output", "error_mean_abs"), ("batchnorm", "hidden1", "error_mean_abs"),
              ("batchnorm", "output", "error_mean_abs")]
    for q in quoted:
        assert pages.power_of_ten(_last(*q)) in section, q
    bn_ratios = [_last("batchnorm", f"hidden{i}", "update_ratio") for i in range(1, 8)]
    assert f"between {pages.power_of_ten(min(bn_ratios))} and {pages.power_of_ten(max(bn_ratios))}" in section
    assert f"output layer {_last('baseline', 'output', 'rel_weight_change'):.2g}" in section
    assert f"BatchNorm's first layer {_last('batchnorm', 'hidden1', 'rel_weight_change'):.2g}" in section
    saturation = [_last("weight_std_10", f"hidden{i}", "saturation") for i in range(1, 8)]
    assert min(saturation) >= 0.99 and "99–100% saturated" in section
    test_acc = json.loads((ROOT / "checkpoints" / "weight_std_10" / "metrics.json").read_text())["test_acc"]
    assert f"stays at {test_acc:.1%}" in section
    assert all(_last("baseline", f"hidden{i}", "saturation") == 0 for i in range(1, 8))
    for name, words in (("baseline", "the baseline's hidden layers spread"), ("batchnorm", "and BatchNorm's"),
                        ("weight_std_10", "but init std 10's reach")):
        stds = [_last(name, f"hidden{i}", "activation_std") for i in range(1, 8)]
        assert f"{words} {min(stds):.2f}–{max(stds):.2f}" in section, name


def test_about_quotes_the_example_sneaker_gradients(lab):
    e = explain(read(lab, str(SNEAKER), "baseline", "batchnorm"))
    about = " ".join(pages.about().split())
    base, bn = (pages.power_of_ten(n["input_grad_mean_abs"]) for n in e.numbers)
    assert f"baseline's mean is {base} against BatchNorm's {bn}" in about


# ------------------------------------------------------------------------------- not clothing, no prediction

def test_a_model_that_answers_the_same_for_every_image_gives_no_prediction(lab):
    """baseline's probabilities do not depend on the image (output spread 5e-8 over the sample): its headline is
    "No prediction", its probabilities are still there; a model that learned keeps its top class."""
    image = to_images(lab.sample.x[:1])[0]
    r = read(lab, image, "baseline", "batchnorm")
    assert r.constant == (True, False)
    left, right = top_classes(r)
    assert left["headline"] == ui.classify.NO_PREDICTION and len(left["confidences"]) == 5
    assert "headline" not in right and len(right) == 5
    words = ui.classify.notice(r)
    assert "Baseline (sigmoid, 7x128): no prediction" in words and "BatchNorm1d: no prediction" not in words


def test_a_picture_that_is_not_clothing_is_said_so_and_still_answered(lab):
    """Noise is flagged by core.ood's detector (the page says so above the answers, which it still shows); a real
    test image the detector does not flag gets no such notice."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    r = read(lab, noise, "relu", "batchnorm")
    assert r.unlike_clothing is True and "does not look like a FashionMNIST clothing item" in ui.classify.notice(r)
    assert all(len(side) == 5 for side in top_classes(r))  # what the models would say anyway
    from core import ood
    detector = ood.committed()
    typical = next(i for i in range(len(lab.sample.x)) if not detector.flags(lab.sample.x[i:i + 1])[0])
    clothing = read(lab, to_images(lab.sample.x[typical:typical + 1])[0], "relu", "batchnorm")
    assert clothing.unlike_clothing is False and ui.classify.notice(clothing) == ""
