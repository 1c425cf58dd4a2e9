"""core.evaluate's photo-robustness measure: photo-like versions of real test images, and how often a model
gives them the same prediction as the originals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core import evaluate as E
from core.data import SAMPLE_PATH
from core.models import DeepMLP, ModelConfig


@pytest.fixture(scope="module")
def sample():
    with np.load(SAMPLE_PATH, allow_pickle=False) as f:
        return f["images"], f["labels"]


def test_photo_like_kinds_are_rgb_photos(sample):
    image = sample[0][0]
    for kind in E.KINDS:
        photo = E.photo_like(image, np.random.default_rng(1), kind)
        assert isinstance(photo, Image.Image) and photo.mode == "RGB" and min(photo.size) >= 150
        again = E.photo_like(image, np.random.default_rng(1), kind)
        assert np.array_equal(np.asarray(photo), np.asarray(again))  # deterministic given the generator
    light = np.asarray(E.photo_like(image, np.random.default_rng(1), "light_background").convert("L"))
    assert light[0, 0] == 255
    # light_on_light: a light item, lighter still than its light background
    lol = np.asarray(E.photo_like(image, np.random.default_rng(1), "light_on_light").convert("L"), np.float64)
    ink = np.asarray(Image.fromarray(image).resize(lol.shape[::-1], Image.Resampling.BICUBIC)) > 128
    assert 150 < np.median(lol[~ink]) < np.median(lol[ink]) - 15
    with pytest.raises(ValueError):
        E.photo_like(image, np.random.default_rng(1), "sepia")


@pytest.fixture
def one_thread():
    # Tiny matmuls gain nothing from threads, and on a busy CPU the thread hand-offs make them ~100x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_photo_robustness_with_a_tiny_model(sample, one_thread):
    images, labels = sample
    torch.manual_seed(0)
    model = DeepMLP(ModelConfig(depth=2, activation="relu", init_std=0.05))
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(100):
        batch = torch.randint(0, len(y), (64,))
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    result = E.photo_robustness(lambda t: model(t).argmax(1), images, labels)
    assert set(result) == {"per_kind", "agreement", "n", "accuracy_original", "accuracy_photo", "relative"}
    assert set(result["per_kind"]) == set(E.KINDS)
    assert result["n"] >= 50
    assert 0.0 <= result["agreement"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in result["per_kind"].values())
    assert result["accuracy_original"] > 0.5  # the tiny model learned something...
    assert result["agreement"] > 0.6  # ...and the pipeline carries most of it over to photos
    assert result["relative"] == pytest.approx(result["accuracy_photo"] / result["accuracy_original"])
