"""The schema of every JSON file of a checkpoint (config.json, metrics.json, seeds/<seed>.json): each field the
app, the results table and the CLI read, with its type, range and length, and the checks across fields.

Why pydantic rather than hand-written checks: it is already installed (gradio depends on it); a strict
TypedDict per file reads as the file's documentation, field by field; `TypeAdapter.validate_json` parses and
checks in one pass in Rust, as fast as json.loads, with a nesting limit of its own (200 levels, no Python
recursion: no RecursionError), integers of more than 4,300 digits refused by the parser (no int-conversion
ValueError), NaN / Infinity / 1e999 read as floats the schema then refuses; and every problem comes back with
its path in the file. What it returns is a plain dict equal to what json.loads makes of the file: the rest of
the app works on dicts, and a key an older file lacks stays absent ("not recorded"). The checks across fields
(epochs in order, layer names against the config's depth, ...) are Python, in check_run.

Limits, beside each file's size (core.checkpoint): every number has a range (floats finite; measurements
within float32's), every list a length, every string a length or a pattern; nothing in the schema nests more
than 5 levels, so anything deeper is refused where the schema expects a number or a string. A problem is
reported as "<path>: expected <what>, got <value>", the value shown short and inert (strings JSON-escaped,
cut, markup characters escaped): messages go on a public page.
"""
# (no `from __future__ import annotations`: pydantic and _expected() read the annotations at run time)
import json
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Literal, NotRequired, Required, Union, get_args, get_origin

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict, is_typeddict  # (pydantic needs typing_extensions' TypedDict before 3.12)

from . import limits
from .limits import FLOAT32_MAX, MAX_STAGES, MODEL, RECIPE
from .models import ModelConfig

MAX_CONFIG_BYTES = 64 * 2**10
MAX_METRICS_BYTES = 32 * 2**20  # the 701 rows of the layer-wise run take 1.1 MB
# a run's epochs, all stages together, as the recipe's limit; a history holds at most MAX_EPOCHS + 1 rows
MAX_EPOCHS = RECIPE["epochs"].hi
MAX_DEPTH = MODEL["depth"].hi
MAX_TEXT = 4096  # free text: data_source
MAX_SHOWN = 40  # characters of a refused string shown in the message
FLOAT32_TINY = 1.4e-45  # a recorded measurement is a float32's value (or 0): at most FLOAT32_MAX, at least this


class Invalid(ValueError):
    """A file does not match its schema; the message says where and how (the caller adds the file's name)."""


@dataclass(frozen=True)
class Says:
    """What a field must hold, in words: "expected <text>" in a message (Annotated metadata)."""
    text: str


_STRICT = ConfigDict(strict=True, extra="forbid")


def _whole(lo: int, hi: int):
    return Annotated[int, Field(ge=lo, le=hi), Says(f"a whole number {lo}..{hi}")]


def _nullable(tp, says: str):
    return Annotated[tp | None, Says(says)]


def _limited(limit: limits.Limit):
    """core.limits' limit of a field as the type the file's field has, saying the same in its messages."""
    says = Says(limit.says())
    if isinstance(limit, limits.Whole):
        return Annotated[int, Field(ge=limit.lo, le=limit.hi), says]
    if isinstance(limit, limits.Real):
        low = {"gt": limit.lo} if limit.above else {"ge": limit.lo}
        return Annotated[float, Field(**low, le=limit.hi, allow_inf_nan=False), says]
    if isinstance(limit, limits.OneOf):
        return Annotated[Literal[limit.options], says]
    return Annotated[bool, says]


