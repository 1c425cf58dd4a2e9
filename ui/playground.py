"""The Playground: train a deep MLP you configure and stream its diagnostics epoch by epoch. No Gradio.

Everything reuses the project's own pieces: the settings are checked by core.limits against POLICY (the
model and recipe limits, narrowed for a shared CPU) and become a registry-style Method (methods.variant(...)),
training is core.train.train_epochs, the per-layer numbers are core.diagnostics', the chart's data
ui.chart_data's (drawn in the browser by assets/charts.js, as on the Compare tab). This module only adds the
policy, data selection, a stop switch and a time limit, so a visitor's run is the same computation as
`python -m core train` on a smaller budget.

What a run measures, per epoch (epoch 0 = the untrained network):
- train loss/accuracy: over the epoch's batches (train_epochs' numbers);
- validation accuracy: on VAL_SIZE of the 6,000 held-out images, not all of them, to keep an epoch short;
- test accuracy: the current model on TEST_PROBE of the test images after every epoch (the whole 10,000
  would cost a large share of each epoch's budget: `python -m bench.playground_speed` prints it), and on all
  of them once a run completes, so the final number is directly comparable with the pre-trained methods'.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from core import limits
from core.checkpoint import CONFIG, METRICS, WEIGHTS, save_checkpoint
from core.data import DEBIAN_DIR, HUB_DATASET, DatasetError, FashionMNIST, Split, load_fashion_mnist, load_sample
from core.evaluate import evaluate
from core.limits import Flag, OneOf, Real, Whole
from core.methods import BASELINE, Method, variant
from core.models import DeepMLP
from core.train import on_device, train_epochs

from . import chart_data

# The Playground's policy: core.limits' model and recipe limits, narrowed (never widened: limits.narrowed
# refuses that) for one small CPU shared by every visitor, and its own two settings. PlaygroundSettings checks
# every value against it whatever the widgets allow. The largest run it allows (10 x 512, 54,000 images, 20
# epochs) takes minutes on one core (`python -m bench.playground_speed` prints it): TIME_LIMIT stops every run
# after 3 minutes instead, so the single training slot turns over.
POLICY = {
    **limits.narrowed(
        {**limits.MODEL, **limits.RECIPE},
        depth=Whole(1, 10, " hidden layers"), width=Whole(8, 512, " units"),
        init_std=Real(0, 20, above=True),  # beyond std 20 every sigmoid saturates anyway
        optimizer=OneOf(("sgd", "adam")), lr=Real(0, 1, above=True), epochs=Whole(1, 20), batch_size=Whole(16, 4096)),
    "skips": Flag(),  # skip connections over blocks of SKIP_BLOCK layers (skip_pairs)
    "train_size": Whole(500, 54_000, " images"),  # 54,000 = the whole training split (60,000 minus 10%)
}
DEFAULT_TRAIN_SIZE = 10_000
VAL_SIZE = 2_000  # validation images evaluated each epoch (of the 6,000 held out)
TEST_PROBE = 2_000  # test images evaluated each epoch (all of them at the end of a completed run)
SAMPLE_SPLIT = (600, 200, 200)  # train / val / test of the committed 1,000-image sample
TIME_LIMIT = 180.0  # seconds; a run that takes longer stops, so one visitor cannot hold the slot for long
SHARED_LIMIT = 60.0  # seconds; a run's limit while another visitor waits: the slot turns over within a minute
MAX_WAITING = 4  # runs that may wait for the slot; a fifth is refused at once (the wait would pass 4 minutes)
SKIP_BLOCK = 3  # skip connections join the first and last layer of each block of 3 hidden layers
BATCH_SIZES = (32, 64, 128, 256, 512, 1024, 2048)  # the batch sizes the tab offers (POLICY allows more, for the API)

LABELS = {  # field -> what the page calls it, for the error messages
    "depth": "Depth (hidden layers)", "width": "Width (units per layer)", "activation": "Activation",
    "init_std": "Init std", "norm": "Normalization", "skips": "Skip connections",
    "grad_norm": "Gradient normalization", "optimizer": "Optimizer", "lr": "Learning rate",
    "epochs": "Epochs", "train_size": "Training images", "batch_size": "Batch size", "seed": "Seed",
}


def skip_pairs(depth: int) -> tuple[tuple[int, int], ...]:
    """The skip connections of a `depth`-layer net: hidden layers are cut into blocks of 3 from the input
    side, and each block's first layer's output is added to its last layer's ((1,3), (4,6), (7,9), ...). A
    lone layer left at the end joins the block before it, so depth 7 gives the registry's `skip` method
    exactly ((1,3), (4,7)); two left over form a short block ((1,3), (4,5) for depth 5). Fewer than 3
    layers have no block to bridge: ()."""
    if depth < SKIP_BLOCK:
        return ()
    pairs = [[start, min(start + SKIP_BLOCK - 1, depth)] for start in range(1, depth + 1, SKIP_BLOCK)]
    if pairs[-1][0] == pairs[-1][1]:  # a single layer is not a block: extend the previous one
        pairs.pop()
        pairs[-1][1] = depth
    return tuple((a, b) for a, b in pairs)


# ------------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class PlaygroundSettings:
    """Every control of the Playground tab. Constructing one checks and normalizes every field against POLICY
    (7.0 -> 7, "ReLU" -> "relu"), so an invalid settings object cannot exist: the server checks the limits
    whatever the widgets or an API caller sent. Defaults are the baseline's model and recipe."""
    depth: int = BASELINE.model.depth
    width: int = BASELINE.model.width
    activation: str = BASELINE.model.activation
    init_std: float = BASELINE.model.init_std
    norm: str = BASELINE.model.norm
    skips: bool = False
    grad_norm: bool = False
    optimizer: str = BASELINE.optimizer
    lr: float = BASELINE.lr
    epochs: int = 10
    train_size: int = DEFAULT_TRAIN_SIZE
    batch_size: int = BASELINE.batch_size
    seed: int = BASELINE.seed  # fixes the split, the init and the batch order, like the registry's

    def __post_init__(self):
        clean = limits.check({f.name: getattr(self, f.name) for f in fields(self)}, POLICY, LABELS)
        if clean["skips"] and clean["depth"] < SKIP_BLOCK:
            raise ValueError(f"{LABELS['skips']} need at least {SKIP_BLOCK} hidden layers (they bridge blocks "
                             f"of {SKIP_BLOCK}: 1→3, 4→6, ...); got depth {clean['depth']}. Add layers or turn "
                             "them off.")
        for name, value in clean.items():  # frozen: normalize in place once, here
            object.__setattr__(self, name, value)


