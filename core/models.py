"""DeepMLP: one configurable deep MLP that can show the vanishing-gradient problem and every cure for it."""
# (no `from __future__ import annotations`: the Hub mixin reads DeepMLP's `config` annotation at run time to
# rebuild the ModelConfig from config.json in `from_pretrained`)
from dataclasses import asdict, dataclass, fields
from itertools import islice

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from . import limits
from .limits import HEAD_INITS

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}  # the module of each limits.ACTIVATIONS


@dataclass(frozen=True)
class ModelConfig:
    """The whole model schema: what DeepMLP takes, what a registry Method embeds, what config.json holds.

    `skips` are 1-based (src, dst) hidden-layer pairs: the output of hidden layer src (after its activation)
    is added to the output of hidden layer dst. A value outside core.limits.MODEL raises ValueError when the
    config is made.
    """
    depth: int = 7
    width: int = 128
    activation: str = "sigmoid"
    init_std: float = 0.05  # weights ~ N(0, init_std), biases 0
    norm: str = "none"  # after each hidden Linear, before the activation
    skips: tuple[tuple[int, int], ...] = ()
    grad_norm: bool = False  # a GradientNorm after each hidden activation
    in_features: int = 784  # 28x28 FashionMNIST images, flattened
    num_classes: int = 10

    def __post_init__(self):
        for name, value in limits.check({k: getattr(self, k) for k in limits.MODEL}, limits.MODEL).items():
            object.__setattr__(self, name, value)  # frozen: normalized in place once, here
        # JSON gives lists; the frozen config keeps tuples so that it stays hashable
        object.__setattr__(self, "skips", tuple(tuple(p) for p in self.skips))
        if not all(len(p) == 2 and all(_is_int(v) for v in p) and 1 <= p[0] < p[1] <= self.depth for p in self.skips):
            raise ValueError(f"skips must be (src, dst) pairs of hidden layers 1..{self.depth}, earlier to later")

    def to_dict(self) -> dict:
        """JSON-ready (config.json)."""
        return {**asdict(self), "skips": [list(p) for p in self.skips]}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Strict: exactly the known keys, each of the right type and range, else ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(d) - set(names)), sorted(set(names) - set(d))
        if unknown or missing:
            raise ValueError(f"keys do not match the model's config (unknown {unknown}, missing {missing})")
        if not isinstance(d["skips"], list) or not all(isinstance(p, list) for p in d["skips"]):
            raise ValueError("skips must be a list of [src, dst] pairs")
        return cls(**d)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class CustomNorm(nn.Module):
    """The spec's normalization: (x - mean) / std over the whole batch tensor, no learned scale or running stats.

    Unlike BatchNorm it pools every unit and every sample, so at inference it normalizes whatever batch it gets.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean()) / x.std()


class _NormalizeGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        # Rescaling the incoming gradient to unit spread at every layer keeps it from shrinking
        # geometrically with depth, whatever the activations' derivatives are.
        return (g - g.mean()) / (g.std() + 1e-6)


class GradientNorm(nn.Module):
    """Identity in the forward pass; normalizes the gradient that flows back through it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NormalizeGradient.apply(x)


class DeepMLP(nn.Module, PyTorchModelHubMixin):
    """784 -> depth x [Linear -> norm -> activation (+ skip) (-> gradient norm)] -> Linear -> 10 logits.

    `save_pretrained` / `from_pretrained` / `push_to_hub` come from the Hub mixin.
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        widths = [config.in_features] + [config.width] * config.depth
        self.linears = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(config.depth))
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(config.width) if config.norm == "batchnorm" else
            CustomNorm() if config.norm == "custom" else nn.Identity()
            for _ in range(config.depth))
        self.acts = nn.ModuleList(ACTIVATIONS[config.activation]() for _ in range(config.depth))
        self.grad_norms = nn.ModuleList(GradientNorm() if config.grad_norm else nn.Identity()
                                        for _ in range(config.depth))
        self.head = nn.Linear(config.width, config.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in [*self.linears, self.head]:
            nn.init.normal_(linear.weight, mean=0.0, std=self.config.init_std)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, depth: int | None = None, start: int = 0) -> torch.Tensor:
        """Logits from the first `depth` hidden layers (all by default) and the head; with `start`, x is
        hidden layer `start`'s output and only the layers after it run."""
        return self.head(self.features(x, depth, start=start))

    def features(self, x: torch.Tensor, depth: int | None = None, normalise_gradients: bool = True,
                 preactivations: list[torch.Tensor] | None = None, start: int = 0,
                 outputs: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the first `depth` hidden layers (all by default), or with `start` only those after hidden layer
        `start`, whose output x then is (no skip connection may cross it). `preactivations`, if given,
        receives each layer's Linear output z (before norm and activation), for gradients with respect to it;
        `outputs`, if given, each hidden layer's output (after its activation and skip: what the next layer
        gets); with `normalise_gradients` False the GradientNorm layers (identity forward) are left out of the
        graph."""
        h = x.flatten(1)
        skips = self.config.skips
        if any(src <= start < dst for src, dst in skips):
            raise ValueError(f"a skip connection crosses hidden layer {start}: start there is not possible")
        skip_from = {}  # 1-based hidden layer -> its output, kept only for the layers a skip reads from
        sources = {src for src, _ in skips}
        layers = zip(self.linears, self.norms, self.acts, self.grad_norms)
        for i, (linear, norm, act, grad_norm) in islice(enumerate(layers), start, depth or self.config.depth):
            z = linear(h)
            if preactivations is not None:
                preactivations.append(z)
            # an Identity norm or gradient norm is skipped rather than called: a module call per layer and step
            h = act(z if type(norm) is nn.Identity else norm(z))
            if skips:
                for src, dst in skips:
                    if dst == i + 1:
                        h = h + skip_from[src]
                if i + 1 in sources:
                    skip_from[i + 1] = h
            if outputs is not None:
                outputs.append(h)
            if normalise_gradients and type(grad_norm) is not nn.Identity:
                h = grad_norm(h)
        return h

    def named_linears(self, depth: int | None = None) -> list[tuple[str, nn.Linear]]:
        """The Linears from input to output, with the names the diagnostics and the app use: the first
        `depth` hidden layers (all by default) and the head."""
        hidden = self.linears[:depth or self.config.depth]
        return [(f"hidden{i + 1}", linear) for i, linear in enumerate(hidden)] + [("output", self.head)]

    def begin_stage(self, frozen: int = 0, new_head: str | None = None) -> None:
        """Set the model up for a training stage: the first `frozen` hidden layers (Linear and norm) frozen
        (no gradient), the others trainable; with `new_head`, a fresh output layer first, drawn the model's
        way ("model": N(0, init_std), zero bias) or nn.Linear's ("default": Kaiming-uniform)."""
        if new_head is not None:
            if new_head not in HEAD_INITS:
                raise ValueError(f"new_head must be one of {list(HEAD_INITS)}, got {new_head!r}")
            head = nn.Linear(self.config.width, self.config.num_classes)
            if new_head == "model":
                nn.init.normal_(head.weight, mean=0.0, std=self.config.init_std)
                nn.init.zeros_(head.bias)
            self.head = head
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            linear.requires_grad_(i >= frozen)
            norm.requires_grad_(i >= frozen)
