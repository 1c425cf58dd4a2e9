"""The Classify tab's examples (assets/examples/) are exactly what core.examples' rule picks: per class the
committed sample's test image the "not clothing" detector finds most typical, chosen without any model."""
import io

import numpy as np
import pytest
from PIL import Image

from core import examples, ood
from core.data import CLASSES, load_sample, to_images
from core.preprocess import preprocess


@pytest.fixture(scope="module")
def made():
    return examples.files(load_sample(), ood.committed())


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_the_folder_holds_exactly_the_rules_examples(made):
    assert sorted(p.name for p in examples.FOLDER.iterdir()) == sorted(made)
    assert len(made) == len(CLASSES) + len(examples.PHOTOS)


def test_each_committed_file_is_what_the_rule_makes(made):
    for name, image in made.items():
        with Image.open(examples.FOLDER / name) as committed:
            if name.endswith(".jpg"):  # what write() saves, decoded as a visitor's browser and the app decode it
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=examples.JPEG_QUALITY)
                image = Image.open(buffer)
            np.testing.assert_array_equal(pixels(committed), pixels(image), err_msg=name)


def test_the_rule_picks_each_class_lowest_detector_score():
    sample, detector = load_sample(), ood.committed()
    picked = examples.typical(sample, detector)
    scores = detector.score(ood.as_uploads(to_images(sample.x))).numpy()
    labels = sample.y.numpy()
    for c, i in enumerate(picked):
        assert labels[i] == c
        assert scores[i] == scores[labels == c].min() and np.isfinite(scores[i])
    assert picked != [int(np.flatnonzero(labels == c)[1]) for c in range(len(CLASSES))]  # not the old picks


def test_each_example_is_a_real_test_image_of_its_class_not_flagged():
    sample, detector = load_sample(), ood.committed()
    images = to_images(sample.x)
    for path in sorted(examples.FOLDER.iterdir()):
        c, kind = examples.named(path.name)
        x, _ = preprocess(str(path))
        assert not detector.flags(x)[0], f"{path.name}: the detector flags it as not clothing"
        if kind is None:  # the 28x28 test image itself, 4x enlarged
            small = np.asarray(Image.open(path))[::examples.SCALE, ::examples.SCALE]
            same = [i for i in range(len(images)) if (images[i] == small).all()]
            assert same and all(int(sample.y[i]) == c for i in same), path.name


def test_names():
    assert examples.named("7_sneaker.png") == (7, None)
    assert examples.named("photo_7_sneaker_light_background.jpg") == (7, "light_background")
    assert examples.slug(0) == "t-shirt_top" and examples.slug(9) == "ankle_boot"
    with pytest.raises(ValueError, match="not an example"):
        examples.named("sneaker.gif")