SETTING_NAMES = tuple(f.name for f in fields(PlaygroundSettings))


def settings_from_inputs(values: Mapping[str, object]) -> PlaygroundSettings:
    """PlaygroundSettings from the tab's inputs, keyed by field name ({"depth": 7, "lr": 0.01, ...}); a field
    left out keeps its default. Raises ValueError with a one-line message naming the field for anything
    out of bounds or not a value of the right kind, and for a name that is not a setting."""
    unknown = [name for name in values if name not in SETTING_NAMES]
    if unknown:
        raise ValueError(f"Unknown setting {', '.join(map(repr, unknown))}; the settings are: "
                         f"{', '.join(SETTING_NAMES)}.")
    return PlaygroundSettings(**values)


def to_method(settings: PlaygroundSettings) -> Method:
    """The settings as a registry Method, so core.train trains it exactly like a registry entry."""
    changes = {"depth": settings.depth, "width": settings.width, "activation": settings.activation,
               "init_std": settings.init_std, "norm": settings.norm,
               "skips": skip_pairs(settings.depth) if settings.skips else (), "grad_norm": settings.grad_norm,
               "optimizer": settings.optimizer, "lr": settings.lr, "epochs": settings.epochs,
               "batch_size": settings.batch_size, "seed": settings.seed}
    return variant("playground", "Your network", "The network and recipe set on the Playground tab.", **changes)


