"""nn.Sequential keeps its parsed layers (the plan: which Linear layers form one chain, their
activations and parameters) between calls. Every change that can alter the result must
invalidate it: each test calls the model once (building the plan), changes something, and
checks the next call against the children called one by one (the semantics Sequential must
have), values and gradients."""
import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from fake_cuda import fake_cuda  # noqa: F401 - the fixture
from harness import assert_close


def _model(seed=0):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Softplus(), nn.Linear(4, 5), nn.Tanh(),
                         nn.Linear(5, 2))


def _x(rng, rows=6, cols=3):
    return rng.standard_normal((rows, cols)).astype(np.float32)


def _check(m, x, chain=True):
    """m(x) equals calling its children one by one: output, dx and every parameter's grad.
    chain: whether the call must have run as one LinearChain op."""
    xa, xb = fastnn.tensor(x, requires_grad=True), fastnn.tensor(x, requires_grad=True)
    m.zero_grad()
    ya = m(xa)
    assert (ya.grad_fn.name == "LinearChain") == chain, ya.grad_fn
    ya.sum().backward()
    ga = [p.grad.numpy().copy() if p.grad is not None else None for p in m.parameters()]
    m.zero_grad()
    yb = xb
    for layer in m:
        yb = layer(yb)
    yb.sum().backward()
    gb = [p.grad.numpy() if p.grad is not None else None for p in m.parameters()]
    # NOTE: the chain and the layer-by-layer path run the same kernels (bit-identical in
    # practice); the tolerance only allows for a different GEMM blocking.
    assert_close(ya.detach().numpy(), yb.detach().numpy(), k=5, c=64, what="output")
    assert_close(xa.grad.numpy(), xb.grad.numpy(), k=5 * 6, c=64, what="dx")
    assert len(ga) == len(gb)
    for i, (a, b) in enumerate(zip(ga, gb)):
        assert (a is None) == (b is None), f"grad {i}"
        if a is not None:
            assert_close(a, b, k=5 * 6, c=64, what=f"grad {i}")
    m.zero_grad()
    return ya.detach().numpy()


