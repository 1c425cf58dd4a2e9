"""core.explain: input-gradient maps on real test images, checked against finite differences and the checkpoints."""

import numpy as np
import pytest
import torch

from core.checkpoint import ROOT, load_checkpoint
from core.data import load_sample
from core.explain import (
    _forward,
    _lut,
    _positions,
    gradient_map,
    render_colorbar,
    render_map,
    scale_ticks,
    shared_scale,
)
from core.models import DeepMLP, ModelConfig

COMMITTED = sorted(p.name for p in ROOT.iterdir() if (p / "config.json").is_file())


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def checkpoints():
    return {name: load_checkpoint(ROOT / name)[0] for name in COMMITTED}


def tiny(seed: int = 0, **config) -> DeepMLP:
    """A small float64 DeepMLP with non-trivial weights (and BatchNorm statistics), in eval mode."""
    torch.manual_seed(seed)
    model = DeepMLP(ModelConfig(**{"depth": 3, "width": 8, "init_std": 0.3, **config})).double()
    with torch.no_grad():
        for norm in model.norms:
            if isinstance(norm, torch.nn.BatchNorm1d):
                norm.running_mean.normal_(0, 0.5)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0, 0.2)
    return model.eval()


def logit(model: DeepMLP, x: torch.Tensor, c: int) -> float:
    with torch.no_grad():
        return float(_forward(model, x.reshape(1, -1), False)[0][0, c])


# --- What the maps measure ------------------------------------------------------------------------------
def test_baseline_gradient_is_orders_of_magnitude_below_batchnorm(sample, checkpoints):
    """The issue's claim on real test images: the sigmoid baseline's gradient has vanished by the input."""
    base, bn = checkpoints["baseline"], checkpoints["batchnorm"]
    ratios, hidden = [], []
    for x in sample.x[:50]:
        _, _, b_in, b_h1 = gradient_map(base, x)
        _, _, n_in, n_h1 = gradient_map(bn, x)
        ratios.append(b_in / n_in)
        hidden.append(b_h1 / n_h1)
    ratios, hidden = np.array(ratios), np.array(hidden)
    print(f"\nbaseline/batchnorm mean |d logit/d pixel| over 50 test images: median {np.median(ratios):.3g}, "
          f"range [{ratios.min():.3g}, {ratios.max():.3g}]; at z1: median {np.median(hidden):.3g}, "
          f"range [{hidden.min():.3g}, {hidden.max():.3g}]")
    assert np.median(ratios) < 1e-2
    assert np.median(hidden) < 1e-2


