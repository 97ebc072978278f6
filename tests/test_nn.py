"""nn.Module machinery and layers: registration, state_dict, PyTorch weights, fusion."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from harness import assert_close, expect_error


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(6, 3, bias=False)
        self.register_buffer("scale", fastnn.ones(3))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_registration_and_names():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    # as PyTorch: a module's own parameters and buffers, then its children in order
    assert list(m.state_dict()) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert m.fc2.bias is None
    assert len(list(m.children())) == 3
    assert all(p.requires_grad and p.is_leaf for p in m.parameters())
    assert "Linear(in_features=4, out_features=6, bias=True)" in repr(m)


def test_linear_init_follows_pytorch_bounds():
    fastnn.manual_seed(0)
    lin = nn.Linear(300, 200)
    bound = 1 / math.sqrt(300)  # kaiming_uniform(a=sqrt(5)) reduces to 1/sqrt(fan_in)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    # uniform on [-bound, bound] has std bound/sqrt(3)
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound


def test_state_dict_roundtrip_and_numpy_loading(rng):
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    x = fastnn.randn(5, 4)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_load_state_dict_errors_leave_module_unchanged():
    m = TwoLayer()
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    bad = {k: v.numpy() for k, v in m.state_dict().items()}
    bad["fc2.weight"] = np.zeros((6, 3), np.float32)  # transposed
    bad["fc1.weight"] = np.zeros((6, 4), np.float32)  # valid: must not be applied either
    with pytest.raises(ValueError, match=r"^\[load_state_dict\] fc2.weight: expected shape \(3, 6\)"):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    with pytest.raises(KeyError, match="missing keys"):
        m.load_state_dict({"fc1.weight": before["fc1.weight"]})
    missing, unexpected = m.load_state_dict({"fc1.weight": before["fc1.weight"], "zzz": 1},
                                            strict=False)
    assert "fc1.bias" in missing and unexpected == ["zzz"]


def test_pytorch_weights_give_pytorch_outputs(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 9),
                             torch.nn.GELU(), torch.nn.Linear(9, 3), torch.nn.Softplus(beta=2.0),
                             torch.nn.Linear(3, 5), torch.nn.Sigmoid())
    fm = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 9), nn.GELU(),
                       nn.Linear(9, 3), nn.Softplus(beta=2.0), nn.Linear(3, 5), nn.Sigmoid())
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((11, 7)).astype(np.float32)
    want = tm(torch.from_numpy(x)).detach().numpy()
    got = fm(fastnn.tensor(x)).detach().numpy()
    assert_close(got, want, k=16, c=64, what="sequential vs torch")
    # gradients too
    tx = torch.from_numpy(x).requires_grad_()
    tm(tx).sum().backward()
    fx = fastnn.tensor(x, requires_grad=True)
    fm(fx).sum().backward()
    assert_close(fx.grad.numpy(), tx.grad.numpy(), k=16, c=64, what="input grad vs torch")
    assert_close(fm[0].weight.grad.numpy(), tm[0].weight.grad.numpy(), k=16, c=64,
                 what="weight grad vs torch")


def test_fused_sequential_matches_unfused(rng):
    for act in (nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.Softplus(beta=0.5, threshold=3)):
        lin = nn.Linear(5, 7)
        seq = nn.Sequential(lin, act)
        x = rng.standard_normal((9, 5)).astype(np.float32)
        xf = fastnn.tensor(x, requires_grad=True)
        xu = fastnn.tensor(x, requires_grad=True)
        yf = seq(xf)
        yu = act(lin(xu))
        assert_close(yf.detach().numpy(), yu.detach().numpy(), k=5, c=64, what=type(act).__name__)
        g = fastnn.tensor(rng.standard_normal((9, 7)).astype(np.float32))
        yf.backward(g)
        yu.backward(g)
        assert_close(xf.grad.numpy(), xu.grad.numpy(), k=7, c=64, what="fused grad")


def test_dropout_train_and_eval():
    fastnn.manual_seed(1)
    d = nn.Dropout(0.25)
    x = fastnn.ones(10000)
    y = d(x).numpy()
    assert set(np.unique(y)).issubset({0.0, np.float32(1 / 0.75)})
    assert abs((y == 0).mean() - 0.25) < 0.02
    d.eval()
    assert d(x) is x
    expect_error(ValueError, "Dropout", nn.Dropout, 1.5)


def test_flatten_softmax_modules():
    x = fastnn.randn(2, 3, 4)
    assert nn.Flatten()(x).shape == (2, 12)
    s = nn.Softmax(dim=-1)(x).sum(-1).numpy()
    np.testing.assert_allclose(s, 1.0, rtol=1e-6)
    ls = nn.LogSoftmax(dim=1)(fastnn.randn(2, 5))
    np.testing.assert_allclose(np.exp(ls.numpy()).sum(1), 1.0, rtol=1e-6)


def test_zero_grad_and_train_eval_flags():
    m = TwoLayer()
    m(fastnn.randn(2, 4)).sum().backward()
    assert m.fc1.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.fc1.weight.grad.numpy().sum() == 0
    m.zero_grad()
    assert m.fc1.weight.grad is None
    m.eval()
    assert not m.fc1.training
    m.train()
    assert m.fc2.training


def test_bad_construction():
    expect_error(ValueError, "Linear", nn.Linear, -1, 3)
    expect_error(ValueError, "MSELoss", nn.MSELoss, reduction="avg")
    expect_error(TypeError, "Sequential", nn.Sequential, nn.ReLU(), 3)
    expect_error(ValueError, "Softplus", nn.Softplus, beta=0)


def test_fused_conv_relu_sequential_matches_unfused(rng):
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    seq = nn.Sequential(conv, nn.ReLU())
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    xf = fastnn.tensor(x, requires_grad=True)
    xu = fastnn.tensor(x, requires_grad=True)
    yf, yu = seq(xf), nn.ReLU()(conv(xu))
    np.testing.assert_allclose(yf.detach().numpy(), yu.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = fastnn.tensor(rng.standard_normal(tuple(yf.shape)).astype(np.float32))
    yf.backward(g)
    yu.backward(g)
    assert_close(xf.grad.numpy(), xu.grad.numpy(), k=27, c=64, what="fused conv grad")


def test_sequential_respects_overridden_activation_forward():
    class HalfReLU(nn.ReLU):
        def forward(self, x):
            return x * 0.5

    lin = nn.Linear(2, 2)
    s = nn.Sequential(lin, HalfReLU())
    x = fastnn.ones(1, 2)
    np.testing.assert_allclose(s(x).detach().numpy(), (lin(x) * 0.5).detach().numpy())


def test_reassigning_buffers_and_parameters():
    m = nn.Module()
    m.register_buffer("rm", fastnn.zeros(2))
    m.rm = fastnn.ones(2)
    assert list(m.state_dict()) == ["rm"] and m.rm.tolist() == [1.0, 1.0]
    lin = nn.Linear(2, 2)
    expect_error(TypeError, "Linear", setattr, lin, "weight", fastnn.ones(2, 2))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    lin.bias = None
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.weight = nn.Parameter(fastnn.ones(2, 2))
    assert lin.weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_sequential_slice_keeps_names():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert list(s[1:].state_dict()) == ["2.weight", "2.bias"]
    assert isinstance(s[0], nn.Linear) and len(s[1:]) == 2
