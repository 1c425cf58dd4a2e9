"""What a model and its training recipe may be: every field's limit, written once, and the one check of them.

ModelConfig and Method check themselves with MODEL and RECIPE, core.schema builds the checkpoint files' types
from them, and the Playground checks a visitor's settings against its own policy, made from them by narrowed()
(a policy can only be stricter: a limit means the same everywhere).

A limit says what it allows in two wordings of one range: terse, for files and code ("a whole number 1..32",
core.schema's messages), and in words, for a person ("a whole number from 1 to 10 hidden layers", the
Playground's). Checking also normalizes what a widget or numpy hands over: 7.0 -> 7, "ReLU" -> "relu", numpy
scalars -> Python's; strings, None and booleans are never taken for numbers (bool is an int in Python).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

FLOAT32_MAX = 3.4028235e38  # a recorded number is a float32's value
ACTIVATIONS = ("sigmoid", "tanh", "relu")  # core.models builds each
NORMS = ("none", "batchnorm", "custom")
HEAD_INITS = ("model", "default")  # a layer-wise stage's fresh head: N(0, init_std), or nn.Linear's own
OPTIMIZERS = ("sgd", "adam", "adamw")  # core.train makes each
SCHEDULES = ("constant", "cosine")
MAX_STAGES = 64


def shown(value) -> str:
    """A refused value in a message: its repr, cut short (a huge whole number by its length: its repr alone
    could take seconds, or fail past Python's 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a whole number of about {value.bit_length() * 0.30103:.0f} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _real(value, label: str) -> float:
    if value is None or isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{label} must be a number, got {shown(value)}.")
    try:
        number = float(value)
    except OverflowError:  # a whole number beyond a float's range
        raise ValueError(f"{label} must be a finite number, got {shown(value)}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{label} must be a finite number, got {number}.")
    return number


@dataclass(frozen=True)
class Whole:
    """A whole number lo..hi; `unit` follows it in words (" hidden layers")."""
    lo: int
    hi: int
    unit: str = ""

    def says(self) -> str:
        return f"a whole number {self.lo}..{self.hi}" if self.lo < self.hi else f"{self.lo}{self.unit}"

    def words(self) -> str:
        return f"a whole number from {self.lo:,} to {self.hi:,}{self.unit}" if self.lo < self.hi else self.says()

    def take(self, value, label: str) -> int:
        # an int as it is (a float would round a seed of 2**63 - 1), a float only if it is whole
        number = int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else \
            _real(value, label)
        if number != int(number) or not self.lo <= number <= self.hi:
            raise ValueError(f"{label} must be {self.words()}, got {shown(value)}.")
        return int(number)

    def within(self, wider: Whole) -> bool:
        return isinstance(wider, Whole) and wider.lo <= self.lo <= self.hi <= wider.hi


@dataclass(frozen=True)
class Real:
    """A finite number from lo (or above it, with above=True) to hi."""
    lo: float
    hi: float = FLOAT32_MAX
    above: bool = False

    def says(self) -> str:
        if self.above:
            return f"a number in ({self.lo:g}, {self.hi:g}]"
        if self.hi == FLOAT32_MAX:
            return f"a finite number >= {self.lo:g}"
        return f"a number in [{self.lo:g}, {self.hi:g}]"

    def words(self) -> str:
        if self.above:
            return f"greater than {self.lo:g} and at most {self.hi:g}"
        return f"at least {self.lo:g}" if self.hi == FLOAT32_MAX else f"from {self.lo:g} to {self.hi:g}"

    def take(self, value, label: str) -> float:
        number = _real(value, label)
        if not (self.lo < number if self.above else self.lo <= number) or number > self.hi:
            raise ValueError(f"{label} must be {self.words()}, got {shown(value)}.")
        return number

    def within(self, wider: Real) -> bool:
        return (isinstance(wider, Real) and wider.lo <= self.lo and self.hi <= wider.hi
                and (self.above or not wider.above or self.lo > wider.lo))


@dataclass(frozen=True)
class OneOf:
    """One of a few names (any case: "ReLU" is "relu")."""
    options: tuple[str, ...]

    def says(self) -> str:
        return "one of " + ", ".join(f'"{o}"' for o in self.options)

    def words(self) -> str:
        return "one of " + ", ".join(self.options)

    def take(self, value, label: str) -> str:
        if not isinstance(value, str) or value.lower() not in self.options:
            raise ValueError(f"{label} must be {self.words()}; got {shown(value)}.")
        return value.lower()

    def within(self, wider: OneOf) -> bool:
        return isinstance(wider, OneOf) and set(self.options) <= set(wider.options)


@dataclass(frozen=True)
class Flag:
    """True or false, and nothing else (not 0/1, not "true": refused rather than guessed)."""

    def says(self) -> str:
        return "true or false"

    def words(self) -> str:
        return "on or off (true or false)"

    def take(self, value, label: str) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{label} must be {self.words()}, got {shown(value)}.")
        return value

    def within(self, wider: Flag) -> bool:
        return isinstance(wider, Flag)


Limit = Whole | Real | OneOf | Flag

# ModelConfig's fields (skips: pairs of its hidden layers, checked against its depth by ModelConfig)
MODEL: dict[str, Limit] = {
    "depth": Whole(1, 32, " hidden layers"), "width": Whole(1, 4096, " units"), "activation": OneOf(ACTIVATIONS),
    "init_std": Real(0, 1000, above=True), "norm": OneOf(NORMS), "grad_norm": Flag(),
    "in_features": Whole(784, 784, " (28x28 images)"), "num_classes": Whole(10, 10),
}
# Method's recipe (stages: at most MAX_STAGES, each within the model's depth, checked by Method)
RECIPE: dict[str, Limit] = {
    "optimizer": OneOf(OPTIMIZERS), "lr": Real(0, 1000, above=True), "weight_decay": Real(0),
    "schedule": OneOf(SCHEDULES), "batch_size": Whole(1, 2**20), "epochs": Whole(1, 10_000),
    "head_init": OneOf(HEAD_INITS), "seed": Whole(0, 2**63 - 1),
}


def check(values: Mapping[str, object], limits: Mapping[str, Limit], labels: Mapping[str, str] | None = None) -> dict:
    """`values` normalized, each by its limit in `limits`; a ValueError for the first that is outside its limit,
    one line naming it ("depth must be a whole number from 1 to 32 hidden layers, got 40."): by `labels`' name
    for it where given (the Playground's controls), else by its field name."""
    labels = labels or {}
    return {name: limits[name].take(value, labels.get(name, name)) for name, value in values.items()}


def narrowed(limits: Mapping[str, Limit], **stricter: Limit) -> dict[str, Limit]:
    """A policy: `limits` with some replaced by stricter ones. One that would allow more than the limit it
    replaces is refused here, when the policy is made, not found out by a visitor."""
    for name, limit in stricter.items():
        if not limit.within(limits[name]):
            raise ValueError(f"{name}: {limit.says()} is not within {limits[name].says()}")
    return {**limits, **stricter}
