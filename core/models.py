"""DeepMLP: one configurable deep MLP that can show the vanishing-gradient problem and every cure for it."""
from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
NORMS = ("none", "batchnorm", "custom")


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

    `skips` are 1-based (src, dst) hidden-layer pairs: the output of hidden layer src (after its activation)
    is added to the output of hidden layer dst. `save_pretrained` / `from_pretrained` come from the
    Hub mixin and write config.json + model.safetensors.
    """

    def __init__(self, depth: int = 7, width: int = 128, activation: str = "sigmoid", init_std: float = 0.05,
                 norm: str = "none", skips: list[list[int]] | None = None, grad_norm: bool = False,
                 in_features: int = 784, num_classes: int = 10):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
        skips = [list(map(int, pair)) for pair in (skips or [])]
        for src, dst in skips:
            if not 1 <= src < dst <= depth:
                raise ValueError(f"skip {src}->{dst} must join two hidden layers 1..{depth}, earlier to later")
        self.depth, self.width, self.activation, self.init_std = depth, width, activation, init_std
        self.norm, self.skips, self.grad_norm = norm, skips, grad_norm
        widths = [in_features] + [width] * depth
        self.linears = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(depth))
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(width) if norm == "batchnorm" else CustomNorm() if norm == "custom" else nn.Identity()
            for _ in range(depth))
        self.acts = nn.ModuleList(ACTIVATIONS[activation]() for _ in range(depth))
        self.grad_norms = nn.ModuleList(GradientNorm() if grad_norm else nn.Identity() for _ in range(depth))
        self.head = nn.Linear(width, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in [*self.linears, self.head]:
            nn.init.normal_(linear.weight, mean=0.0, std=self.init_std)
            nn.init.zeros_(linear.bias)

    def new_head(self) -> nn.Linear:
        """A fresh output layer with the model's init (layer-wise training starts each stage with one)."""
        head = nn.Linear(self.width, self.head.out_features)
        nn.init.normal_(head.weight, mean=0.0, std=self.init_std)
        nn.init.zeros_(head.bias)
        return head

    def features(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """Run the first `depth` hidden layers (all by default)."""
        h = x.flatten(1)
        outputs = {}  # 1-based hidden layer -> its output, kept only for the layers a skip reads from
        sources = {src for src, _ in self.skips}
        for i in range(depth or self.depth):
            h = self.acts[i](self.norms[i](self.linears[i](h)))
            for src, dst in self.skips:
                if dst == i + 1:
                    h = h + outputs[src]
            if i + 1 in sources:
                outputs[i + 1] = h
            h = self.grad_norms[i](h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def named_linears(self) -> list[tuple[str, nn.Linear]]:
        """Every Linear from input to output, with the names the diagnostics and the app use."""
        return [(f"hidden{i + 1}", linear) for i, linear in enumerate(self.linears)] + [("output", self.head)]
