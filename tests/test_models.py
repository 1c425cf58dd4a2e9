"""Each method's wiring: what the registry says is what the model computes."""
from dataclasses import asdict, fields

import pytest
import torch
from torch import nn

from core.methods import BASELINE, METHODS, Method
from core.models import CustomNorm, DeepMLP, GradientNorm, ModelConfig


def _differing(m: Method) -> set[str]:
    model = {k for k, v in asdict(m.model).items() if v != getattr(BASELINE.model, k)}
    recipe = {f.name for f in fields(Method) if f.name not in ("name", "title", "description", "model", "changes")
              and getattr(m, f.name) != getattr(BASELINE, f.name)}
    return model | recipe


def test_registry_is_one_factor_from_baseline():
    assert {"baseline", "baseline_3", "baseline_5", "weight_std_1", "weight_std_10", "relu", "tanh", "adam",
            "batchnorm", "custom_norm", "skip", "layerwise", "layerwise_6", "grad_norm",
            "grad_norm_lr1e3"} <= set(METHODS)
    for name, m in METHODS.items():
        assert m.description and m.title
        assert _differing(m) == set(m.changes), name
        if name not in ("baseline", "best"):
            # adam changes optimizer + its lr; grad_norm_lr1e3 the layer + lr; layerwise_6 stages + head init
            assert 1 <= len(m.changes) <= 2, f"{name} changes {m.changes}"


def test_reference_layerwise_schedule():
    """NamNguyenWork27's six trainings: [A] [A frozen + B] [A, B frozen + C] [A, B, C] [A, B, C frozen + D]
    [all], with blocks of 2, 2, 2 and 1 hidden layers."""
    stages = [(s.depth, s.frozen) for s in METHODS["layerwise_6"].stages]
    assert stages == [(2, 0), (4, 2), (6, 4), (6, 0), (7, 6), (7, 0)]
    assert METHODS["layerwise_6"].head_init == "default" and METHODS["layerwise"].head_init == "model"


def test_config_round_trips_through_json_and_refuses_bad_values():
    config = METHODS["skip"].model
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["skips"] == [[1, 3], [4, 7]]
    for bad, message in [({"depth": 0}, "depth"), ({"depth": True}, "depth"), ({"init_std": float("nan")}, "init_std"),
                         ({"activation": "swish"}, "activation"), ({"norm": "layer"}, "norm"),
                         ({"grad_norm": 1}, "grad_norm"), ({"in_features": 100}, "in_features")]:
        with pytest.raises(ValueError, match=message):
            ModelConfig.from_dict({**config.to_dict(), **bad})
    with pytest.raises(ValueError, match=r"unknown \['evil'\]"):
        ModelConfig.from_dict({**config.to_dict(), "evil": 1})


def test_begin_stage_freezes_and_draws_a_fresh_head():
    torch.manual_seed(0)
    m = DeepMLP(METHODS["batchnorm"].model)
    old_head = m.head
    m.begin_stage(frozen=2, new_head="default")
    assert m.head is not old_head
    assert [l.weight.requires_grad for l in m.linears] == [False, False] + [True] * 5
    assert [n.weight.requires_grad for n in m.norms] == [False, False] + [True] * 5
    # nn.Linear's default init is uniform in +-1/sqrt(fan_in) with a non-zero bias: about the same std as
    # N(0, 0.05), but bounded (1,280 normal draws would almost surely pass the bound)
    bound = 1 / 128 ** 0.5
    assert m.head.weight.abs().max() <= bound and (m.head.bias != 0).all()
    m.begin_stage(frozen=0, new_head="model")
    assert all(l.weight.requires_grad for l in m.linears) and (m.head.bias == 0).all()
    assert m.head.weight.abs().max() > bound and abs(m.head.weight.std().item() - 0.05) < 0.01
    assert [n for n, _ in m.named_linears(3)] == ["hidden1", "hidden2", "hidden3", "output"]
    with pytest.raises(ValueError, match="new_head"):
        m.begin_stage(new_head="xavier")


def test_baseline_spec():
    m = DeepMLP(BASELINE.model)
    assert [l.out_features for l in m.linears] == [128] * 7 and m.head.out_features == 10
    assert all(isinstance(a, nn.Sigmoid) for a in m.acts)
    torch.testing.assert_close(m.linears[0].weight.std().item(), 0.05, atol=0.002, rtol=0)
    assert all((l.bias == 0).all() for l in m.linears)
    assert (BASELINE.optimizer, BASELINE.lr, BASELINE.batch_size, BASELINE.epochs, BASELINE.seed) == \
        ("sgd", 0.01, 512, 100, 42)


def _manual_forward(m: DeepMLP, x, norm=lambda i, h: h):
    h, outs = x, {}
    for i in range(m.config.depth):
        h = m.acts[i](norm(i, m.linears[i](h)))
        for src, dst in m.config.skips:
            if dst == i + 1:
                h = h + outs[src]
        outs[i + 1] = h
    return m.head(h)