Finite = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False), Says("a finite number")]
NonNegative = Annotated[float, Field(ge=0, le=FLOAT32_MAX, allow_inf_nan=False), Says("a finite number >= 0")]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), Says("a finite number in [0, 1]")]
# a measurement of the training (a loss, a per-layer statistic): what float32 can hold, so 0 or at least
# FLOAT32_TINY (check_run; pydantic has no "0 or more than x"), at most FLOAT32_MAX; null when not measured
Stat = _nullable(Annotated[float, Field(ge=0, le=FLOAT32_MAX, allow_inf_nan=False)], "a finite number >= 0, or null")
StatFraction = _nullable(Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)], "a finite number in [0, 1], or null")
Name = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$"), Says("a name of 1 to 64 characters a-z, 0-9, _")]
Short = Annotated[str, Field(max_length=64), Says("a string of at most 64 characters")]
Text = Annotated[str, Field(max_length=MAX_TEXT), Says(f"a string of at most {MAX_TEXT} characters")]
# shown on the page as it is (why a run stopped, in the method's card): so no Markdown or HTML characters
Sentence = Annotated[str, Field(max_length=500, pattern=r"^[^<>\[\]`*!|~&$#\\]*$"),
                     Says("a plain sentence of at most 500 characters (no markup)")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$"), Says("a SHA-256: 64 hex digits 0-9a-f")]
Seed = _limited(RECIPE["seed"])
Flag = Annotated[bool, Says("true or false")]


def _one_of(values):
    values = tuple(values)
    return Annotated[Literal[values], Says("one of " + ", ".join(json.dumps(v) for v in values))]


# --- config.json: the model ---

Pair = Annotated[list[_whole(1, MAX_DEPTH)], Field(min_length=2, max_length=2),
                 Says("a [src, dst] pair of hidden layers")]


class ConfigFile(TypedDict):
    """config.json: ModelConfig's fields, each within its core.limits limit (so that a message names the field
    and the value); ModelConfig.from_dict then checks skips vs depth."""
    __pydantic_config__ = _STRICT
    depth: _limited(MODEL["depth"])
    width: _limited(MODEL["width"])
    activation: _limited(MODEL["activation"])
    init_std: _limited(MODEL["init_std"])
    norm: _limited(MODEL["norm"])
    skips: Annotated[list[Pair], Field(max_length=MAX_DEPTH * (MAX_DEPTH - 1) // 2),
                     Says("a list of [src, dst] pairs")]
    grad_norm: _limited(MODEL["grad_norm"])
    in_features: _limited(MODEL["in_features"])
    num_classes: _limited(MODEL["num_classes"])


# --- metrics.json and seeds/<seed>.json: one training run ---

class Stage(TypedDict):
    __pydantic_config__ = _STRICT
    depth: _whole(1, MAX_DEPTH)
    frozen: _whole(0, MAX_DEPTH)


class RunConfig(ConfigFile):
    """metrics.json's "config": the model's config and the training recipe (Method.hyperparameters()), each
    field within its core.limits limit."""
    __pydantic_config__ = _STRICT
    optimizer: _limited(RECIPE["optimizer"])
    lr: _limited(RECIPE["lr"])
    weight_decay: _limited(RECIPE["weight_decay"])
    schedule: _limited(RECIPE["schedule"])
    batch_size: _limited(RECIPE["batch_size"])
    epochs: _limited(RECIPE["epochs"])
    stages: Annotated[list[Stage], Field(max_length=MAX_STAGES), Says(f"a list of at most {MAX_STAGES} stages")]
    head_init: NotRequired[_limited(RECIPE["head_init"])]  # (written since layerwise_6)
    seed: Seed
    loss: Name
    val_fraction: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False), Says("a number in [0, 1)")]
    input_scale: Short
    bias_init: Finite


class Layer(TypedDict):
    """One Linear layer's statistics in one epoch (core.diagnostics.layer_table)."""
    __pydantic_config__ = _STRICT
    name: Annotated[str, Field(max_length=16), Says("a layer name")]
    grad_mean_abs: Stat
    grad_max_abs: Stat
    grad_norm: Stat
    error_mean_abs: NotRequired[Stat]  # per image (core.diagnostics); files recorded before it lack it
    update_ratio: Stat
    weight_std: Stat
    rel_weight_change: Stat
    saturation: StatFraction
    activation_std: NotRequired[Stat]  # files recorded before it lack it
    # the forward signal and what core.theory needs (core.diagnostics.probe_stats); files recorded before lack them
    signal_std: NotRequired[Stat]
    derivative_mean: NotRequired[StatFraction]
    norm_gain: NotRequired[Stat]


class Row(TypedDict):
    """One epoch of the history (epoch 0: the untrained model)."""
    __pydantic_config__ = _STRICT
    epoch: _whole(0, MAX_EPOCHS)
    stage: NotRequired[_whole(1, MAX_STAGES)]
    train_loss: Stat
    train_acc: Fraction
    val_loss: Stat
    val_acc: Fraction
    layers: Annotated[list[Layer], Field(max_length=MAX_DEPTH + 1), Says("a list of layers")]


