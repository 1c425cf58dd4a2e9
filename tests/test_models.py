"""Each method's wiring: what the registry says is what the model computes."""
import pytest
import torch
from torch import nn

from core.methods import BASELINE, METHODS
from core.models import CustomNorm, DeepMLP, GradientNorm


def test_registry_is_one_factor_from_baseline():
    assert {"baseline", "baseline_3", "baseline_5", "weight_std_1", "weight_std_10", "relu", "tanh", "adam",
            "batchnorm", "custom_norm", "skip", "layerwise", "grad_norm"} <= set(METHODS)
    for name, m in METHODS.items():
        assert m.description and m.title
        differing = {f for f in ("depth", "activation", "init_std", "norm", "skips", "grad_norm", "optimizer",
                                 "lr", "stages", "weight_decay", "schedule")
                     if getattr(m, f) != getattr(BASELINE, f)}
        assert differing == set(m.changes), name
        if name not in ("baseline", "best"):
            assert 1 <= len(differing) <= 2, f"{name} changes {differing}"  # adam changes optimizer + its lr


def test_baseline_spec():
    m = DeepMLP(**BASELINE.model_config())
    assert [l.out_features for l in m.linears] == [128] * 7 and m.head.out_features == 10
    assert all(isinstance(a, nn.Sigmoid) for a in m.acts)
    torch.testing.assert_close(m.linears[0].weight.std().item(), 0.05, atol=0.002, rtol=0)
    assert all((l.bias == 0).all() for l in m.linears)
    assert (BASELINE.optimizer, BASELINE.lr, BASELINE.batch_size, BASELINE.epochs, BASELINE.seed) == \
        ("sgd", 0.01, 512, 100, 42)


def _manual_forward(m: DeepMLP, x, norm=lambda i, h: h):
    h, outs = x, {}
    for i in range(m.depth):
        h = m.acts[i](norm(i, m.linears[i](h)))
        for src, dst in m.skips:
            if dst == i + 1:
                h = h + outs[src]
        outs[i + 1] = h
    return m.head(h)


def test_skip_pairs_add_outputs_after_activation():
    m = DeepMLP(**METHODS["skip"].model_config())
    assert m.skips == [[1, 3], [4, 7]]
    x = torch.rand(8, 784)
    torch.testing.assert_close(m(x), _manual_forward(m, x))
    plain = DeepMLP(**METHODS["skip"].model_config() | {"skips": []})
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(plain(x), m(x))  # the skips really change the computation


@pytest.mark.parametrize("method,kind", [("batchnorm", nn.BatchNorm1d), ("custom_norm", CustomNorm)])
def test_normalization_sits_after_linear_before_activation(method, kind):
    m = DeepMLP(**METHODS[method].model_config()).eval()
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
    m = DeepMLP(**METHODS["grad_norm"].model_config())
    assert all(isinstance(g, GradientNorm) for g in m.grad_norms) and len(m.grad_norms) == 7
    x = torch.rand(8, 784)
    torch.testing.assert_close(m(x), _manual_forward(m, x))
    # the first layer's gradient no longer vanishes: compare with the plain baseline at the same init
    torch.manual_seed(0)
    base = DeepMLP(**BASELINE.model_config())
    gn = DeepMLP(**METHODS["grad_norm"].model_config())
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
    m = DeepMLP(**METHODS[name].model_config())
    assert all(isinstance(a, activation) for a in m.acts)
    assert abs(m.linears[1].weight.std().item() - std) < 0.05 * std


def test_depth_variants():
    assert DeepMLP(**METHODS["baseline_3"].model_config()).depth == 3
    assert len(DeepMLP(**METHODS["baseline_5"].model_config()).linears) == 5


def test_bad_model_arguments_are_refused():
    with pytest.raises(ValueError, match="activation"):
        DeepMLP(activation="swish")
    with pytest.raises(ValueError, match="skip"):
        DeepMLP(depth=3, skips=[[2, 5]])