def test_skip_pairs_add_outputs_after_activation():
    m = DeepMLP(METHODS["skip"].model)
    assert m.config.skips == ((1, 3), (4, 7))
    x = torch.rand(8, 784)
    torch.testing.assert_close(m(x), _manual_forward(m, x))
    plain = DeepMLP(ModelConfig(skips=()))
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(plain(x), m(x))  # the skips really change the computation


@pytest.mark.parametrize("method,kind", [("batchnorm", nn.BatchNorm1d), ("custom_norm", CustomNorm)])
def test_normalization_sits_after_linear_before_activation(method, kind):
    m = DeepMLP(METHODS[method].model).eval()
    assert all(isinstance(n, kind) for n in m.norms)
    x = torch.rand(16, 784)
    torch.testing.assert_close(m(x), _manual_forward(m, x, norm=lambda i, h: m.norms[i](h)))


def test_custom_norm_formula():
    x = torch.randn(32, 128) * 3 + 5
    torch.testing.assert_close(CustomNorm()(x), (x - x.mean()) / x.std())
    out = CustomNorm()(x)
    assert abs(out.mean().item()) < 1e-5 and abs(out.std().item() - 1) < 1e-5


def test_gradient_normalization_backward_matches_hand_computation():
    x = torch.randn(4, 5, requires_grad=True)
    y = GradientNorm()(x)
    torch.testing.assert_close(y, x)  # identity forward
    upstream = torch.arange(20.0).reshape(4, 5) ** 2
    y.backward(upstream)
    flat = upstream.flatten().tolist()
    mean = sum(flat) / 20
    std = (sum((v - mean) ** 2 for v in flat) / 19) ** 0.5
    expected = torch.tensor([(v - mean) / (std + 1e-6) for v in flat]).reshape(4, 5)
    torch.testing.assert_close(x.grad, expected)


def test_grad_norm_method_places_layer_after_each_activation():
    m = DeepMLP(METHODS["grad_norm"].model)
    assert all(isinstance(g, GradientNorm) for g in m.grad_norms) and len(m.grad_norms) == 7
    x = torch.rand(8, 784)
    torch.testing.assert_close(m(x), _manual_forward(m, x))
    # the first layer's gradient no longer vanishes: compare with the plain baseline at the same init
    torch.manual_seed(0)
    base = DeepMLP(BASELINE.model)
    gn = DeepMLP(METHODS["grad_norm"].model)
    gn.load_state_dict(base.state_dict())
    y = torch.randint(0, 10, (8,))
    for model in (base, gn):
        nn.functional.cross_entropy(model(x), y).backward()
    assert gn.linears[0].weight.grad.abs().mean() > 1000 * base.linears[0].weight.grad.abs().mean()


@pytest.mark.parametrize("name,activation,std", [("relu", nn.ReLU, 0.05), ("tanh", nn.Tanh, 0.05),
                                                 ("weight_std_1", nn.Sigmoid, 1.0),
                                                 ("weight_std_10", nn.Sigmoid, 10.0)])
def test_activation_and_init_variants(name, activation, std):
    torch.manual_seed(0)
    m = DeepMLP(METHODS[name].model)
    assert all(isinstance(a, activation) for a in m.acts)
    assert abs(m.linears[1].weight.std().item() - std) < 0.05 * std


def test_depth_variants():
    assert DeepMLP(METHODS["baseline_3"].model).config.depth == 3
    assert len(DeepMLP(METHODS["baseline_5"].model).linears) == 5


def test_bad_model_arguments_are_refused():
    with pytest.raises(ValueError, match="activation"):
        DeepMLP(ModelConfig(activation="swish"))
    with pytest.raises(ValueError, match="skip"):
        DeepMLP(ModelConfig(depth=3, skips=((2, 5),)))


@pytest.mark.parametrize("name", ["baseline", "skip", "grad_norm"])
def test_starting_after_a_hidden_layer_continues_the_same_forward(name):
    """features(h, depth, start=k) on hidden layer k's output is the rest of the forward pass, bit for bit;
    a start that a skip connection crosses is refused."""
    torch.manual_seed(0)
    m = DeepMLP(METHODS[name].model)
    x = torch.rand(32, 784)
    for k in (1, 3, 5):
        if any(src <= k < dst for src, dst in m.config.skips):
            with pytest.raises(ValueError, match="skip connection crosses"):
                m(m.features(x, k), start=k)
            continue
        assert torch.equal(m(m.features(x, k), start=k), m(x)), k
        zs = []
        m.features(m.features(x, k), 6, start=k, preactivations=zs)
        assert len(zs) == 6 - k  # the Linear outputs of the layers it ran