def from_method(method: Method) -> tuple[PlaygroundSettings, list[str]]:
    """A registry method's network and recipe as Playground settings, and what of it the Playground cannot
    express (each as a short phrase for the page: "the cosine schedule (the Playground keeps lr constant)").
    Epochs and training images stay the Playground's defaults: a method's 100 epochs on 54,000 images do
    not fit its time limit; that is said too. The seed is the method's."""
    m, left_out = method.model, []
    settings = dict(depth=m.depth, width=m.width, activation=m.activation, init_std=m.init_std, norm=m.norm,
                    grad_norm=m.grad_norm, lr=method.lr, seed=method.seed, skips=bool(m.skips))
    if m.skips and m.skips != skip_pairs(m.depth):
        left_out.append(f"its skip connections {_pairs(m.skips)} (the Playground's are {_pairs(skip_pairs(m.depth))})")
    if method.optimizer in POLICY["optimizer"].options:
        settings["optimizer"] = method.optimizer
    else:  # adamw: Adam with decoupled weight decay, the nearest the Playground has
        settings["optimizer"] = "adam"
        left_out.append(f"{method.optimizer} (Adam here)")
    if method.weight_decay:
        left_out.append(f"weight decay {method.weight_decay:g}")
    if method.schedule != "constant":
        left_out.append(f"the {method.schedule} learning-rate schedule (constant here)")
    if method.stages:
        left_out.append(f"layer-wise training in {len(method.stages)} stages (the whole net trains at once here)")
        if method.head_init != "model":
            left_out.append(f"the stages' fresh heads in nn.Linear's {method.head_init} init")
    if method.batch_size in BATCH_SIZES:
        settings["batch_size"] = method.batch_size
    else:
        left_out.append(f"batch size {method.batch_size} (the default {PlaygroundSettings().batch_size} here)")
    defaults = PlaygroundSettings()
    budget = method.epochs * max(1, len(method.stages))
    left_out.append(f"its {budget:,} epochs on the whole training split ({defaults.epochs} epochs on "
                    f"{defaults.train_size:,} images here: the Playground's time limit)")
    return PlaygroundSettings(**settings), left_out


def _pairs(pairs) -> str:
    return ", ".join(f"{a}→{b}" for a, b in pairs) or "none"


# The Playground's settings in the page's address (?tab=playground&depth=7&width=128&act=sigmoid&...): short keys,
# none of them the Compare chart's own (left, right, stat, epoch: assets/charts.js), so either writer keeps the
# other's. `ref` is the reference picker's method.
URL_KEYS = {"depth": "depth", "width": "width", "act": "activation", "std": "init_std", "norm": "norm",
            "skips": "skips", "gn": "grad_norm", "opt": "optimizer", "lr": "lr", "bs": "batch_size",
            "epochs": "epochs", "n": "train_size"}
URL_TAB = "playground"  # ?tab= value that opens the Playground (its gr.Tab id)
MAX_URL_VALUE = 32  # characters: longer is no setting (and int() of a long digit string is slow)


def to_query(settings: PlaygroundSettings, reference: str) -> dict[str, str]:
    """The settings (and the reference) as the address's parameters, in URL_KEYS' order."""
    def text(value):
        return ("1" if value else "0") if isinstance(value, bool) else repr(value) if isinstance(value, float) \
            else str(value)
    return {"tab": URL_TAB, **{key: text(getattr(settings, name)) for key, name in URL_KEYS.items()}, "ref": reference}


def _parsed(name: str, text: str):
    """A parameter's text as the kind of value its setting takes; ValueError if it is not one."""
    if len(text) > MAX_URL_VALUE:
        raise ValueError("too long")
    limit = POLICY[name]
    if isinstance(limit, limits.Flag):
        if text.lower() not in ("0", "1", "true", "false"):
            raise ValueError("expected 1 or 0")
        return text.lower() in ("1", "true")
    try:
        if isinstance(limit, limits.Whole):
            return int(text)
        if isinstance(limit, limits.Real):
            return float(text)
    except ValueError:  # int("abc")'s own words name no setting
        what = limit.words() if isinstance(limit, limits.Whole) else f"a number {limit.words()}"
        raise ValueError(f"{LABELS[name]} must be {what}") from None
    return text