def test_plan_is_kept_between_calls(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    plan = m._plan
    assert plan is not None
    y1 = _check(m, x)
    assert m._plan is plan, "an unchanged model rebuilt its plan"
    np.testing.assert_array_equal(y0, y1)
    # a training step changes values in place, not the structure: the plan stays
    opt = fastnn.optim.SGD(m.parameters(), lr=0.1)
    m(fastnn.tensor(x)).sum().backward()
    opt.step()
    opt.zero_grad()
    y2 = _check(m, x)
    assert m._plan is plan
    assert not np.array_equal(y1, y2)


def test_replaced_weight_parameter(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    old = m[2].weight
    m[2].weight = nn.Parameter(np.full((5, 4), 0.25, np.float32))
    y1 = _check(m, x)
    assert not np.array_equal(y0, y1)
    assert old.grad is None
    m(fastnn.tensor(x)).sum().backward()
    assert m[2].weight.grad is not None and old.grad is None


def test_replaced_through_parameters_dict(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    m[0]._parameters["bias"] = nn.Parameter(np.full(4, 3.0, np.float32))
    assert not np.array_equal(y0, _check(m, x))
    m[4]._parameters.update(weight=nn.Parameter(np.ones((2, 5), np.float32)))
    _check(m, x)


def test_bias_removed(rng):
    m = _model()
    x = _x(rng)
    _check(m, x)
    m[2].bias = None
    _check(m, x)
    assert len(list(m.parameters())) == 5


def test_load_state_dict(rng):
    m, src = _model(0), _model(1)
    x = _x(rng)
    y0 = _check(m, x)
    m.load_state_dict(src.state_dict())
    y1 = _check(m, x)
    assert not np.array_equal(y0, y1)
    np.testing.assert_array_equal(y1, src(fastnn.tensor(x)).detach().numpy())


def test_softplus_beta_and_threshold(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    m[1].beta = 3.0
    y1 = _check(m, x)
    assert not np.array_equal(y0, y1)
    m[1].threshold = 0.1
    y2 = _check(m, x)
    assert not np.array_equal(y1, y2)


def test_param_array_swapped(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    m[0].weight.data = fastnn.tensor(np.full((4, 3), 0.5, np.float32))
    y1 = _check(m, x)
    assert not np.array_equal(y0, y1)
    # a private swap (no Module involved): caught by the array identity check
    m[4].bias._data = np.full(2, 7.0, np.float32)
    y2 = _check(m, x)
    assert not np.array_equal(y1, y2)


def test_param_becomes_non_contiguous(rng):
    m = _model()
    x = _x(rng)
    _check(m, x)
    w = m[2].weight.detach().numpy()
    m[2].weight._data = np.asfortranarray(w)
    _check(m, x, chain=False)  # the chain takes C-contiguous parameters only
    m[2].weight._data = np.ascontiguousarray(w)
    _check(m, x)


@pytest.mark.parametrize("how", ["setattr", "modules_dict", "add_module"])
def test_module_replaced(rng, how):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    new = nn.Linear(4, 5)
    if how == "setattr":
        setattr(m, "2", new)
    elif how == "modules_dict":
        m._modules["2"] = new
    else:
        m.add_module("2", new)
    assert m[2] is new and list(m._modules) == ["0", "1", "2", "3", "4"]  # same place
    assert not np.array_equal(y0, _check(m, x))


def test_activation_replaced(rng):
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    m._modules["1"] = nn.ReLU()
    y1 = _check(m, x)
    assert not np.array_equal(y0, y1)
    m._modules["3"] = nn.Identity()
    assert not np.array_equal(y1, _check(m, x, chain=False))  # the last Linear runs alone


def test_modules_appended_and_deleted(rng):
    m = _model()
    x = _x(rng)
    _check(m, x)
    m.append(nn.Sigmoid())
    y = _check(m, x)
    assert np.all((y > 0) & (y < 1))
    del m._modules["5"]
    _check(m, x)
    delattr(m, "4")
    assert len(m) == 4
    assert m(fastnn.tensor(x)).shape == (6, 5)
    _check(m, x)
    m._modules.pop("3")
    m._modules.popitem()
    assert len(m) == 2
    _check(m, x, chain=False)  # one Linear (+ Softplus) left: a single fused linear


def test_modules_reordered(rng):
    m = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    x = _x(rng)
    y0 = _check(m, x)
    m._modules.move_to_end("0")  # Tanh, Linear, Linear now
    y1 = m(fastnn.tensor(x)).detach().numpy()
    ref = m[2](m[1](m[0](fastnn.tensor(x)))).detach().numpy()
    np.testing.assert_array_equal(y1, ref)
    assert not np.array_equal(y0, y1)


def test_forward_overridden_on_instance(rng):
    m = _model()
    x = _x(rng)
    _check(m, x)
    calls = []
    lin = m[2]

    def fwd(t):
        calls.append(1)
        return nn.Linear.forward(lin, t) * 2.0
    lin.forward = fwd
    y = m(fastnn.tensor(x))
    assert calls and y.grad_fn.name != "LinearChain"
    _check(m, x, chain=False)
    del lin.forward
    _check(m, x)

    act = m[1]
    act.forward = lambda t: t * 0.0
    y = m(fastnn.tensor(x)).detach().numpy()
    ref = m[4](m[3](m[2](m[0](fastnn.tensor(x)) * 0.0))).detach().numpy()
    np.testing.assert_array_equal(y, ref)


def test_requires_grad_changed(rng):
    m = _model()
    x = _x(rng)
    _check(m, x)
    m[2].weight.requires_grad_(False)
    m.zero_grad()
    m(fastnn.tensor(x)).sum().backward()
    assert m[2].weight.grad is None and m[0].weight.grad is not None
    _check(m, x)


def test_other_inputs_after_plan(rng):
    """The plan is about the modules; the input is checked on every call."""
    m = _model()
    x = _x(rng)
    _check(m, x)
    x3 = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y3 = m(fastnn.tensor(x3))
    assert y3.shape == (2, 6, 2) and y3.grad_fn.name != "LinearChain"
    np.testing.assert_allclose(y3.detach().numpy().reshape(12, 2),
                               m(fastnn.tensor(x3.reshape(12, 3))).detach().numpy(),
                               rtol=1e-5, atol=1e-6)  # hand-picked: same kernels, 2-D vs 3-D
    with pytest.raises(TypeError, match=r"\[linear\]"):
        m(fastnn.tensor(np.ones((2, 3), np.int64)))
    _check(m, x)


def test_two_models_share_nothing(rng):
    a, b = _model(0), _model(1)
    x = _x(rng)
    ya, yb = _check(a, x), _check(b, x)
    assert not np.array_equal(ya, yb)
    np.testing.assert_array_equal(_check(a, x), ya)


def test_plan_after_move_to_fake_device(rng, fake_cuda):
    """.to() swaps every parameter's array for a device array: the next call must run on the
    device (the fake CUDA backend), not through the plan's host chain; back on the host, the
    chain again."""
    import fake_cuda as fake
    m = _model()
    x = _x(rng)
    y0 = _check(m, x)
    m.to("cuda")
    fake.calls.clear()
    y = m(fastnn.tensor(x, device="cuda"))
    assert y.is_cuda and fake.calls
    np.testing.assert_array_equal(y.detach().cpu().numpy(), y0)  # the same kernels underneath
    m.to("cpu")
    np.testing.assert_array_equal(_check(m, x), y0)


def test_copy_and_pickle_after_a_call(rng):
    """A model that has run keeps a plan (with a C++ capsule inside): deepcopy and pickle
    must still work, and each copy runs its own parameters, not the original's."""
    import copy
    import pickle
    m = _model()
    x = _x(rng)
    y = _check(m, x)
    for c in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        np.testing.assert_array_equal(_check(c, x), y)
        c[0].weight.data[...] = 0.0   # the copy's parameters are its own ...
        assert not np.array_equal(_check(c, x), y)
        np.testing.assert_array_equal(_check(m, x), y)   # ... the original is untouched
