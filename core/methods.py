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
    "0.25 and the small weights shrink the signal further, so it fades by a roughly constant factor at every "
    "layer, backward and forward: at init the error that reaches the first layer is 3.6e-07 of the output "
    "layer's (per image), each layer passes on about 0.14 of the image-to-image variation it receives, the first "
    "layers barely move and training stalls at chance on every seed. (The public reference notebook uses "
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
             "the loss and the first layer (at init it gets ~1e-03 of the output's error, not ~4e-07), and the net "
             "does learn, slowly: above chance on all 10 seeds after 100 epochs, far below the cures, and still "
             "improving on 6 of them. Depth is what hurts.", depth=3),
    variant("baseline_5", "Baseline, 5 hidden layers",
             "The baseline with 5 hidden layers. It stalls at chance on all 3 seeds, like the 7-layer net: at init "
             "its first layer gets ~2e-05 of the output's error.", depth=5),
    variant("weight_std_1", "Larger init (std 1.0)",
             "Weights drawn from N(0, 1.0) instead of N(0, 0.05). Larger weights multiply the gradient back up at "
             "every layer, offsetting sigmoid's small derivative, so the signal reaches the first layers (at init "
             "the first layer gets 0.24 of the output's error).",
             init_std=1.0),
    variant("weight_std_10", "Much larger init (std 10.0)",
             "Weights drawn from N(0, 10.0). Pre-activations are huge and almost every sigmoid starts saturated "
             "(96-97% of units on every seed, derivative below a tenth of its peak). At init the huge weights still "
             "carry a large gradient to the first layer, but as training goes on saturation climbs to 99-100%, the "
             "first layer's weight gradient falls about 2,700-fold and its steps shrink to ~5e-05 of its weights "
             "(seed 42): the net learns on 1 of 10 seeds. Too large an init trades vanishing for saturation.",
             init_std=10.0),
    variant("relu", "ReLU activation",
             "ReLU instead of sigmoid. Its derivative is exactly 1 for active units, so it does not squash the "
             "error as sigmoid's (at most 0.25) does. But at this init the N(0, 0.05) weights still shrink it layer "
             "by layer: the per-image error at init is 6.6e-05 at hidden1, 1.9e-02 at hidden7 and 0.18 at the "
             "output (seed 42), and the validation accuracy stays below 0.39 for 30 epochs on all 10 seeds. Once "
             "the weights have grown the error reaches the first layer (0.64 of the output's after 100 epochs), and "
             "every seed was still improving at epoch 100.", activation="relu"),
    variant("tanh", "Tanh activation",
             "Tanh instead of sigmoid. Its derivative peaks at 1 (sigmoid's at 0.25) and it is zero-centred, so "
             "the error fades much more slowly (at init the first layer gets 5.4e-03 of the output's, against "
             "3.6e-07 with sigmoid), though it still saturates.", activation="tanh"),
    variant("adam", "Adam optimizer (lr 0.001)",
             "Adam instead of SGD. It divides each weight's step by the running size of its gradient, so layers "
             "whose gradients are tiny still take steps of a useful size: in the first epoch the first layer's "
             "update is ~1e-02 of its weights, against ~3e-10 for the baseline with SGD.", optimizer="adam",
             lr=0.001),
    variant("batchnorm", "BatchNorm1d",
             "BatchNorm1d after each hidden Linear, before the sigmoid. It re-centres and re-scales every unit's "
             "input per batch, keeping sigmoid in its steep middle where the derivative is largest.",
             norm="batchnorm"),
    variant("custom_norm", "Custom normalization",
             "(x - mean) / std over the whole batch tensor after each hidden Linear, before the sigmoid: "
             "BatchNorm's idea without learned scale or running statistics. Because it pools the whole batch, a "
             "prediction depends on the images evaluated beside it: the committed model's test accuracy is 0.8283 "
             "with the whole test set in one batch, 0.8280 in batches of 4096 (the number shown) and 0.8234 one "
             "image at a time.", norm="custom"),
    variant("skip", "Skip connections",
             "The output of hidden layer 1 is added to hidden layer 3's, and hidden layer 4's to hidden layer 7's. "
             "The additions give the gradient shortcuts around the sigmoids between them.",
             skips=((1, 3), (4, 7))),
    variant("layerwise", "Layer-wise training",
             "Four sub-models of 2, 2, 2 and 1 hidden layers trained in 7 stages, each with a fresh output head: "
             "train a block, add the next with the earlier ones frozen (really frozen: no gradient, not in the "
             "optimizer), then fine-tune everything so far. Each stage only has to push gradients through a "
             "shallow stack. It trains 7 x 100 = 700 epochs, seven times the others' budget. Compare with the "
             "reference's 6-training schedule (layerwise_6).",
             stages=LAYERWISE_STAGES),
    variant("layerwise_6", "Layer-wise training, reference schedule",
             "The public reference notebook's schedule: the same four sub-models in 6 trainings, "
             "[A] → [A frozen + B] → [A, B frozen + C] → [A, B, C] → [A, B, C frozen + D] → [all], each with a "
             "fresh output head in nn.Linear's default init, 600 epochs in all. Unlike our 7 stages it never "
             "fine-tunes A+B together. Its 10 seeds end in two groups of five. What was recorded during the first "
             "three trainings hardly tells which (2 of 40 statistics after the second, by slim margins); their "
             "validation accuracies part for good at epoch 371, in the fourth training. Yet rerun with new heads "
             "and batch orders from the state after the third training (one seed of each group, 4 reruns each), "
             "the fourth ends in that seed's group every time: the group is inherited from the first three. The "
             "reference's own run looks like the lower group; this checkpoint (seed 42) is from the upper one.",
             stages=REFERENCE_LAYERWISE_STAGES, head_init="default"),
    variant("grad_norm", "Gradient normalization",
             "After each hidden activation, a layer that is the identity forward and rescales the gradient to "
             "zero mean and unit std backward, so it cannot fade with depth. With SGD lr 0.01 (the reference's "
             "recipe) most seeds collapse: this checkpoint (seed 42) learned for a while (validation accuracy "
             "0.270 at epoch 18), fell back to chance and now gives every image the same logits. 4 of 10 seeds "
             "end above chance, and the first epoch already tells which: after it those four have left ln 10, "
             "the loss of a uniform guess, and the six others have not. Rerun with the init and the batch order "
             "varied apart, that first-epoch fate follows mostly the initial weights, partly the batch order; at "
             "lr 0.005 or 0.002 every run leaves chance in the first epoch.",
             grad_norm=True),
    variant("grad_norm_lr1e3", "Gradient normalization, lr 0.001",
             "The same gradient-normalization layer trained with SGD lr 0.001 instead of 0.01, the recipe of "
             "the second public reference notebook (T-Sunm/Vanishing-Gradient). With steps ten times smaller "
             "fewer units saturate (45-75% after the first epoch, against 86-97% at lr 0.01) and every seed "
             "learns, though unevenly; 9 of 10 were still improving at epoch 100.", grad_norm=True, lr=0.001),
    variant("best", "Best combination",
             "Beyond the spec, and put together after the other results were seen: ReLU + BatchNorm + skip "
             "connections + AdamW (lr 0.001, weight decay 0.01, cosine decay) on the same 7x128 depth. Every cure "
             "at once, to see how far a 7x128 MLP goes on FashionMNIST; scored on the same test set as the results "
             "it was built from, so its number is optimistic.",
             activation="relu", norm="batchnorm", skips=((1, 3), (4, 7)), optimizer="adamw", lr=0.001,
             weight_decay=0.01, schedule="cosine"),
]}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(METHODS)}") from None