def from_query(query: Mapping[str, str]) -> tuple[PlaygroundSettings, list[str]]:
    """Settings from the address's parameters (to_query's keys; others are not the Playground's and are left
    alone), and one phrase per parameter that was ignored ("depth=40: Depth (hidden layers) must be ..."): each
    value is checked by PlaygroundSettings, as the tab's own inputs are, and a bad one keeps the default."""
    good: dict[str, object] = {}
    ignored = []
    for key, name in URL_KEYS.items():  # in order: depth before skips, which need 3 layers
        if (text := query.get(key)) is None:
            continue
        try:
            value = _parsed(name, text)
            if name == "batch_size" and value not in BATCH_SIZES:
                raise ValueError(f"{LABELS[name]} must be one of {', '.join(map(str, BATCH_SIZES))}")
            PlaygroundSettings(**{**good, name: value})
            good[name] = value
        except ValueError as e:
            ignored.append(f"{key}={text[:MAX_URL_VALUE]!r}: {str(e).rstrip('.') or 'not a value'}")
    return PlaygroundSettings(**good), ignored


# ------------------------------------------------------------------------------------------------ data

_full: dict[int, FashionMNIST | None] = {}
_full_lock = threading.Lock()


def _full_dataset(seed: int) -> FashionMNIST | None:
    """The whole real dataset, split with `seed`, loaded once per process (decoding it is the slow part);
    None where it is not installed (a Space without it)."""
    with _full_lock:
        if seed not in _full:
            try:
                _full[seed] = load_fashion_mnist(seed=seed)
            except DatasetError:
                _full[seed] = None
        return _full[seed]


def source_words(source: str) -> str:
    """Where the real set came from, for the page (never a server path)."""
    if source == HUB_DATASET:
        return f"the Hub dataset {HUB_DATASET}"
    return "Debian's dataset-fashion-mnist" if source == str(DEBIAN_DIR) else "the IDX files installed on this server"


def _head(split: Split, n: int) -> Split:
    return Split(split.x[:n], split.y[:n])  # views: no copy of the cached tensors


def playground_data(train_size: int, seed: int = BASELINE.seed) -> tuple[FashionMNIST, str]:
    """The data a run trains on and a one-line note saying what it is.

    With the real dataset: the first `train_size` images of the seeded training split (what
    load_fashion_mnist(limit=train_size) gives), VAL_SIZE validation images, the 10,000 test images.
    Without it: the committed sample of 1,000 real test images, split 600/200/200."""
    full = _full_dataset(seed)
    if full is not None:
        n = min(train_size, len(full.train))
        data = FashionMNIST(_head(full.train, n), _head(full.val, VAL_SIZE), full.test, full.source)
        return data, (f"Real FashionMNIST ({source_words(full.source)}): {n:,} training images; validation "
                      f"accuracy on {len(data.val):,} "
                      f"held-out images; test accuracy on {min(TEST_PROBE, len(data.test)):,} test images after "
                      f"each epoch and on all {len(data.test):,} at the end.")
    sample = load_sample()
    perm = torch.randperm(len(sample), generator=torch.Generator().manual_seed(seed))
    a, b, c = SAMPLE_SPLIT
    part = lambda idx: Split(sample.x[idx], sample.y[idx])  # noqa: E731
    data = FashionMNIST(part(perm[:a]), part(perm[a:a + b]), part(perm[a + b:a + b + c]), "sample")
    return data, (f"The full FashionMNIST could not be loaded here (not installed, and the Hub dataset "
                  f"{HUB_DATASET} could not be downloaded), so this trains on the committed sample of "
                  f"real FashionMNIST images instead: {a} for training (you asked for {train_size:,}), {b} for "
                  f"validation, {c} for test. Accuracies on {c} images move in steps of {1 / c:.1%}.")


# ------------------------------------------------------------------------------------------- streaming

