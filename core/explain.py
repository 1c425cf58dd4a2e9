"""Input-gradient maps: how strongly each pixel of one image moves a model's predicted-class logit."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from matplotlib import colormaps

from .models import DeepMLP

SIDE = 28
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0  # of each map's positive values: a few hot pixels clip to the top
MAX_DECADES = 12.0  # the shared scale spans at most this many powers of ten below its top...
MIN_DECADES = 1.0  # ...and at least this many
UPSCALE = 8  # 28 px -> 224 px, square pixels (as the app shows the input)
CMAP = "magma"


def _forward(model: DeepMLP, x: torch.Tensor, normalise_gradients: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, z1 = linears[0](x)): DeepMLP's own forward pass, with hidden layer 1's pre-activation kept."""
    preactivations: list[torch.Tensor] = []
    logits = model.head(model.features(x, normalise_gradients=normalise_gradients, preactivations=preactivations))
    return logits, preactivations[0]


def gradient_map(model: DeepMLP, x: torch.Tensor, normalise_gradients: bool = False
                 ) -> tuple[int, np.ndarray, float, float]:
    """One preprocessed image x ([1, 784] or any 784 values in [0, 1]) -> (predicted class, map float32 [28, 28]
    of |d logit of the predicted class / d pixel|, mean |gradient| at the input = the map's mean, mean
    |d logit / d z1| over hidden layer 1's pre-activation z1 = linears[0](x), before its norm and activation).

    The model is evaluated in eval mode; a model that is already in eval mode (every loaded checkpoint) is only
    read, so concurrent calls on a shared model are safe. A model in training mode is switched to eval for the
    call and switched back. Gradients come from torch.autograd.grad with respect to the image and z1, so no
    parameter's .grad is touched. Works inside torch.no_grad() and torch.inference_mode().

    What the map means, method by method:
    - BatchNorm: in eval mode each BatchNorm is a fixed per-unit scale and shift (the running mean and variance
      from training), so the map is the exact derivative of the deployed model at this image, whatever other
      images exist.
    - custom_norm: its layer standardises over the whole batch tensor, so on one image each layer is
      standardised with that image's own mean and std over its 128 units (in training: over the whole batch);
      the map is the exact derivative of the model as it runs on this one image, including how each pixel
      shifts those statistics, and its prediction can differ from the one made inside a batch (on the committed
      sample the two agree on about 96% of images).
    - grad_norm: its GradientNorm is the identity in the forward pass but rewrites the backward pass,
      rescaling the gradient at every hidden layer to zero mean and unit std. By default the map switches that
      off and shows the raw derivative: the only one that says how much a pixel moves the prediction, and the
      only one comparable with other methods on a shared scale. The normalised gradient has its size imposed at
      every layer rather than measured (the committed grad_norm checkpoint's sigmoids are saturated: its raw
      input gradient is about 1e-21, its normalised one about 1e-2), and on a single image it is not even what
      training saw (there the statistics pooled a whole batch). `normalise_gradients=True` gives it anyway.

    Raises ValueError for an input that is not 784 values in [0, 1], or a model whose output or gradient is
    not finite on it.
    """
    weight = model.linears[0].weight
    with torch.inference_mode(False), torch.enable_grad():
        # A fresh leaf in the model's dtype and device; the clone also turns an inference tensor into a normal one
        x = torch.as_tensor(x).detach().to(weight.device, weight.dtype).clone()
        if x.numel() != model.config.in_features:
            raise ValueError(f"expected one image of {model.config.in_features} values, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("the image holds NaN or infinite values")
        if x.min() < 0 or x.max() > 1:
            raise ValueError("expected pixel values in [0, 1] (what core.preprocess and core.data give)")
        x = x.reshape(1, -1).requires_grad_(True)
        switched = [m for m in model.modules() if m.training]
        try:
            for m in switched:
                m.training = False  # not m.eval(): that recurses, and would write modules already in eval mode
            logits, z1 = _forward(model, x, normalise_gradients)
            if not torch.isfinite(logits).all():
                raise ValueError("the model's output is not finite for this image")
            predicted = int(logits[0].argmax())
            dx, dz1 = torch.autograd.grad(logits[0, predicted], (x, z1))
        finally:
            for m in switched:
                m.training = True
    grad = dx.detach().abs().reshape(SIDE, SIDE).to("cpu", torch.float32).numpy()
    hidden1 = float(dz1.detach().abs().mean())
    if not (np.isfinite(grad).all() and math.isfinite(hidden1)):
        raise ValueError("the model's gradient is not finite for this image")
    return predicted, grad, float(grad.mean(dtype=np.float64)), hidden1


def shared_scale(*maps: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE,
                 max_decades: float = MAX_DECADES, min_decades: float = MIN_DECADES) -> tuple[float, float]:
    """One logarithmic colour scale (vmin, vmax) for several maps: vmin is the lowest of the maps' `low`
    percentiles and vmax the highest of their `high` percentiles, each over that map's positive values, so the
    faint map keeps its range and the bright one too while a few hot pixels saturate rather than darken the rest.
    vmin is then raised to at most `max_decades` powers of ten below vmax (a map far below that shows as the
    colormap's low end: its gradient has vanished) and lowered to at least `min_decades` below it. Maps with no
    positive value at all give (10**-max_decades, 1): anything, since every pixel shows as the low end."""
    lows, highs = [], []
    for m in maps:
        positive = np.asarray(m, dtype=np.float64)
        positive = positive[positive > 0]
        if positive.size:
            lo, hi = np.percentile(positive, [low, high])
            lows.append(lo)
            highs.append(hi)
    if not highs:
        return 10.0 ** -max_decades, 1.0
    vmax = max(highs)
    vmin = min(max(min(lows), vmax * 10.0 ** -max_decades), vmax * 10.0 ** -min_decades)
    return float(vmin), float(vmax)


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """The colormap as 256 RGB uint8 colours, low end first."""
    lut = np.round(colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _positions(values: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Where values fall on the scale, 0 (vmin and below, zero included) to 1 (vmax and above)."""
    vmin, vmax = scale
    lo, hi = math.log10(vmin), math.log10(vmax)
    return np.clip((np.log10(np.maximum(values, vmin)) - lo) / (hi - lo), 0.0, 1.0)


def _colours(t: np.ndarray, cmap: str) -> np.ndarray:
    return _lut(cmap)[np.rint(t * 255).astype(np.intp)]


def render_map(grad: np.ndarray, scale: tuple[float, float], upscale: int = UPSCALE, cmap: str = CMAP) -> np.ndarray:
    """A map as an RGB uint8 image [28 * upscale, 28 * upscale, 3] on `scale`, square pixels (nearest
    neighbour): equal values get equal colours in every image rendered on the same scale."""
    rgb = _colours(_positions(np.asarray(grad, dtype=np.float64), scale), cmap)
    return rgb.repeat(upscale, axis=0).repeat(upscale, axis=1)


def render_colorbar(scale: tuple[float, float], length: int = SIDE * UPSCALE, thickness: int = 12,
                    cmap: str = CMAP) -> np.ndarray:
    """The scale as a horizontal colour bar, RGB uint8 [thickness, length, 3], vmin at the left end and vmax at
    the right, logarithmic like the maps (place scale_ticks' labels along it)."""
    rgb = _colours(np.linspace(0.0, 1.0, length), cmap)
    return np.repeat(rgb[None], thickness, axis=0)


def scale_ticks(scale: tuple[float, float], most: int = 6) -> tuple[tuple[float, str], ...]:
    """Labels for the colour bar: (position 0..1 along it, "1e-8"), at whole powers of ten (every 2nd, 3rd...
    if there are more than `most`); vmin and vmax themselves if no power of ten falls inside the scale."""
    lo, hi = math.log10(scale[0]), math.log10(scale[1])
    decades = list(range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1))
    if not decades:
        return (0.0, f"{scale[0]:.1e}"), (1.0, f"{scale[1]:.1e}")
    step = math.ceil(len(decades) / most)
    return tuple((min(1.0, max(0.0, (d - lo) / (hi - lo))), f"1e{d}") for d in decades[::-step][::-1])
