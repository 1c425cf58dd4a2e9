"""Theory beside measurement: the per-layer gain first principles predict for the error and the signal, and the gain
a metrics.json history row measured, with a verdict per layer and, where they disagree, the reason.

Pure functions of one history row (its layers' weight_std, derivative_mean, norm_gain, error_mean_abs, signal_std,
saturation: core.diagnostics) and its run config; no torch. Hidden layer l computes z_l = W_l h_{l-1} + b_l, then
h_l = act(norm(z_l)); W_l has fan-in n_in (784 pixels or the width) and fan-out n_out (its rows).

Backward. The error of an image at layer l is e_l = dl/dz_l = act'(.) * g_l * (W_{l+1}^T e_{l+1}), g_l the
normalization's per-unit scale (1 without one). With W_{l+1}'s entries independent of e_{l+1}, each entry of
W_{l+1}^T e_{l+1} is a sum of n_out terms, roughly Gaussian with std std(W_{l+1}) * sqrt(n_out) * rms(e_{l+1}).
If the derivative and the scale are independent of that sum, and the errors are roughly Gaussian across units
(mean |e| = sqrt(2/pi) rms(e) at both layers),

    error_mean_abs[l] / error_mean_abs[l+1] ~ derivative_mean_l * norm_gain_l * std(W_{l+1}) * sqrt(n_out(W_{l+1}))

(W_{l+1} is the next Linear: the next hidden layer's, or the head's, n_out 10, for the last hidden layer). The
baseline at init: 0.245 * 0.05 * sqrt(128) = 0.14, the error shrinks ~7x a layer. Over the whole network the
product of the gains predicts error_mean_abs[hidden1] / error_mean_abs[output] (network_gain).

Forward. Across images, unit j of z_l has variance sum_i W_ji^2 var(h_i) plus cross terms that average to 0 over
a random W, so std(z) ~ std(W_l) * sqrt(n_in(W_l)) * std(h_{l-1}); linearizing the activation around each unit's
mean input, std(h_l) ~ act'(.) * g_l * std(z_l). With signal_std the median over units of each unit's std
across images,

    signal_std[l] / signal_std[l-1] ~ derivative_mean_l * norm_gain_l * std(W_l) * sqrt(n_in(W_l))

and for the logits (no activation, no norm) std(W_head) * sqrt(width): the baseline at init, 0.14 again.
Hidden1 gets no forward gain: its input, the pixels, is no layer, and no row records its signal. (Measured
offline, not recorded: the probe's median per-pixel std is 0.317, and with it the formula gives hidden1 of the
seed-42 baseline at init 0.32 against a measured 0.28, which would agree.)

The assumptions, and when each breaks (the reason `disagreement` gives, the first that applies):
- Nothing rescales the backward pass: gradient normalization sets the error's spread to 1 after every hidden
  layer, so it does not shrink by the factors at all (backward, every layer; forward it is the identity).
- No skip path: a skip (src, dst) adds h_src to h_dst, so hidden dst's signal is mostly hidden src's (forward at
  dst) and hidden src's error gets hidden dst's error straight back (backward at src).
- The normalization's scale is the one the training pass used: BatchNorm's eval-mode scale (norm_gain) comes
  from its running statistics, which at epoch 0 are still mean 0, var 1 (eval-mode BatchNorm is then the
  identity), while the recorded error went through training-mode BatchNorm, which divides by the batch's std
  (~8x at hidden2..7 at init). Training-mode BatchNorm also subtracts the batch mean, projecting part of the
  error out; that is not modelled.
- Roughly Gaussian units: false when most units are saturated (the error and the signal then pass through the
  few that are not) and, after training, saturation also correlates the derivative with the error.
- W is independent of what it multiplies: true at init; training makes the weights depend on the signal and the
  error, so after training the predictions are a first-order guide, not a law. The logits' forward gain is the
  first to go: the head learns the directions the images differ in (committed batchnorm and relu: 3.9x and 5.1x
  the prediction; with the head's entries shuffled, same std, 0.84-0.99x and 0.92-1.42x over 5 shuffles).

Agreement: within AGREE_FACTOR (2) either way. The formula drops factors of order 1, measured offline at init
(autograd on 2,048 training images): the output's error softmax - one-hot is not Gaussian over 10 classes, so
the last hidden layer's measured gain is 1.32-1.36x the prediction in every method whose units are not
saturated; ReLU's error is 0 at the inactive units, so mean |e| understates the spread by 1/sqrt(active fraction
of the layer above), ~1.45x a layer (the reason names it); the median over units stands for the root-mean-square
the sums follow, 1.0-1.2x for the baseline but up to 2.5x for partly saturated or ReLU units. A factor 2 keeps
those and the sampling (4 init batches, a 1,024-image probe) inside, while the mechanisms above move a layer's gain
by 5x to 10^5x. Small factors that lean the same way compound over the network (ReLU: x12 at init), which
network_gain says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

AGREE_FACTOR = 2.0
SATURATED = 0.5  # a layer with more than half its units saturated is not the roughly Gaussian one assumed
BACKWARD, FORWARD = "backward", "forward"


@dataclass(frozen=True)
class Gain:
    """One layer's gain, predicted and measured: backward from the next layer down to `layer` (error ratio),
    forward from the previous layer up to `layer` (signal ratio), or the whole network's (network_gain)."""
    layer: str
    direction: str  # BACKWARD or FORWARD
    predicted: float | None
    measured: float | None
    agree: bool | None  # None when either is missing
    reason: str = ""  # why they disagree, or why there is nothing to compare; "" when they agree

    @property
    def factor(self) -> float | None:
        """measured / predicted, or None."""
        return self.measured / self.predicted if self.predicted and self.measured is not None else None