@dataclass(frozen=True)
class PlaygroundUpdate:
    """One epoch of a playground run (epoch 0 = the untrained network), or the run's end."""
    epoch: int
    total_epochs: int
    history: tuple[dict, ...]  # metrics.json history rows, epochs 0..epoch
    test_accs: tuple[float, ...]  # accuracy after each epoch in `history` on the first TEST_PROBE test images
    settings: PlaygroundSettings
    config: dict  # what metrics.json's "config" holds for this model and recipe
    note: str  # what data it trains on
    seconds: float  # since the run started (data loading included)
    stopped: str | None = None  # why the run ended before its last epoch, if it did
    done: bool = False  # nothing follows this update
    final_test_acc: float | None = None  # on the whole test split, once a run has completed
    test_size: int = 0  # images in the whole test split
    # the network as it was after `epoch` (a copy on the CPU, taken when the epoch ended: a stopped run's model
    # is the last finished epoch's, not the half-trained one), for export_run; not part of the run's numbers
    model: DeepMLP | None = field(default=None, compare=False, repr=False)

    @property
    def val_acc(self) -> float:
        return self.history[-1]["val_acc"]

    @property
    def test_acc(self) -> float:
        """The latest test accuracy: the whole test split's at the end of a completed run, else the probe's."""
        return self.final_test_acc if self.final_test_acc is not None else self.test_accs[-1]

    @property
    def test_images(self) -> int:
        """How many test images test_acc was measured on."""
        return self.test_size if self.final_test_acc is not None else min(TEST_PROBE, self.test_size)

    @property
    def metrics(self) -> dict:
        """A metrics.json-shaped dict of the run so far: what ui.chart_data and ui.figures take."""
        return {"method": "playground", "title": f"Your network ({self.settings.depth}x{self.settings.width} "
                f"{self.settings.activation})", "seed": self.settings.seed, "config": self.config,
                "epochs": self.epoch, "test_acc": self.test_acc, "stopped": self.stopped,
                "history": list(self.history)}


class StopSwitch(threading.Event):
    """The Stop button's switch for one run, and its time limit, which RunQueue shortens to SHARED_LIMIT when
    another visitor starts waiting. It pickles as a fresh, unset switch: on ZeroGPU the run trains in a forked
    worker that receives its arguments pickled (an Event cannot be), and there Stop ends the run by closing its
    stream, which makes the `spaces` package stop the worker (the GPU's own duration bounds it there)."""

    def __init__(self, limit: float = TIME_LIMIT):
        super().__init__()
        self.limit = limit

    def __reduce__(self):
        return StopSwitch, (self.limit,)


class Refused(ValueError):
    """A Train click the Playground's queue does not take: the message says why and what to do."""


@dataclass(eq=False)
class Ticket:
    """One visitor's place in RunQueue: waiting, then (once `started` is set) training."""
    visitor: tuple[str, str]  # (session, client address)
    stop: StopSwitch
    started: float | None = None  # time.monotonic() when it got the slot


class RunQueue:
    """The Playground's own queue, apart from Gradio's (a full Playground never blocks Compare or Classify): one
    run trains at a time, at most MAX_WAITING wait, and a visitor (a session or a client address) has at most
    one run training or waiting. A run's time limit is TIME_LIMIT while nobody waits and SHARED_LIMIT once
    someone does. Thread-safe: the app's event loop and its worker threads share it."""

    def __init__(self, max_waiting: int = MAX_WAITING, time_limit: float = TIME_LIMIT,
                 shared_limit: float = SHARED_LIMIT, clock=time.monotonic):
        self.max_waiting, self.time_limit, self.shared_limit, self.clock = max_waiting, time_limit, shared_limit, clock
        self._lock = threading.Lock()
        self._tickets: list[Ticket] = []  # the running one (if any) first, then the waiting ones in order

    def join(self, visitor: tuple[str, str]) -> Ticket:
        """A place for `visitor`, or Refused: it already has one, or MAX_WAITING runs wait already."""
        with self._lock:
            if any(set(visitor) & set(t.visitor) for t in self._tickets):
                raise Refused("Playground: you already have a run training or waiting (from this page or this "
                              "address). Press Stop to end it, or wait until it finishes.")
            waiting = sum(t.started is None for t in self._tickets)
            if waiting >= self.max_waiting:
                raise Refused(f"Playground busy: {waiting} runs are waiting already (the most allowed), about "
                              f"{self._wait(len(self._tickets)):.0f} s of training ahead. Try again in a minute.")
            ticket = Ticket(visitor, StopSwitch(self.time_limit))
            self._tickets.append(ticket)
            self._share()
            return ticket

    def turn(self, ticket: Ticket) -> tuple[int, float]:
        """(runs ahead of `ticket`, at most how many seconds until its turn); (0, 0) once it has the slot,
        which it takes here when it is first in line."""
        with self._lock:
            i = self._tickets.index(ticket)
            if i == 0 and ticket.started is None:
                ticket.started = self.clock()
                self._share()
            return i, self._wait(i)

    def leave(self, ticket: Ticket) -> None:
        """`ticket` has ended (finished, stopped, refused or disconnected): the next in line may start."""
        with self._lock:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._share()

    def _share(self) -> None:
        """Shorten the running run's limit while someone waits (never lengthen it back: a visitor is told the
        limit their run started with or a shorter one, not a longer one)."""
        running = self._tickets[0] if self._tickets and self._tickets[0].started is not None else None
        if running is not None and len(self._tickets) > 1:
            running.stop.limit = min(running.stop.limit, self.shared_limit)

    def _wait(self, i: int) -> float:
        """At most how long the runs before position `i` hold the slot: the running one's time left, and each
        waiting one's limit (SHARED_LIMIT: someone, the visitor at `i`, waits behind it)."""
        ahead = self._tickets[:i]
        left = 0.0
        for t in ahead:
            if t.started is not None:
                left += max(0.0, t.stop.limit - (self.clock() - t.started))
            else:
                left += self.shared_limit
        return left


