"""core.preprocess: a decoded picture -> the 28x28 model input. Real FashionMNIST images come back nearly
unchanged, photos of items end up like them, and odd files (tests/imagefiles.py) come out right.

Refusals and the decoding itself are checked in test_upload.py, the photo-robustness measure in test_evaluate.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core import preprocess as P
from core.data import SAMPLE_PATH
from tests import imagefiles as F
from tests.imagefiles import encode


@pytest.fixture(scope="module")
def sample():
    with np.load(SAMPLE_PATH, allow_pickle=False) as f:
        return f["images"], f["labels"]


def assert_valid(result):
    x, preview = result
    assert x.dtype == torch.float32 and x.shape == (1, 784)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert preview.dtype == np.uint8 and preview.shape == (28, 28)
    assert torch.equal(x, torch.from_numpy(preview.astype(np.float32) / 255).reshape(1, 784))
    return preview


# --- odd but legitimate files, decoded and normalised ---

def test_one_pixel(tmp_path):
    path = F.one_pixel_png(tmp_path / "dot.png")
    # a single pixel is all border, so it is the background: nothing stands out, and the input is black
    assert assert_valid(P.preprocess(path)).max() == 0


def test_extreme_aspect_ratio(tmp_path):
    path = F.strip_png(tmp_path / "strip.png")  # 4000x10, a thin bright bar: rows 3-6, columns 100-3899
    preview = assert_valid(P.preprocess(path))
    assert preview[14].max() > 200  # the bar spans the frame horizontally...
    assert preview[:10].max() == 0 and preview[-10:].max() == 0  # ...as a thin line in the middle


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.zeros((40, 40), np.uint16)
    a[5:35, 10:30] = 40000  # 61% of full scale: what F.gray16_png draws by default
    path = F.gray16_png(tmp_path / "deep.png")
    preview = assert_valid(P.preprocess(path))
    assert preview[14, 14] > 200 and preview[14, 0] == 0  # a light item on black, not a white sheet
    assert np.array_equal(preview, P.preprocess(np.round(a / 257).astype(np.uint8))[1])  # as if 8-bit


def test_cmyk_jpeg(tmp_path):
    path = F.cmyk_jpeg(tmp_path / "print.jpg")  # white paper, a black rectangle (20, 10, 40, 50)
    preview = assert_valid(P.preprocess(path))
    assert preview[14, 14] > 200 and preview[14, 0] < 20  # inverted: light item, black sides


def test_transparent_pixels_are_background(tmp_path):
    path = F.rgba_cutout_png(tmp_path / "cutout.png")  # opaque dark-grey item, transparent red around it
    preview = assert_valid(P.preprocess(path))
    assert preview[14, 14] > 200 and preview[14, 0] == 0


def test_animated_gif_uses_first_frame(tmp_path, sample):
    first = np.zeros((40, 40), np.uint8)
    first[:, :20] = 255  # F.animated_gif's default first frame
    path = F.animated_gif(tmp_path / "anim.gif")
    assert np.array_equal(assert_valid(P.preprocess(path)), P.preprocess(first)[1])
    # with two real items as frames the choice shows: the input is the first item, exactly
    images = sample[0]
    path = F.animated_gif(tmp_path / "items.gif", [images[0], images[1]])
    assert np.array_equal(assert_valid(P.preprocess(path)), images[0])


def test_numpy_and_pil_sources(sample):
    image = sample[0][0]
    expected = P.preprocess(image)[1]
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((28, 28, 1), 255, np.uint8)], axis=2)
    for source in (rgb, rgba, Image.fromarray(image), encode(Image.fromarray(image), "PNG")):
        assert np.array_equal(assert_valid(P.preprocess(source)), expected)


# --- what the model sees ---

def test_real_images_come_back_nearly_unchanged(sample):
    images = sample[0]
    previews = np.stack([assert_valid(P.to_model_input(Image.fromarray(a))) for a in images])
    diff = np.abs(previews.astype(int) - images.astype(int)).mean(axis=(1, 2))
    assert diff.mean() < 1.0  # grey levels, averaged over all 1000 images
    assert (diff == 0).mean() > 0.85  # most are exactly unchanged
    # The rest are the dataset's own off-by-one: a few items are 27 px long or a pixel off centre.


def test_light_background_is_inverted(sample):
    image = sample[0][7]
    photo = Image.fromarray(255 - image).resize((280, 280), Image.Resampling.NEAREST)
    preview = assert_valid(P.preprocess(photo))
    assert np.abs(preview.astype(int) - image).mean() < 8
    assert np.corrcoef(preview.ravel(), image.ravel())[0, 1] > 0.95


def test_light_item_on_a_light_textured_background(sample):
    # A white sneaker on a beige cloth: the item is lighter than its light background, which is striped.
    # Negating it as a product photo would make the item dark and the stripes the "item".
    image = sample[0][790]
    big = np.asarray(Image.fromarray(image).resize((336, 336), Image.Resampling.BICUBIC), np.float64) / 255
    y, x = np.mgrid[0:336, 0:336]
    stripes = 10 * np.sin(2 * np.pi * (x + y) / 5.0) * (big < 0.05)  # on the background only: the item hides it
    cloth = np.array([205.0, 196.0, 180.0])
    photo = cloth + (np.array([250.0, 250.0, 246.0]) - cloth) * big[:, :, None] + stripes[:, :, None]
    preview = assert_valid(P.preprocess(np.clip(np.round(photo), 0, 255).astype(np.uint8)))
    assert np.corrcoef(preview.ravel(), image.ravel())[0, 1] > 0.95
    assert preview[image == 0].mean() < 10  # the stripes are gone, not amplified into texture


def test_item_that_differs_in_hue_only(sample):
    # A red item on a green background of nearly the same grey level: a grey conversion sees almost nothing.
    # It must come out as the same item photographed white on black does.
    image = sample[0][3]
    big = np.asarray(Image.fromarray(image).resize((280, 280), Image.Resampling.BICUBIC), np.float64) / 255
    green, red = (60, 150, 60), (200, 85, 60)
    grey = lambda rgb: Image.new("RGB", (1, 1), rgb).convert("L").getpixel((0, 0))
    assert abs(grey(green) - grey(red)) < 5
    photo = np.array(green) + (np.array(red) - np.array(green)) * big[:, :, None]
    preview = assert_valid(P.preprocess(np.clip(np.round(photo), 0, 255).astype(np.uint8)))
    white_on_black = P.preprocess(np.clip(np.round(255 * big), 0, 255).astype(np.uint8))[1]
    assert np.abs(preview.astype(int) - white_on_black).mean() < 2
    assert np.corrcoef(preview.ravel(), image.ravel())[0, 1] > 0.9


def test_grey_noisy_background_becomes_black(sample):
    image = sample[0][3]
    rng = np.random.default_rng(0)
    big = np.asarray(Image.fromarray(image).resize((300, 300), Image.Resampling.BICUBIC), np.float64)
    photo = np.clip(60 + big * 0.7 + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)
    preview = assert_valid(P.preprocess(photo))
    background = image == 0
    assert np.median(preview[background]) == 0 and preview[background].mean() < 15
    assert np.corrcoef(preview.ravel(), image.ravel())[0, 1] > 0.9


def test_off_centre_item_is_centred_and_fills_the_frame(sample):
    image = sample[0][10]
    canvas = np.zeros((400, 300), np.uint8)
    canvas[20:132, 170:282] = np.asarray(Image.fromarray(image).resize((112, 112), Image.Resampling.NEAREST))
    preview = assert_valid(P.preprocess(canvas))
    rows, cols = np.flatnonzero(preview.any(1)), np.flatnonzero(preview.any(0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 27  # fills the frame like the dataset
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1
    assert np.abs(preview.astype(int) - image).mean() < 8


def test_nothing_to_find_gives_a_black_input():
    assert assert_valid(P.preprocess(Image.new("RGB", (50, 50), (128, 128, 128)))).max() == 0