def agree(predicted: float | None, measured: float | None, factor: float = AGREE_FACTOR) -> bool | None:
    """Whether `measured` is within `factor` of `predicted` either way; None when either is missing or 0."""
    if not predicted or not measured or not (math.isfinite(predicted) and math.isfinite(measured)):
        return None
    return 1 / factor <= measured / predicted <= factor


def layer_gain(derivative: float | None, norm_gain: float | None, weight_std: float | None, fan: int,
               normalized: bool = False) -> float | None:
    """derivative x normalization scale x std(W) x sqrt(fan): one layer's gain by the formula (None where a
    factor is not recorded; `normalized` says the layer has a normalization, whose scale must then be known)."""
    if derivative is None or weight_std is None or (normalized and norm_gain is None):
        return None
    return derivative * (norm_gain if normalized else 1.0) * weight_std * math.sqrt(fan)


def _layers(row: dict) -> dict[str, dict]:
    return {l["name"]: l for l in row.get("layers", [])}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _in_use(row: dict) -> list[str]:
    """The hidden layers the row's probe pass went through (a layer-wise stage uses the first few)."""
    return [l["name"] for l in row.get("layers", []) if l["name"] != "output" and l.get("derivative_mean") is not None]


def _relu_sparsity(row: dict, name: str) -> float:
    """How much ReLU's zeros make mean |error| understate the spread the next sum carries, for the backward gain
    down to `name`: 1 / sqrt(active fraction) of the layer above (1 when that is the output)."""
    layers = row["layers"]
    k = [l["name"] for l in layers].index(name)
    above = layers[k + 1].get("derivative_mean") if k + 1 < len(layers) else None
    return 1 / math.sqrt(above) if above else 1.0


def disagreement(direction: str, name: str, row: dict, config: dict, factor: float | None = None) -> str:
    """Why theory and measurement disagree at layer `name` (`factor` = measured / predicted): the first
    assumption of the module docstring that fails there, or a plain "not explained" when none does."""
    layers = _layers(row)
    names = list(layers)
    k = names.index(name)
    i = k + 1 if name != "output" else None  # rows list hidden1..hiddenN, then the output (core.schema)
    skips = [tuple(p) for p in config.get("skips", [])]
    if direction == BACKWARD and config.get("grad_norm"):
        return ("gradient normalization rescales the error to unit spread after every hidden layer, so it does not "
                "shrink by the product of the factors")
    outs, ins = [d for s, d in skips if s == i], [s for s, d in skips if d == i]
    if direction == BACKWARD and outs:
        return (f"the skip from hidden{i} to hidden{outs[0]} sends hidden{outs[0]}'s error straight back, an "
                "identity path the product leaves out")
    if direction == FORWARD and ins:
        return f"the skip from hidden{ins[0]} adds hidden{ins[0]}'s output, which the product leaves out"
    if direction == BACKWARD and config.get("norm") == "batchnorm" and row.get("epoch") == 0:
        return ("at epoch 0 BatchNorm's running statistics are still mean 0, var 1, so its eval-mode scale "
                "(norm_gain 1) is not the training-mode one the error went through, which divides by the batch's std")
    around = names[k:k + 2] if direction == BACKWARD else names[max(k - 1, 0):k + 1]  # whose spread it depends on
    nearby = [layers[n].get("saturation") or 0.0 for n in around]
    if max(nearby) > SATURATED:
        return (f"{max(nearby):.0%} of the units are saturated: the error and the signal pass through the few that "
                "are not, far from the roughly Gaussian spread over units the product assumes")
    trained = row.get("epoch", 0) > 0
    if direction == BACKWARD and config.get("activation") == "relu" and factor and factor > 1:
        sparse = _relu_sparsity(row, name)
        rest = ("the trained weights are no longer independent of the error they multiply" if trained else
                "not explained by the assumptions checked here")
        return (f"ReLU's error is 0 at the inactive units, so mean |error| understates the spread the next sum "
                f"carries by 1/sqrt(active fraction), x{sparse:.2f} here; the rest (x{factor / sparse:.2f}): {rest}")
    if trained:
        return "after training the weights are no longer independent of the signal and the error they multiply"
    if direction == FORWARD and factor and factor > 1:
        return ("not explained by the assumptions checked here (signal_std is a median over units, the sum follows "
                "their root-mean-square, which is larger when the units differ)")
    return "not explained by the assumptions checked here"