def _snapshot(model: DeepMLP) -> DeepMLP:
    """A copy of `model` on the CPU, in eval mode, without its training-time hooks. Built under fork_rng: a new
    DeepMLP initializes its weights from torch's global RNG, which the run goes on drawing its batches from."""
    with torch.random.fork_rng(devices=[]):
        copy_ = DeepMLP(model.config)
    copy_.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy_.eval()


def stream_training(settings: PlaygroundSettings, stop: threading.Event | None = None,
                    time_limit: float = TIME_LIMIT, device: str = "cpu"):
    """Train `settings` and yield a PlaygroundUpdate for epoch 0 and after every epoch.

    A normal run yields exactly settings.epochs + 1 updates, the last with done=True. The run ends early,
    within one batch, when `stop` is set or after `time_limit` seconds: then one more update repeats the
    last finished epoch with `stopped` saying why (the unfinished epoch is dropped). A diverging loss ends
    it too (train_epochs' message, on that epoch's update). torch's thread count is left alone: it is
    process-wide, the app's to set. On `device` (the data is copied there once per run).
    """
    start = time.monotonic()
    stop = stop or threading.Event()
    # the switch's own limit (RunQueue shortens it when someone waits) or `time_limit`, whichever is shorter
    limit = lambda: min(time_limit, getattr(stop, "limit", time_limit))  # noqa: E731
    timed_out = lambda: time.monotonic() - start > limit()  # noqa: E731
    method = to_method(settings)
    data, note = playground_data(settings.train_size, settings.seed)
    data = on_device(data, device)
    config = {**method.hyperparameters(), "train_size": len(data.train),
              "val_size": len(data.val), "test_size": len(data.test), "data_source": data.source}
    probe = Split(data.test.x[:TEST_PROBE], data.test.y[:TEST_PROBE])
    history: list[dict] = []
    test_accs: list[float] = []
    last = None
    for step in train_epochs(method, data, should_stop=lambda: stop.is_set() or timed_out(), device=device):
        history.append(step.record)
        test_accs.append(evaluate(step.model, probe)[1])
        epoch = step.record["epoch"]
        done = epoch == step.total_epochs or step.stopped is not None
        final = evaluate(step.model, data.test)[1] if done else None
        snapshot = _snapshot(step.model)
        last = PlaygroundUpdate(epoch, step.total_epochs, tuple(history), tuple(test_accs), settings, config,
                                note, time.monotonic() - start, step.stopped, done, final, len(data.test), snapshot)
        yield last
        if last.done:
            return
    if last is not None and not last.done:  # train_epochs returned early: the stop switch or the clock
        why = (f"stopped at your request during epoch {last.epoch + 1}" if stop.is_set() else
               f"stopped by the {limit():.0f} s time limit during epoch {last.epoch + 1} (it keeps the "
               "training slot turning over for other visitors" + (", who were waiting" if limit() < time_limit
                                                                   else "") + "; try fewer images, epochs or units)")
        yield replace(last, seconds=time.monotonic() - start, stopped=why, done=True)


def warm() -> None:
    """Load the dataset and train one tiny epoch, so the first visitor's run does not pay for decoding
    FashionMNIST and torch's one-time start-up of training (`python -m bench.playground_speed` times both)."""
    for _ in stream_training(PlaygroundSettings(depth=2, width=8, epochs=1, train_size=POLICY["train_size"].lo)):
        pass