class Run(TypedDict):
    """A seeds/<seed>.json: what `python -m core train` records of a run (core.train.train_method, core.cli)."""
    __pydantic_config__ = _STRICT
    method: Name
    seed: Seed
    config: RunConfig
    epochs: _whole(0, MAX_EPOCHS)
    train_seconds: NonNegative
    test_acc: Fraction
    test_loss: Stat
    stopped: NotRequired[_nullable(Sentence, "a plain sentence of at most 500 characters (no markup), or null")]
    data_source: NotRequired[Text]
    torch_version: NotRequired[Short]
    torch_threads: NotRequired[_whole(1, 4096)]
    device: NotRequired[_one_of(("cpu", "cuda"))]  # (written since `train --device`)
    history: Annotated[list[Row], Field(min_length=1, max_length=MAX_EPOCHS + 1),
                       Says(f"a list of 1..{MAX_EPOCHS + 1} epochs")]
    limit: NotRequired[_nullable(_whole(1, 10**8), "a whole number 1..100000000, or null")]
    sample_acc: NotRequired[Fraction]
    weights_sha256: NotRequired[Sha256]


class CheckpointRun(Run):
    """A checkpoint's metrics.json: a run, with the SHA-256 of its model.safetensors."""
    __pydantic_config__ = _STRICT
    weights_sha256: Required[Sha256]


_ADAPTERS = {t: TypeAdapter(t) for t in (ConfigFile, Run, CheckpointRun)}
_MODEL_KEYS = tuple(ConfigFile.__annotations__)


# --- reading ---

def parse_config(data: bytes) -> ModelConfig:
    """config.json's bytes as a ModelConfig, or Invalid."""
    return _model_config(_validate(ConfigFile, data), "")


def parse_run(data: bytes, checkpoint: bool = True) -> dict:
    """metrics.json's bytes (checkpoint=True, with weights_sha256) or a seed file's, as a dict, or Invalid."""
    run = _validate(CheckpointRun if checkpoint else Run, data)
    check_run(run)
    return run


def model_keys(run_config: dict) -> dict:
    """The ModelConfig part of a metrics.json "config"."""
    return {k: run_config[k] for k in _MODEL_KEYS}


def check_run(run: dict) -> None:
    """What the schema cannot say field by field: the model config holds together, epochs start at 0 and rise,
    every row lists the config's layers in order, stages and epochs agree with the recipe."""
    config = run["config"]
    depth = _model_config(model_keys(config), "config: ").depth
    stages = config["stages"]
    for i, s in enumerate(stages):
        if not s["frozen"] < s["depth"] <= depth:
            raise Invalid(f"config.stages[{i}]: expected frozen < depth <= {depth}, got frozen {s['frozen']}, "
                          f"depth {s['depth']}")
    names = [f"hidden{i + 1}" for i in range(depth)] + ["output"]
    previous = -1
    for i, row in enumerate(run["history"]):
        if i == 0 and row["epoch"] != 0:
            raise Invalid(f"history[0].epoch: expected 0 (the untrained model), got {row['epoch']}")
        if row["epoch"] <= previous:
            raise Invalid(f"history[{i}].epoch: expected more than the epoch before ({previous}), got {row['epoch']}")
        previous = row["epoch"]
        if row.get("stage", 1) > max(1, len(stages)):
            raise Invalid(f"history[{i}].stage: expected 1..{max(1, len(stages))}, got {row['stage']}")
        for key in ("train_loss", "val_loss"):
            _not_subnormal(row[key], f"history[{i}].{key}")
        for j, layer in enumerate(row["layers"]):
            # one pass without a call per value (a million values in the app's start-up), then the slow path
            # only to name the offending one
            if any(v and -FLOAT32_TINY < v < FLOAT32_TINY for k, v in layer.items() if k != "name"):
                for key, value in layer.items():
                    if key != "name":
                        _not_subnormal(value, f"history[{i}].layers[{j}].{key}")
        got = [layer["name"] for layer in row["layers"]]
        if got != names:
            where = next((j for j, (a, b) in enumerate(zip(got, names)) if a != b), None)
            if where is None:
                raise Invalid(f"history[{i}].layers: expected {len(names)} layers (hidden1..hidden{depth}, "
                              f"output), got {len(got)}")
            raise Invalid(f"history[{i}].layers[{where}].name: expected {json.dumps(names[where])}, "
                          f"got {shown(got[where])}")
    if run["epochs"] != previous:
        raise Invalid(f"epochs: expected {previous} (the last epoch of the history), got {run['epochs']}")
    planned = config["epochs"] * max(1, len(stages))
    if run["epochs"] > planned:
        raise Invalid(f"epochs: expected at most {planned} (the recipe's), got {run['epochs']}")


