"""The registry: every method is one entry that says how it differs from the baseline and how it trains."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from . import limits
from .models import ModelConfig


@dataclass(frozen=True)
class Stage:
    """One stage of layer-wise training: train a `depth`-hidden-layer stack with a fresh head,
    the first `frozen` hidden layers frozen."""
    depth: int
    frozen: int = 0


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    description: str
    model: ModelConfig = ModelConfig()
    # recipe
    optimizer: str = "sgd"
    lr: float = 0.01
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "cosine": lr decays to 0 over each stage's epochs
    batch_size: int = 512
    epochs: int = 100  # per stage when `stages` is set
    stages: tuple[Stage, ...] = ()
    head_init: str = "model"  # each stage's fresh head: "model" = N(0, init_std); "default" = nn.Linear's own
    seed: int = 42
    changes: tuple[str, ...] = field(default=(), compare=False)  # the fields that differ from the baseline

    def __post_init__(self):
        """The recipe within core.limits.RECIPE (normalized in place), its stages within the model's depth."""
        for name, value in limits.check({k: getattr(self, k) for k in limits.RECIPE}, limits.RECIPE).items():
            object.__setattr__(self, name, value)
        if len(self.stages) > limits.MAX_STAGES:
            raise ValueError(f"stages: at most {limits.MAX_STAGES}, got {len(self.stages)}")
        for i, s in enumerate(self.stages):
            if not 0 <= s.frozen < s.depth <= self.model.depth:
                raise ValueError(f"stages[{i}]: expected 0 <= frozen < depth <= {self.model.depth} (the model's), "
                                 f"got frozen {s.frozen}, depth {s.depth}")

    def hyperparameters(self) -> dict:
        """Every hyperparameter, model and recipe, JSON-ready: metrics.json's "config"."""
        recipe = {f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("name", "title", "description", "model", "changes")}
        recipe["stages"] = [asdict(s) for s in self.stages]
        return {**self.model.to_dict(), **recipe, "loss": "cross_entropy", "val_fraction": 0.1,
                "input_scale": "pixels / 255", "bias_init": 0.0}


BASELINE = Method(
    "baseline", "Baseline (sigmoid, 7x128)",
    "7 hidden layers of 128 sigmoid units, weights N(0, 0.05), SGD lr 0.01. Sigmoid's derivative is at most "
    "0.25 and the small weights shrink the signal further, so the gradient fades by a constant factor at every "
    "layer on its way back: the first layer's weight gradient is about a million times smaller than the output "
    "layer's, the first layers barely move and training stalls at chance. (The public reference notebook uses "
    "nn.Linear's default init instead of N(0, 0.05); it stalls at chance too.)")


MODEL_FIELDS = frozenset(f.name for f in fields(ModelConfig))


def variant(name: str, title: str, description: str, **changes) -> Method:
    """The baseline with `changes`, each a ModelConfig field or a recipe field; `changes` of the result
    names those that differ from the baseline's."""
    model = replace(BASELINE.model, **{k: v for k, v in changes.items() if k in MODEL_FIELDS})
    recipe = {k: v for k, v in changes.items() if k not in MODEL_FIELDS}
    differ = tuple(k for k, v in changes.items()
                   if v != getattr(BASELINE.model if k in MODEL_FIELDS else BASELINE, k))
    return replace(BASELINE, name=name, title=title, description=description, model=model, changes=differ,
                   **recipe)


LAYERWISE_STAGES = (Stage(2), Stage(4, 2), Stage(4), Stage(6, 4), Stage(6), Stage(7, 6), Stage(7))
# NamNguyenWork27/Vanishing-Gradient's 6.TrainLayersSeparately: blocks A, B, C (2 layers) and D (1), trained
# [A] -> [A frozen + B] -> [A, B frozen + C] -> [A, B, C] -> [A, B, C frozen + D] -> [all]; no A+B fine-tune.
REFERENCE_LAYERWISE_STAGES = (Stage(2), Stage(4, 2), Stage(6, 4), Stage(6), Stage(7, 6), Stage(7))