@pytest.mark.parametrize("config", [
    {},  # sigmoid, no norm: the baseline's shape
    {"norm": "batchnorm"},
    {"norm": "custom"},
    {"activation": "tanh", "skips": ((1, 3),)},
    {"activation": "relu", "norm": "batchnorm", "skips": ((1, 3),)},
    {"grad_norm": True},  # the default map is the raw derivative: GradientNorm switched off
], ids=["sigmoid", "batchnorm", "custom", "tanh-skip", "relu-bn-skip", "grad_norm"])
def test_map_and_hidden1_equal_finite_differences(config):
    model = tiny(**config)
    x = torch.rand(784, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    predicted, grad, input_grad, hidden1 = gradient_map(model, x)
    assert grad.dtype == np.float32 and grad.shape == (28, 28)
    eps = 1e-6
    for pixel in (0, 300, 407, 783):
        up, down = x.clone(), x.clone()
        up[pixel] += eps
        down[pixel] -= eps
        fd = (logit(model, up, predicted) - logit(model, down, predicted)) / (2 * eps)
        assert abs(fd) > 1e-6  # a pixel that matters, so the comparison means something
        assert grad.flat[pixel] == pytest.approx(abs(fd), rel=1e-5)
    assert input_grad == pytest.approx(float(grad.mean(dtype=np.float64)), rel=1e-12)
    # d logit / d z1 = d logit / d b1 (z1 = W1 x + b1): finite differences on the first layer's bias
    bias, fds = model.linears[0].bias, []
    for j in range(len(bias)):
        with torch.no_grad():
            bias[j] += eps
            up = logit(model, x, predicted)
            bias[j] -= 2 * eps
            down = logit(model, x, predicted)
            bias[j] += eps
        fds.append(abs(up - down) / (2 * eps))
    assert hidden1 == pytest.approx(float(np.mean(fds)), rel=1e-5)


def test_grad_norm_map_is_raw_by_default_and_normalised_on_request():
    model = tiny(grad_norm=True)
    x = torch.rand(1, 784, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c, raw, _, _ = gradient_map(model, x)
    _, normalised, _, _ = gradient_map(model, x, normalise_gradients=True)
    # normalised: what the model's own backward gives (GradientNorm rewriting the gradient at every layer)
    xx = x.clone().requires_grad_(True)
    own = torch.autograd.grad(model(xx)[0, c], xx)[0].abs().reshape(28, 28).numpy()
    np.testing.assert_allclose(normalised, own, rtol=1e-5, atol=1e-12)
    assert not np.allclose(raw, normalised, rtol=1e-2)


def test_committed_grad_norm_raw_and_normalised(sample, checkpoints):
    """Informational (the docstring quotes these): the committed grad_norm checkpoint's two maps."""
    model = checkpoints["grad_norm"]
    raw = np.median([gradient_map(model, x)[2] for x in sample.x[:20]])
    normalised = np.median([gradient_map(model, x, normalise_gradients=True)[2] for x in sample.x[:20]])
    print(f"\ngrad_norm checkpoint, median mean |gradient| at the input: raw {raw:.3g}, normalised {normalised:.3g}")
    assert raw < normalised


@pytest.mark.parametrize("name", COMMITTED)
def test_forward_matches_the_model(name, sample, checkpoints):
    """_forward is the model's own forward pass with hidden layer 1's pre-activation kept: same logits."""
    model, x = checkpoints[name], sample.x[:20]
    with torch.no_grad():
        expected = model(x)
        for normalise in (False, True):
            logits, z1 = _forward(model, x, normalise)
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(z1, model.linears[0](x))


@pytest.mark.parametrize("name", COMMITTED)
def test_maps_are_28x28_finite_non_negative(name, sample, checkpoints):
    model = checkpoints[name]
    images = [*sample.x[:5], torch.zeros(784), torch.ones(784)]  # real images, all black, all white
    for x in images:
        predicted, grad, input_grad, hidden1 = gradient_map(model, x)
        assert grad.shape == (28, 28) and grad.dtype == np.float32
        assert np.isfinite(grad).all() and (grad >= 0).all()
        assert np.isfinite(input_grad) and input_grad >= 0 and np.isfinite(hidden1) and hidden1 >= 0
        with torch.no_grad():
            assert predicted == int(model(x.reshape(1, -1)).argmax())


# --- No side effects ---------------------------------------------------------------------------------------
def test_no_grad_no_mode_change_no_hooks(sample, checkpoints):
    model = checkpoints["batchnorm"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = gradient_map(model, sample.x[0])
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    # A model in training mode (one submodule left in eval) is explained in eval mode and handed back as it was
    model.train()
    model.norms[2].eval()
    modes = [m.training for m in model.modules()]
    try:
        during = gradient_map(model, sample.x[0])
        assert [m.training for m in model.modules()] == modes
    finally:
        model.eval()
    assert during[0] == before[0] and np.array_equal(during[1], before[1])
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # running statistics untouched: BatchNorm never ran in training mode
        assert torch.equal(v, state[k]), k


def test_works_under_no_grad_and_inference_mode(sample, checkpoints):
    model, x = checkpoints["custom_norm"], sample.x[3:4]
    expected = gradient_map(model, x)
    with torch.no_grad():
        under_no_grad = gradient_map(model, x)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        under_inference = gradient_map(model, x.clone())  # an inference tensor as input
        assert torch.is_inference_mode_enabled()
    for got in (under_no_grad, under_inference):
        assert got[0] == expected[0] and np.array_equal(got[1], expected[1]) and got[2:] == expected[2:]


def test_bad_input_is_refused():
    model = tiny()
    with pytest.raises(ValueError, match="784"):
        gradient_map(model, torch.zeros(1, 783))
    with pytest.raises(ValueError, match="NaN"):
        gradient_map(model, torch.full((1, 784), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gradient_map(model, torch.full((1, 784), 255.0))  # a uint8-scale image


# --- The shared scale and the rendering ------------------------------------------------------------------
def test_shared_scale_puts_equal_values_at_equal_colours():
    rng = np.random.default_rng(0)
    faint = rng.lognormal(np.log(3e-8), 1.0, (28, 28)).astype(np.float32)  # a baseline-like map
    bright = rng.lognormal(np.log(0.15), 1.0, (28, 28)).astype(np.float32)  # a batchnorm-like map
    bright[0, 0], bright[27, 27] = faint[5, 6], faint[20, 3]  # values that occur in both maps
    scale = shared_scale(faint, bright)
    vmin, vmax = scale
    assert vmin <= np.percentile(faint, 1) and vmax >= np.percentile(bright, 99)
    a, b = render_map(faint, scale, upscale=4), render_map(bright, scale, upscale=4)
    assert a.shape == b.shape == (112, 112, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(b[0:4, 0:4], a[20:24, 24:28])  # bright[0, 0] == faint[5, 6]
    np.testing.assert_array_equal(b[108:112, 108:112], a[80:84, 12:16])  # bright[27, 27] == faint[20, 3]
    block = a[20:24, 24:28].reshape(-1, 3)
    assert (block == block[0]).all()  # nearest-neighbour upscaling: one colour per pixel
    lut = _lut("magma")
    assert (render_map(np.array([[0.0, vmin / 10, vmin]]), scale, 1) == lut[0]).all()  # at or below vmin: low end
    assert (render_map(np.array([[vmax, vmax * 10]]), scale, 1) == lut[-1]).all()  # at or above vmax: top
    # logarithmic: the geometric middle of the scale is the colormap's middle, and every decade is one step
    middle = vmin * (vmax / vmin) ** 0.5
    np.testing.assert_allclose(_positions(np.array([vmin, middle, vmax]), scale), [0, 0.5, 1], atol=1e-12)
    decade = 1 / np.log10(vmax / vmin)
    np.testing.assert_allclose(np.diff(_positions(vmin * 10.0 ** np.arange(3), scale)), decade, rtol=1e-9)


def test_scale_floor_and_width():
    rng = np.random.default_rng(1)
    vanished = rng.lognormal(np.log(1e-21), 1.0, (28, 28))
    healthy = rng.lognormal(np.log(0.1), 1.0, (28, 28))
    vmin, vmax = shared_scale(vanished, healthy)
    assert vmin == pytest.approx(vmax * 1e-12)  # at most 12 decades: the vanished map shows as the low end
    assert (render_map(vanished, (vmin, vmax), 1) == _lut("magma")[0]).all()
    vmin, vmax = shared_scale(np.full((28, 28), 0.5, np.float32))
    assert vmax == pytest.approx(0.5) and vmin == pytest.approx(0.05)  # at least one decade
    assert shared_scale(np.zeros((28, 28)), np.zeros((28, 28))) == (1e-12, 1.0)


def test_colorbar_and_ticks():
    scale = (6.9e-10, 0.52)
    bar = render_colorbar(scale, length=200, thickness=10)
    lut = _lut("magma")
    assert bar.shape == (10, 200, 3) and (bar[:, 0] == lut[0]).all() and (bar[:, -1] == lut[-1]).all()
    ticks = scale_ticks(scale)
    positions = [p for p, _ in ticks]
    assert positions == sorted(positions) and 0 <= positions[0] and positions[-1] <= 1 and 2 <= len(ticks) <= 6
    lo, hi = np.log10(scale)
    for p, label in ticks:
        assert p == pytest.approx((np.log10(float(label)) - lo) / (hi - lo))
    assert ticks[-1][1] == "1e-1"
    assert len(scale_ticks((2.0, 3.0))) == 2  # no power of ten inside: the two ends


def test_two_maps_on_one_scale_on_real_images(sample, checkpoints):
    """Two models' maps rendered on the scale shared_scale picks for both: each is its own map, and the same
    colour means the same value in both (ui.classify.explain does exactly this)."""
    base, bn = checkpoints["baseline"], checkpoints["batchnorm"]
    found = [gradient_map(model, sample.x[0:1]) for model in (base, bn)]
    scale = shared_scale(found[0][1], found[1][1])
    images = [render_map(grad, scale) for _, grad, _, _ in found]
    for (_, grad, input_grad, _), image in zip(found, images, strict=True):
        assert input_grad == float(grad.mean(dtype=np.float64)) and image.shape == (224, 224, 3)
        assert scale[0] <= np.percentile(grad[grad > 0], 1) and np.percentile(grad[grad > 0], 99) <= scale[1]
    # the baseline is mostly the colormap's dark end, batchnorm mostly bright
    luminance = [img.astype(float).mean() for img in images]
    assert luminance[0] < luminance[1] / 2


def test_zero_gradient_renders_and_gives_zero():
    dead = tiny()
    with torch.no_grad():
        dead.head.weight.zero_()  # constant logits: no gradient anywhere
    x = torch.rand(1, 784, dtype=torch.float64)
    _, grad, input_grad, hidden1 = gradient_map(dead, x)
    assert input_grad == 0.0 and hidden1 == 0.0 and not grad.any()
    scale = shared_scale(grad, grad)
    assert np.isfinite(scale).all() and scale_ticks(scale)
    assert (render_map(grad, scale) == _lut("magma")[0]).all()
    # zeroed first layer: nothing reaches the pixels, though hidden layer 1's pre-activation still matters
    blind = tiny()
    with torch.no_grad():
        blind.linears[0].weight.zero_()
    _, grad, input_grad, hidden1 = gradient_map(blind, x)
    assert not grad.any() and input_grad == 0.0 and hidden1 > 0
    alive = gradient_map(tiny(), x)[1]
    scale = shared_scale(grad, alive)
    assert (render_map(grad, scale) == _lut("magma")[0]).all() and render_map(alive, scale).any()