def _not_subnormal(value: float | None, path: str) -> None:
    if value and abs(value) < FLOAT32_TINY:
        raise Invalid(f"{path}: expected 0 or at least {FLOAT32_TINY:g} (float32's smallest), got {shown(value)}")


def _model_config(d: dict, where: str) -> ModelConfig:
    """ModelConfig.from_dict (the checks across fields: skips against the depth), its ValueError as Invalid."""
    try:
        return ModelConfig.from_dict(d)
    except (ValueError, TypeError) as e:
        raise Invalid(f"{where}{e}") from None


def _validate(schema, data: bytes):
    try:
        return _ADAPTERS[schema].validate_json(data, strict=True)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise Invalid(_problem(errors[0], schema) + more) from None


# --- messages ---

_KINDS = {"dict_type": "an object", "list_type": "a list", "string_type": "a string", "int_type": "a whole number",
          "float_type": "a number", "bool_type": "true or false"}


def _problem(error: dict, schema) -> str:
    loc, kind = tuple(error.get("loc") or ()), error.get("type")
    if kind == "json_invalid":
        return f"not valid JSON ({(error.get('ctx') or {}).get('error', 'unreadable')})"
    if kind == "missing":
        return f"{_path(loc)}: missing"
    if kind == "extra_forbidden":
        return f"{_path(loc[:-1]) or 'top level'}: unknown key {shown(loc[-1])}"
    expected = _expected(schema, loc) or _KINDS.get(kind) or str(error.get("msg", "a valid value")).lower()
    head = f"{_path(loc)}: " if loc else ""
    return f"{head}expected {expected}, got {shown(error.get('input'))}"


def _path(loc: tuple) -> str:
    """('history', 3, 'layers', 2, 'grad_mean_abs') -> history[3].layers[2].grad_mean_abs"""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + (key if key.replace("_", "").isalnum() and key.isascii() else shown(key))
    return out


def _unwrap(tp):
    """(the type inside Annotated / NotRequired / Optional, the outermost Says on the way, or None)"""
    says = None
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *meta = get_args(tp)
            says = says or next((m.text for m in meta if isinstance(m, Says)), None)
        elif origin in (NotRequired, Required):
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp) and len(get_args(tp)) == 2:
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp, says


def _expected(schema, loc: tuple) -> str | None:
    """The Says of the field at `loc` in `schema`: the words for what it must hold."""
    tp, says = _unwrap(schema)
    for key in loc:
        if isinstance(key, int) and get_origin(tp) is list:
            tp, says = _unwrap(get_args(tp)[0])
        elif isinstance(key, str) and is_typeddict(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            if key not in hints:
                return None
            tp, says = _unwrap(hints[key])
        else:
            return None
    return says


_INERT = str.maketrans({c: f"\\u{ord(c):04x}" for c in "<>[]()*`!|~&$#"})


def shown(value) -> str:
    """A value from a file, for a message on a public page: short, and inert as Markdown and HTML."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) < 10**15:
            return str(value)
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, float):
        return json.dumps(value) if value == value and abs(value) != float("inf") else \
            ("NaN" if value != value else ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, str):
        cut = value[:MAX_SHOWN]
        text = json.dumps(cut, ensure_ascii=True)[1:-1].translate(_INERT)
        return f'"{text}"' + (f"... ({len(value)} characters)" if len(value) > MAX_SHOWN else "")
    if isinstance(value, (list, tuple)):
        small = json.dumps(value, separators=(",", ":")) if len(value) <= 8 and _numbers_only(value) else ""
        return small if 0 < len(small) <= MAX_SHOWN else f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return f"an object of {len(value)} key{'s' if len(value) != 1 else ''}"
    return "a value of another kind"


def _numbers_only(value, depth: int = 0) -> bool:
    """A short list of (lists of) small whole numbers, such as skips: shown as JSON."""
    if isinstance(value, (list, tuple)):
        return depth < 2 and len(value) <= 8 and all(_numbers_only(v, depth + 1) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**6
