"""Per-layer diagnostics of vanishing gradients, recorded for every Linear layer at every epoch.

How the numbers are taken:
- Gradient statistics (grad_mean_abs, grad_max_abs, grad_norm) are of the weight matrix's gradient,
  averaged over every training batch of the epoch (grad_max_abs: the max over them), i.e. over the
  gradients that actually moved the model. Epoch 0 (before any update) averages a few probe batches of
  training data through the untouched model instead.
- error_mean_abs is the backpropagated error: mean |dl/dz| over the batch's images and the layer's units,
  where z is the Linear's output and l each image's own loss (the batch loss is their mean, so this is the
  batch size times mean |dL/dz|), averaged over the batches of every 4th step, the steps update_ratio
  samples (epoch 0: over the probe batches). Unlike the weight gradient (error
  times the layer's input) it does not scale with the input, so raw pixels do not inflate the first layer's.
  It is taken per image, not from the bias gradient (the batch's errors summed): BatchNorm and the custom
  normalization subtract the batch mean, so their bias gradient is ~0 whatever error flows through them.
- update_ratio is the std of the actual update a step made to the weights (whatever the optimizer:
  for SGD that is lr * grad) over the std of the weights, averaged over every 4th step of the epoch
  (a sample: measuring every step costs noticeably more).
- weight_std and rel_weight_change (||W - W0|| / ||W0||, W0 = the weights at the start of training, or of
  the stage for a fresh layer-wise head) are read at the end of the epoch.
- activation_std (hidden layers) is the std of the layer's output over units and images of the same
  probe batch: near 0 when every unit outputs the same value, and the signal carries nothing forward.
- signal_std is the median over units of each unit's std across the probe images, for each hidden layer's
  output (after its activation and skip) and for the logits: does the layer's output still depend on the
  image? activation_std pools units and images, so a layer whose units sit at different constants for every
  image has a large activation_std and a signal_std near 0 (the baseline's last layers, ~7x less per layer).
- derivative_mean (hidden layers) is the activation's derivative at each unit, averaged over the probe's
  images and units: sigmoid s(1 - s), tanh 1 - t^2, ReLU the fraction of active units.
- norm_gain (layers with a normalization) is the mean over units of the factor the normalization scales its
  input by on the probe: BatchNorm in eval mode |gamma| / sqrt(running_var + eps); the custom norm 1 / the
  std of the whole batch tensor of z. With derivative_mean and weight_std it is what core.theory needs.
- saturation (sigmoid and tanh only) is the fraction of hidden units, on a fixed probe batch of validation
  images, whose activation derivative is below 10% of its maximum: |tanh| > 0.949, or sigmoid outside
  [0.026, 0.974]. There the unit passes almost no gradient back.
A layer that took no part (frozen, or not yet added by layer-wise training) gets null gradient statistics.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .models import CustomNorm, DeepMLP

SATURATED_DERIVATIVE = 0.1  # fraction of the activation's maximum derivative
UPDATE_SAMPLE_EVERY = 4  # measure the update on every 4th step: an unbiased sample at a quarter of the cost
GRADIENT_KEYS = ("grad_mean_abs", "grad_max_abs", "grad_norm", "error_mean_abs", "update_ratio")
PROBE_KEYS = ("saturation", "activation_std", "signal_std", "derivative_mean", "norm_gain")
LAYER_KEYS = ("grad_mean_abs", "grad_max_abs", "grad_norm", "error_mean_abs", "weight_std", "rel_weight_change",
              "update_ratio", *PROBE_KEYS)
MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}


def _round(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def _stds(tensors: list[torch.Tensor], n: torch.Tensor) -> torch.Tensor:
    """Sample std of each tensor (n: their sizes, float) from a fused L2 norm and a sum: several times faster
    than Tensor.std() per tensor on CPU, which keeps per-step diagnostics cheap."""
    sq = torch.stack(torch._foreach_norm(tensors, 2)) ** 2
    total = torch.stack([t.sum() for t in tensors])
    return ((sq - total * total / n) / (n - 1)).clamp_min(0).sqrt()


class LayerRecorder:
    """Accumulates the gradient and update statistics of each Linear over the batches of one epoch.

    While attached (a context manager) it watches each Linear's output z for its gradient; that only
    reads the gradient, so the training run is the same with or without it.

    Per step it issues a fixed handful of ops for all layers together (foreach reductions, one stack, in-place
    accumulation), not a few per layer: at these sizes a dispatch costs more than the reduction it runs. Every
    number is computed by the same kernels as one tensor at a time would (a foreach norm runs the per-tensor
    norm; |g| summed by sum(), not by the sequentially ordered L1 norm, which differs in the last bits), so
    the statistics are bit for bit those of the per-layer code."""

    def __init__(self, linears: list[tuple[str, nn.Linear]], device: str | torch.device = "cpu"):
        self.linears = linears
        self.device = torch.device(device)
        self.weights = [linear.weight for _, linear in linears]
        size = lambda values: torch.tensor(values, dtype=torch.float32, device=self.device)  # noqa: E731
        self._numel = size([w.numel() for w in self.weights])
        self._width = size([w.shape[0] for w in self.weights])  # the size of z's last dimension
        # mean |g| is the L1 sum over numel, ||g|| is taken as it is (a division by 1 is exact)
        self._divisor = torch.cat([self._numel, torch.ones_like(self._numel)])
        self._copies = [torch.empty_like(w) for w in self.weights]  # the weights before a sampled step
        self._moving: list[int] = []  # the layers whose update the step under way measures
        self._errors: list[torch.Tensor | None] = [None] * len(linears)  # ||dL/dz||_1 of the sampled step
        self._hooks: list = []
        self.reset()

    def __enter__(self) -> LayerRecorder:
        for i, (_, linear) in enumerate(self.linears):
            self._hooks.append(linear.register_forward_hook(lambda _m, _inp, z, i=i: self._watch(i, z)))
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def _watch(self, i: int, z: torch.Tensor) -> None:
        # only on the sampled steps: a tensor hook and a reduction per layer on every step cost ~7% of an
        # epoch; skipping the requires_grad=False passes (evaluation, a frozen prefix). The L1 norm sums |g|
        # without materialising |g|, taken while g is fresh in the cache; after_backward does the rest.
        if z.requires_grad and self._sampling():
            z.register_hook(lambda g: self._errors.__setitem__(i, torch.linalg.vector_norm(g, 1)))

    def _sampling(self) -> bool:
        """Whether the step under way (its forward, backward and update) is one of the sampled ones."""
        return self._step % UPDATE_SAMPLE_EVERY == 0

    def reset(self) -> None:
        n, zeros = len(self.linears), lambda *shape: torch.zeros(*shape, device=self.device)  # noqa: E731
        self.batches = zeros(n)
        self.sums = zeros(2, n)  # rows: mean |g|, ||g||
        self.error_sum = zeros(n)  # mean |dl/dz| per image, on the sampled steps
        self.error_batches = zeros(n)
        self.max = zeros(n)
        self.steps = zeros(n)
        self.ratio_sum = zeros(n)
        self._moving = []
        self._step = 0

    @torch.no_grad()
    def after_backward(self) -> None:
        errors = [i for i, e in enumerate(self._errors) if e is not None]
        if errors:
            norms = torch.stack([self._errors[i] for i in errors])
            _add_at(self.error_sum, errors, norms / _at(self._width, errors))
            _add_at(self.error_batches, errors, 1)
            self._errors = [None] * len(self.linears)
        seen = [i for i, w in enumerate(self.weights) if w.grad is not None]
        if not seen:
            return
        grads = [self.weights[i].grad for i in seen]
        absolute = torch._foreach_abs(grads)
        stats = torch.stack([a.sum() for a in absolute] + list(torch._foreach_norm(grads)))
        largest = torch.stack([a.amax() for a in absolute])  # faster here than _foreach_max, and as exact
        if len(seen) == len(self.linears):
            self.sums += stats.div_(self._divisor).view(2, -1)
            torch.maximum(self.max, largest, out=self.max)
            self.batches += 1
        else:
            idx = torch.tensor(seen, device=self.device)
            self.sums[:, idx] += stats.view(2, -1) / self._divisor.view(2, -1)[:, idx]
            self.max[idx] = torch.maximum(self.max[idx], largest)
            self.batches[idx] += 1

    @torch.no_grad()
    def before_step(self) -> None:
        sampled = self._sampling()
        self._step += 1
        self._moving = [i for i, w in enumerate(self.weights) if w.requires_grad] if sampled else []
        if self._moving:
            torch._foreach_copy_([self._copies[i] for i in self._moving], [self.weights[i] for i in self._moving])

    @torch.no_grad()
    def after_step(self) -> None:
        moving, self._moving = self._moving, []
        if not moving:
            return
        weights = [self.weights[i] for i in moving]
        deltas = torch._foreach_sub([self._copies[i] for i in moving], weights)
        n = _at(self._numel, moving)
        stds = _stds([*deltas, *weights], torch.cat([n, n]))  # the deltas' and the weights', one fused pass
        _add_at(self.ratio_sum, moving, stds[:len(moving)] / stds[len(moving):])
        _add_at(self.steps, moving, 1)

    def gradient_stats(self) -> list[dict]:
        batches, (mean_abs, norm), largest = self.batches.tolist(), self.sums.tolist(), self.max.tolist()
        errors, error_batches = self.error_sum.tolist(), self.error_batches.tolist()
        ratios, steps = self.ratio_sum.tolist(), self.steps.tolist()
        out = []
        for i in range(len(self.linears)):
            seen = batches[i] > 0
            out.append({
                "grad_mean_abs": _round(mean_abs[i] / batches[i]) if seen else None,
                "grad_max_abs": _round(largest[i]) if seen else None,
                "grad_norm": _round(norm[i] / batches[i]) if seen else None,
                "error_mean_abs": _round(errors[i] / error_batches[i]) if error_batches[i] > 0 else None,
                "update_ratio": _round(ratios[i] / steps[i]) if steps[i] > 0 else None,
            })
        return out


def _at(values: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """values[idx], without an indexing op when idx is every position (the usual case)."""
    return values if len(idx) == len(values) else values[torch.tensor(idx, device=values.device)]


def _add_at(total: torch.Tensor, idx: list[int], values) -> None:
    """total[idx] += values, as one in-place add when idx is every position."""
    if len(idx) == len(total):
        total += values
    else:
        at = torch.tensor(idx, device=total.device)
        total[at] += values


def _derivative(activation: str, out: torch.Tensor) -> torch.Tensor:
    """The activation's derivative at each unit, from the unit's output."""
    if activation == "sigmoid":
        return out * (1 - out)
    if activation == "tanh":
        return 1 - out * out
    return (out > 0).float()  # relu


def _median_unit_std(h: torch.Tensor) -> float:
    """The median over units (columns) of each unit's sample std across images (rows). Two centring passes and a
    sum of squares, not h.std(0): a column-wise std costs ~10x more on the CPU (0.7 ms a layer at 1024 x 128), and
    the second pass removes the float32 rounding of the first mean, which would bias a std 1e6 times smaller than
    the mean (the baseline's last layers: 6e-7 around 0.5) by ~1%; this stays within 2e-7 of float64's."""
    d = h - h.mean(0)
    d = d - d.mean(0)
    return torch.quantile((d.square().sum(0) / (len(h) - 1)).sqrt(), 0.5).item()


def _norm_gain(norm: nn.Module, z: torch.Tensor) -> float | None:
    """The mean over units of the factor `norm` scales its input `z` by (eval mode), or None for no norm."""
    if isinstance(norm, nn.BatchNorm1d):
        return (norm.weight.abs() / torch.sqrt(norm.running_var + norm.eps)).mean().item()
    if isinstance(norm, CustomNorm):
        return (1 / z.std()).item()  # in float32, as the norm divides: inf (then null) where z is constant
    return None


@torch.no_grad()
def probe_stats(model: DeepMLP, probe_x: torch.Tensor, depth: int | None = None) -> dict[str, list[float | None]]:
    """PROBE_KEYS -> one value per Linear of the full model (hidden layers, then the output), from one eval-mode
    forward pass of `probe_x` through the first `depth` hidden layers and the head. None where a statistic
    does not apply (saturation of ReLU, the output's activation statistics, norm_gain without a norm) and for
    layers beyond `depth`."""
    config = model.config
    depth = depth or config.depth
    stats = {key: [None] * (config.depth + 1) for key in PROBE_KEYS}

    def activation(i, out):
        stats["activation_std"][i] = out.std().item()
        derivative = _derivative(config.activation, out)
        stats["derivative_mean"][i] = derivative.mean().item()
        if config.activation != "relu":
            stats["saturation"][i] = (derivative / MAX_DERIVATIVE[config.activation]
                                      < SATURATED_DERIVATIVE).float().mean().item()

    hooks = []
    for i in range(depth):
        hooks += [
            model.acts[i].register_forward_hook(lambda _m, _inp, out, i=i: activation(i, out)),
            model.norms[i].register_forward_hook(
                lambda m, inp, _out, i=i: stats["norm_gain"].__setitem__(i, _norm_gain(m, inp[0]))),
        ]
    outputs: list[torch.Tensor] = []  # each hidden layer's output after its skip, if any
    was_training = model.training
    model.eval()
    try:
        logits = model.head(model.features(probe_x, depth, outputs=outputs))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    for i, h in enumerate(outputs):
        stats["signal_std"][i] = _median_unit_std(h)
    stats["signal_std"][-1] = _median_unit_std(logits)
    return stats


@torch.no_grad()
def layer_table(model: DeepMLP, linears: list[tuple[str, nn.Linear]], initial: dict[str, torch.Tensor],
                grad_stats: list[dict], probe_x: torch.Tensor, depth: int) -> list[dict]:
    """One dict per Linear of the full model (input to output), with every key in LAYER_KEYS.

    `linears` are the layers in use (a layer-wise stage uses the first `depth` hidden layers and its head);
    `grad_stats` is LayerRecorder.gradient_stats() for them.
    """
    probe = probe_stats(model, probe_x, depth)
    in_use = {name: stats for (name, _), stats in zip(linears, grad_stats)}
    rows = []
    for i, (name, linear) in enumerate(model.named_linears()):
        w = linear.weight
        w0 = initial[name]
        stats = in_use.get(name, dict.fromkeys(GRADIENT_KEYS))
        rows.append({"name": name, **stats,
                     "weight_std": _round(w.std().item()),
                     "rel_weight_change": _round((torch.linalg.vector_norm(w - w0)
                                                  / torch.linalg.vector_norm(w0)).item()),
                     **{key: _round(values[i]) for key, values in probe.items()}})
    return rows

