"""core.limits: one limit per field, meaning the same for ModelConfig, Method, a checkpoint's files and the
Playground, which may only narrow it."""
import json
import math
import re
from dataclasses import fields, replace

import numpy as np
import pytest

import ui.playground as pg
from core import limits, models, schema, train
from core.limits import Flag, OneOf, Real, Whole
from core.methods import BASELINE, Method, Stage
from core.models import ModelConfig
from tests.helpers import fake_run


def edges(limit) -> tuple[list, list]:
    """Values just inside a limit and just outside it."""
    if isinstance(limit, Whole):
        return [limit.lo, limit.hi], [limit.lo - 1, limit.hi + 1]
    if isinstance(limit, Real):
        inside = [limit.hi] + ([limit.lo * 1.5 + 1e-9] if limit.above else [limit.lo])
        return inside, [limit.lo if limit.above else limit.lo - 1e-9, limit.hi * 1.01 if limit.hi else 1.0]
    if isinstance(limit, OneOf):
        return list(limit.options), ["not_" + limit.options[0]]
    return [True, False], [1]


@pytest.mark.parametrize("field", list(limits.MODEL))
def test_model_config_and_config_json_take_the_same_values(field):
    """Each model field's limit, at its edges: what ModelConfig takes, config.json may hold, and no more."""
    base = ModelConfig().to_dict()
    inside, outside = edges(limits.MODEL[field])
    for value in inside:  # (a model of the largest size is refused by the loader, before it is built, not here)
        assert getattr(ModelConfig(**{**base, field: value}), field) == value
        assert schema.parse_config(json.dumps({**base, field: value}).encode()) == ModelConfig(**{**base, field: value})
    for value in outside:
        with pytest.raises(ValueError, match=f"^{field} must be "):
            ModelConfig(**{**base, field: value})
        with pytest.raises(schema.Invalid, match=f"^{field}: expected {re.escape(limits.MODEL[field].says())}, got"):
            schema.parse_config(json.dumps({**base, field: value}).encode())


@pytest.mark.parametrize("field", list(limits.RECIPE))
def test_method_and_metrics_json_take_the_same_recipes(field, tmp_path):
    """Each recipe field's limit, at its edges: what Method takes, a run's recorded config may hold, and no more."""
    inside, outside = edges(limits.RECIPE[field])
    run = fake_run("baseline")
    for value in inside:
        assert getattr(replace(BASELINE, **{field: value}), field) == value
        schema.parse_run(json.dumps({**run, "config": {**run["config"], field: value}}).encode(), checkpoint=False)
    for value in outside:
        with pytest.raises(ValueError, match=f"^{field} must be "):
            replace(BASELINE, **{field: value})
        with pytest.raises(schema.Invalid, match=f"^config.{field}: expected "):
            schema.parse_run(json.dumps({**run, "config": {**run["config"], field: value}}).encode(), checkpoint=False)


def test_every_field_has_a_limit_and_the_names_are_what_the_code_builds():
    model_fields = {f.name for f in fields(ModelConfig)}
    assert set(limits.MODEL) == model_fields - {"skips"}  # skips: checked against the depth by ModelConfig
    recipe = {f.name for f in fields(Method)} - {"name", "title", "description", "model", "changes"}
    assert set(limits.RECIPE) == recipe - {"stages"}  # stages: checked against the model's depth by Method
    assert tuple(models.ACTIVATIONS) == limits.ACTIVATIONS  # a module for every activation the limits allow
    assert tuple(train.OPTIMIZERS) == limits.OPTIMIZERS  # an optimizer for every one they allow
    assert set(schema.ConfigFile.__annotations__) == model_fields
    assert set(schema.RunConfig.__annotations__) >= model_fields | recipe


def test_method_checks_its_stages_against_the_model():
    assert replace(BASELINE, stages=(Stage(2), Stage(7, 6))).stages[-1].depth == 7
    with pytest.raises(ValueError, match=r"stages\[1\]: expected 0 <= frozen < depth <= 7 .*got frozen 0, depth 8"):
        replace(BASELINE, stages=(Stage(2), Stage(8)))
    with pytest.raises(ValueError, match=r"stages\[0\]: .*got frozen 2, depth 2"):
        replace(BASELINE, stages=(Stage(2, 2),))
    with pytest.raises(ValueError, match=f"stages: at most {limits.MAX_STAGES}"):
        replace(BASELINE, stages=(Stage(1),) * (limits.MAX_STAGES + 1))


def test_values_are_normalized_the_same_way_everywhere():
    """What a widget or numpy hands over becomes the plain value; strings, None and booleans are never numbers."""
    c = ModelConfig(depth=7.0, width=np.int64(64), activation="ReLU", init_std=np.float32(0.5))
    assert (c.depth, c.width, c.activation, c.init_std) == (7, 64, "relu", 0.5)
    assert type(c.depth) is int and type(c.width) is int and type(c.init_std) is float
    assert replace(BASELINE, lr=np.float64(0.1), epochs=3.0).epochs == 3
    for bad, message in [(dict(depth="7"), "depth must be a number, got '7'."),
                         (dict(depth=True), "depth must be a number, got True."),
                         (dict(depth=7.5), "depth must be a whole number from 1 to 32 hidden layers, got 7.5."),
                         (dict(init_std=math.inf), "init_std must be a finite number, got inf."),
                         (dict(grad_norm=1), "grad_norm must be on or off (true or false), got 1."),
                         (dict(norm=None), "norm must be one of none, batchnorm, custom; got None.")]:
        with pytest.raises(ValueError) as e:
            ModelConfig(**bad)
        assert str(e.value) == message


def test_a_policy_can_only_narrow():
    assert limits.narrowed(limits.MODEL, depth=Whole(1, 10))["depth"] == Whole(1, 10)
    for name, wider in [("depth", Whole(1, 33)), ("depth", Whole(0, 10)), ("init_std", Real(0, 20)),
                        ("init_std", Real(0, 2000, above=True)), ("activation", OneOf(("relu", "gelu"))),
                        ("grad_norm", Whole(0, 1))]:
        with pytest.raises(ValueError, match=f"^{name}: .* is not within "):
            limits.narrowed(limits.MODEL, **{name: wider})
    assert Real(0.5, 20).within(Real(0, 1000, above=True)) and Flag().within(Flag())


def test_the_playground_policy_is_within_the_limits_and_says_so_in_its_messages():
    everything = {**limits.MODEL, **limits.RECIPE}
    for name, limit in pg.POLICY.items():
        if name in everything:
            assert limit.within(everything[name]), name
    assert pg.POLICY["lr"] == Real(0, 1, above=True) and pg.POLICY["depth"] == Whole(1, 10, " hidden layers")
    # a value the limits allow but the policy does not: the policy's words, the control's name
    with pytest.raises(ValueError, match=r"^Learning rate must be greater than 0 and at most 1, got 5\.$"):
        pg.PlaygroundSettings(lr=5)
    assert replace(BASELINE, lr=5).lr == 5  # a registry method may (the limit is 1000)
    settings = pg.PlaygroundSettings(depth=10, width=512, lr=1.0, init_std=20, epochs=20, train_size=54_000)
    assert pg.to_method(settings).model.width == 512  # every setting the policy allows makes a valid Method