def _gain(direction: str, name: str, predicted, measured, row: dict, config: dict, missing: str) -> Gain:
    verdict = agree(predicted, measured)
    reason = (missing if verdict is None else "" if verdict else
              disagreement(direction, name, row, config, measured / predicted))
    return Gain(name, direction, predicted, measured, verdict, reason)


def backward_gains(row: dict, config: dict) -> list[Gain]:
    """Per hidden layer l in use: the error ratio from the next layer down to l, predicted and measured."""
    layers, names = _layers(row), _in_use(row)
    normalized = config.get("norm", "none") != "none"
    out = []
    for name, above in zip(names, [*names[1:], "output"]):
        layer = layers[name]
        fan = config["num_classes"] if above == "output" else config["width"]
        predicted = layer_gain(layer["derivative_mean"], layer.get("norm_gain"), layers[above].get("weight_std"),
                               fan, normalized)
        measured = _ratio(layer.get("error_mean_abs"), layers[above].get("error_mean_abs"))
        missing = ("no error recorded here (a frozen layer, or an older file)" if measured is None else
                   "not enough recorded to predict (an older file)")
        out.append(_gain(BACKWARD, name, predicted, measured, row, config, missing))
    return out


def forward_gains(row: dict, config: dict) -> list[Gain]:
    """Per layer from hidden2 to the output (in use): the signal ratio from the layer before up to it, predicted
    and measured. Hidden1 is left out: its input, the pixels, has no recorded signal (module docstring)."""
    layers, names = _layers(row), _in_use(row)
    normalized = config.get("norm", "none") != "none"
    out = []
    for below, name in zip(names, [*names[1:], "output"]):
        layer = layers[name]
        predicted = (layer_gain(1.0, None, layer.get("weight_std"), config["width"]) if name == "output" else
                     layer_gain(layer["derivative_mean"], layer.get("norm_gain"), layer.get("weight_std"),
                                config["width"], normalized))
        measured = _ratio(layer.get("signal_std"), layers[below].get("signal_std"))
        missing = (f"{below}'s signal is 0: its output is the same for every image"
                   if layers[below].get("signal_std") == 0 else "not recorded (an older file)")
        out.append(_gain(FORWARD, name, predicted, measured, row, config, missing))
    return out


def network_gain(row: dict, config: dict) -> Gain:
    """The whole network's backward gain: the product of the predicted per-layer gains against the measured
    error_mean_abs[hidden1] / error_mean_abs[output]."""
    gains, layers = backward_gains(row, config), _layers(row)
    predicted = math.prod(g.predicted for g in gains) if gains and all(g.predicted for g in gains) else None
    measured = _ratio(layers.get("hidden1", {}).get("error_mean_abs"), layers.get("output", {}).get("error_mean_abs"))
    verdict = agree(predicted, measured)
    off = [g.layer for g in gains if g.agree is False]
    if verdict is None:
        reason = "not enough recorded (a frozen layer, or an older file)"
    elif verdict or off:
        reason = "" if verdict else f"theory and measurement disagree at {', '.join(off)}"
    else:
        per_layer = (measured / predicted) ** (1 / len(gains))
        reason = (f"every layer agrees within {AGREE_FACTOR:g}x, but they lean the same way (x{per_layer:.2f} a "
                  f"layer on average), which the product compounds")
        if config.get("activation") == "relu":
            sparse = math.prod(_relu_sparsity(row, g.layer) for g in gains)
            reason += f"; ReLU's zeros in the error alone account for x{sparse:.1f} of the x{measured / predicted:.0f}"
    return Gain("network", BACKWARD, predicted, measured, verdict, reason)