METHODS: dict[str, Method] = {m.name: m for m in [
    BASELINE,
    variant("baseline_3", "Baseline, 3 hidden layers",
             "The baseline with 3 hidden layers instead of 7. Fewer layers means fewer shrinking factors between "
             "the loss and the first layer (its gradient is ~1e-3 of the output's, not ~1e-7), and the net does "
             "learn, slowly: well above chance after 100 epochs, far below the cures. Depth is what hurts.", depth=3),
    variant("baseline_5", "Baseline, 5 hidden layers",
             "The baseline with 5 hidden layers: between the shallow net that learns and the 7-layer one that "
             "stalls.", depth=5),
    variant("weight_std_1", "Larger init (std 1.0)",
             "Weights drawn from N(0, 1.0) instead of N(0, 0.05). Larger weights multiply the gradient back up at "
             "every layer, offsetting sigmoid's small derivative, so the signal reaches the first layers.",
             init_std=1.0),
    variant("weight_std_10", "Much larger init (std 10.0)",
             "Weights drawn from N(0, 10.0). Pre-activations are huge and almost every sigmoid starts saturated "
             "(96-97% of units, derivative below a tenth of its peak). At init the huge weights still carry a large "
             "gradient to the first layer, but as training goes on saturation climbs to 99-100%, the first layer's "
             "gradient falls a thousandfold and its steps shrink to ~5e-5 of its weights: the net stays near chance "
             "on most seeds. Too large an init trades vanishing for saturation.", init_std=10.0),
    variant("relu", "ReLU activation",
             "ReLU instead of sigmoid. Its derivative is exactly 1 for active units, so the backward pass does "
             "not shrink the gradient at each layer.", activation="relu"),
    variant("tanh", "Tanh activation",
             "Tanh instead of sigmoid. Its derivative peaks at 1 (sigmoid's at 0.25) and it is zero-centred, so "
             "the gradient fades much more slowly, though it still saturates.", activation="tanh"),
    variant("adam", "Adam optimizer (lr 0.001)",
             "Adam instead of SGD. It divides each weight's step by the running size of its gradient, so layers "
             "whose gradients are tiny still take steps of a useful size: in the first epoch the first layer's "
             "update is ~1e-2 of its weights, against ~3e-10 for the baseline with SGD.", optimizer="adam",
             lr=0.001),
    variant("batchnorm", "BatchNorm1d",
             "BatchNorm1d after each hidden Linear, before the sigmoid. It re-centres and re-scales every unit's "
             "input per batch, keeping sigmoid in its steep middle where the derivative is largest.",
             norm="batchnorm"),
    variant("custom_norm", "Custom normalization",
             "(x - mean) / std over the whole batch tensor after each hidden Linear, before the sigmoid: "
             "BatchNorm's idea without learned scale or running statistics.", norm="custom"),
    variant("skip", "Skip connections",
             "The output of hidden layer 1 is added to hidden layer 3's, and hidden layer 4's to hidden layer 7's. "
             "The additions give the gradient shortcuts around the sigmoids between them.",
             skips=((1, 3), (4, 7))),
    variant("layerwise", "Layer-wise training",
             "Four sub-models of 2, 2, 2 and 1 hidden layers trained in 7 stages, each with a fresh output head: "
             "train a block, add the next with the earlier ones frozen (really frozen: no gradient, not in the "
             "optimizer), then fine-tune everything so far. Each stage only has to push gradients through a "
             "shallow stack. Compare with the reference's 6-training schedule (layerwise_6).",
             stages=LAYERWISE_STAGES),
    variant("layerwise_6", "Layer-wise training, reference schedule",
             "The public reference notebook's schedule: the same four sub-models in 6 trainings, "
             "[A] → [A frozen + B] → [A, B frozen + C] → [A, B, C] → [A, B, C frozen + D] → [all], each with a "
             "fresh output head in nn.Linear's default init. Unlike our 7 stages it never fine-tunes A+B "
             "together. Its seeds end in two groups, parting in the fourth training: one like the reference's "
             "own run, one well above it; this checkpoint (seed 42) is from the upper one.",
             stages=REFERENCE_LAYERWISE_STAGES, head_init="default"),
    variant("grad_norm", "Gradient normalization",
             "After each hidden activation, a layer that is the identity forward and rescales the gradient to "
             "zero mean and unit std backward, so it cannot fade with depth. With SGD lr 0.01 (the reference's "
             "recipe) the outcome is a seed lottery: on every seed 86-97% of the sigmoids saturate within the "
             "first epoch; a few seeds learn anyway, most end at chance, and we have not found what separates "
             "them. This checkpoint is one draw (seed 42, at chance); the spread over seeds is below.",
             grad_norm=True),
    variant("grad_norm_lr1e3", "Gradient normalization, lr 0.001",
             "The same gradient-normalization layer trained with SGD lr 0.001 instead of 0.01, the recipe of "
             "the second public reference notebook (T-Sunm/Vanishing-Gradient). With steps ten times smaller "
             "fewer units saturate (45-75% after the first epoch, against 86-97% at lr 0.01) and every seed "
             "learns, though unevenly; most were still improving at epoch 100. This checkpoint (seed 42) is the "
             "weakest of its ten seeds.", grad_norm=True, lr=0.001),
    variant("best", "Best combination",
             "Beyond the spec: ReLU + BatchNorm + skip connections + AdamW (lr 0.001, weight decay 0.01, cosine "
             "decay) on the same 7x128 depth. Every cure at once, to see how far a 7x128 MLP goes on FashionMNIST.",
             activation="relu", norm="batchnorm", skips=((1, 3), (4, 7)), optimizer="adamw", lr=0.001,
             weight_decay=0.01, schedule="cosine"),
]}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(METHODS)}") from None