# ---------------------------------------------------------------------------------------------- export

EXPORT_NAMES = {METRICS: "playground-metrics.json", WEIGHTS: "playground-model.safetensors",
                CONFIG: "playground-config.json"}  # checkpoint file -> the name a visitor downloads it under


def run_record(update: PlaygroundUpdate) -> dict:
    """A finished (or stopped) run as a checkpoint's metrics.json, the fields `python -m core train` writes:
    the recipe as a registry Method's hyperparameters, the history, and the exported model's loss and accuracy
    on the whole test split (measured here: a stopped run has only its probe's), so that core.checkpoint reads
    it like any checkpoint. "limit" is how many training images it used."""
    method = to_method(update.settings)
    data, _ = playground_data(update.settings.train_size, update.settings.seed)
    test_loss, test_acc = evaluate(update.model, data.test)
    return {"method": "playground", "seed": update.settings.seed, "config": method.hyperparameters(),
            "epochs": update.epoch, "train_seconds": round(update.seconds, 2), "test_acc": test_acc,
            "test_loss": test_loss if math.isfinite(test_loss) else None, "stopped": update.stopped,
            "data_source": update.config["data_source"], "limit": update.config["train_size"],
            "torch_version": torch.__version__, "history": list(update.history)}


def export_run(update: PlaygroundUpdate, folder: Path) -> list[Path]:
    """Write the run as a checkpoint (core.checkpoint.save_checkpoint: safetensors and JSON, each file complete
    before it takes its name) into folder/checkpoint, and return the three files under their download names
    (EXPORT_NAMES' order: metrics, weights, config), hard links made once the checkpoint is whole. Put back
    under their checkpoint names in one folder, they load with core.checkpoint.load_checkpoint."""
    if update.model is None:
        raise ValueError("This run has no model to export (it ended before its first epoch).")
    if not all(torch.isfinite(v).all() for v in update.model.state_dict().values() if v.is_floating_point()):
        raise ValueError("This run's weights are not finite numbers (its loss diverged): there is no model to "
                         "download. Try a smaller learning rate.")
    folder = Path(folder)
    saved = save_checkpoint(update.model, run_record(update), folder / "checkpoint")
    paths = []
    for name, shown_as in EXPORT_NAMES.items():
        os.link(saved / name, folder / shown_as)
        paths.append(folder / shown_as)
    return paths


# ------------------------------------------------------------------------------------------------ chart

RUN_TITLE = "Your network"
TEST_LABEL = f"test ({TEST_PROBE:,} images)"


def run_data(update: PlaygroundUpdate | None) -> dict:
    """The run so far as one side of the browser chart (ui.chart_data.method_data: every epoch's per-layer
    statistics and curves), with its test accuracy after every epoch as a third curve. None: no run yet."""
    if update is None:
        return {**chart_data.method_data("playground", RUN_TITLE, None), "problem_note": "press Train to start"}
    metrics = update.metrics
    data = chart_data.method_data("playground", metrics["title"], metrics)
    if not update.done:  # "epoch 3 (last)" would say the run has ended
        data["labels"][-1] = f"epoch {update.epoch}" + (" (init)" if update.epoch == 0 else "")
    data["curves"]["test_acc"] = [float(a) for a in update.test_accs]
    data["curve_labels"] = {"test": TEST_LABEL}
    return data


def chart(update: PlaygroundUpdate | None, reference: dict, total_epochs: int | None = None) -> dict:
    """The Playground's chart: the run so far (left) beside `reference` (right: a pre-trained method's
    ui.chart_data.method_data, cut to the run's planned epochs with ui.chart_data.until), on shared axes. The
    epoch axis spans the planned epochs (it does not move while the run streams), the slider the ones
    trained so far, and the chart opens at the latest. JSON-ready; a few milliseconds for a default run,
    so it is rebuilt whole after every epoch. `total_epochs`: the axis without a run (None: the default's)."""
    total = update.total_epochs if update is not None else total_epochs or PlaygroundSettings().epochs
    epoch = update.epoch if update is not None else total
    return chart_data.pair_data(run_data(update), chart_data.until(reference, total), max_epoch=total, epoch=epoch)
