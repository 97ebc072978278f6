"""Backward refuses a value that a recorded op saved and that was then changed in place, through
the tensor itself, a view of its memory (.T, indexing, view/reshape, detach) or another tensor
sharing it; changes nothing saved depends on are allowed (PyTorch's version counters).

Each scenario runs on fastnn against a fixed expectation; where PyTorch is installed the same
scenario also runs on it, to check the expectation is PyTorch's."""
import numpy as np
import pytest

import fastnn
from harness import expect_error

try:
    import torch
except ImportError:  # the oracle is optional; the expectations below are fixed
    torch = None


def _x(lib, rows=2, cols=3, seed=0):
    """A leaf that requires grad, with fresh values."""
    vals = np.random.default_rng(seed).uniform(-2, 2, (rows, cols)).astype(np.float32)
    return lib.tensor(vals, requires_grad=True)


def _const(lib, rows=2, cols=3, seed=1):
    vals = np.random.default_rng(seed).uniform(-2, 2, (rows, cols)).astype(np.float32)
    return lib.tensor(vals)


# name -> (scenario(lib) -> (loss, [leaves]), whether backward must raise). A scenario builds a
# graph, changes something in place under no_grad, and returns the loss to backward through.
def _changed_output(change):
    def run(lib):
        x = _x(lib)
        y = x.exp()  # exp's backward reads its output
        with lib.no_grad():
            change(y)
        return y.sum(), [x]
    return run


def _mul2(t):
    t.mul_(2.0)


SCENARIOS = {
    # the saved output, through every kind of alias of its memory
    "output itself": (_changed_output(_mul2), True),
    "output .T": (_changed_output(lambda y: y.T.mul_(2.0)), True),
    "output .t()": (_changed_output(lambda y: y.t().add_(1.0)), True),
    "output slice": (_changed_output(lambda y: y[1:].mul_(2.0)), True),
    "output row": (_changed_output(lambda y: y[0].zero_()), True),
    "output view": (_changed_output(lambda y: y.view(6).fill_(3.0)), True),
    "output reshape": (_changed_output(lambda y: y.reshape(3, 2).div_(2.0)), True),
    "output detach": (_changed_output(lambda y: y.detach().mul_(2.0)), True),
    "output detach().T": (_changed_output(lambda y: y.detach().T.mul_(2.0)), True),
    "output setitem": (_changed_output(lambda y: y.__setitem__((0, 1), 5.0)), True),
    "output copy_": (_changed_output(lambda y: y.copy_(y * 3.0)), True),
    "output normal_": (_changed_output(lambda y: y[0].normal_()), True),
    # a copy is its own memory
    "output clone": (_changed_output(lambda y: y.clone().mul_(2.0)), False),
}


def _saved_input(lib):
    x, c = _x(lib), _const(lib)
    y = x * c  # mul's backward reads c
    with lib.no_grad():
        c.T.mul_(3.0)
    return y.sum(), [x]


def _unsaved_input(lib):
    x, c = _x(lib), _const(lib)
    y = x + c  # add's backward reads nothing
    with lib.no_grad():
        c.mul_(3.0)
    return y.sum(), [x]


def _unsaved_leaf(lib):
    x = _x(lib)
    y = x.sum() * 2.0  # sum's backward reads only x's shape
    with lib.no_grad():
        x[0].add_(1.0)
    return y, [x]


def _matmul_weight(lib):
    x, w = _x(lib, 4, 3), _const(lib, 5, 3)
    y = x @ w.T  # dx = dy @ w
    with lib.no_grad():
        w[2:].mul_(-1.0)
    return y.sum(), [x]


def _relu_output(lib):
    x = _x(lib)
    y = lib.relu(x)
    with lib.no_grad():
        y.add_(1.0)
    return y.sum(), [x]


def _unrelated(lib):
    x, other = _x(lib), _const(lib)
    y = x.exp()
    with lib.no_grad():
        other.mul_(2.0)  # a change, but not of anything y's graph saved
    return y.sum(), [x]


SCENARIOS.update({
    "saved input, through .T": (_saved_input, True),
    "unsaved input": (_unsaved_input, False),
    "unsaved leaf": (_unsaved_leaf, False),
    "matmul's saved weight, through a slice": (_matmul_weight, True),
    "relu's output": (_relu_output, True),
    "an unrelated tensor": (_unrelated, False),
})


def _run(lib, scenario):
    """(raised, leaves): whether backward raised, and the leaves."""
    loss, leaves = scenario(lib)
    try:
        loss.backward()
    except RuntimeError:
        return True, leaves
    return False, leaves


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_backward_after_an_inplace_change(name):
    scenario, raises = SCENARIOS[name]
    loss, leaves = scenario(fastnn)
    if raises:
        expect_error(RuntimeError, "backward", loss.backward, match="in-place")
        # Checked before any node ran: no leaf holds a partial gradient.
        assert all(t.grad is None for t in leaves)
    else:
        loss.backward()
        assert all(t.grad is not None for t in leaves)
    if torch is not None:
        assert _run(torch, scenario)[0] == raises, f"PyTorch disagrees on {name!r}"


@pytest.mark.parametrize("name", [n for n, (_, r) in sorted(SCENARIOS.items()) if not r])
def test_allowed_changes_leave_gradients_right(name):
    # Where nothing saved changed, the gradients are those of the values as they were used.
    scenario = SCENARIOS[name][0]
    _, leaves = _run(fastnn, scenario)
    if torch is not None:
        _, tleaves = _run(torch, scenario)
        for a, b in zip(leaves, tleaves):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-6)
    else:
        for t in leaves:
            assert np.isfinite(t.grad.numpy()).all()


def test_the_message_names_the_op_and_the_shape():
    x = _x(fastnn, 4, 5)
    y = x.sigmoid()
    with fastnn.no_grad():
        y.T[1].mul_(0.5)
    msg = expect_error(RuntimeError, "backward", y.sum().backward)
    assert "(4, 5)" in msg and "in-place" in msg


def test_a_failed_inplace_op_is_not_a_change():
    x = _x(fastnn)
    y = x.exp()
    with fastnn.no_grad():
        expect_error(ValueError, "add_", y.add_, fastnn.ones(4))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-6)


def test_changes_before_recording_and_after_backward_are_fine():
    x = _x(fastnn)
    c = _const(fastnn)
    c.mul_(2.0)  # before the op that saves it
    y = x * c
    y.sum().backward()
    c.mul_(2.0)  # after backward
    np.testing.assert_allclose(x.grad.numpy(), c.numpy() / 2.0, rtol=1e-6)


def test_retained_graph_sees_a_change_between_backwards():
    x = _x(fastnn)
    y = x.tanh()
    loss = y.sum()
    loss.backward(retain_graph=True)
    with fastnn.no_grad():
        y.mul_(0.0)
    expect_error(RuntimeError, "backward", loss.backward)


def _mlp(nn, seed=0):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


@pytest.mark.parametrize("what", ["input", "output", "weight"])
def test_linear_chain_sees_changes_of_its_values(what):
    # nn.Sequential runs Linear+ReLU layers as one fused op whose saved state lives in C++.
    model = _mlp(fastnn.nn)
    x = fastnn.tensor(np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32))
    out = model(x)
    with fastnn.no_grad():
        {"input": lambda: x.mul_(2.0), "output": lambda: out[0].mul_(2.0),
         "weight": lambda: model[2].weight.T.add_(1.0)}[what]()
    expect_error(RuntimeError, "backward", out.sum().backward)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("opt", ["sgd", "sgd momentum", "adam"])
def test_an_optimizer_step_between_forward_and_backward_is_seen(opt):
    # The step changes the weights the second layer saved (its input requires grad), as
    # PyTorch's in-place updates bump the weights' versions.
    from fastnn.optim import SGD, Adam
    model = _mlp(fastnn.nn)
    make = {"sgd": lambda p: SGD(p, lr=0.1), "sgd momentum": lambda p: SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda p: Adam(p, lr=0.1)}[opt]
    optim = make(model.parameters())
    x = fastnn.tensor(np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32))
    model(x).sum().backward()  # gradients to step with
    loss = model(x).sum()
    optim.step()
    expect_error(RuntimeError, "backward", loss.backward)
    # The ordinary order is untouched.
    optim.zero_grad()
    loss = model(x).sum()
    loss.backward()
    optim.step()


def test_load_state_dict_between_forward_and_backward_is_seen():
    model = _mlp(fastnn.nn)
    state = _mlp(fastnn.nn, seed=1).state_dict()
    x = fastnn.tensor(np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32))
    loss = model(x).sum()
    model.load_state_dict(state)
    expect_error(RuntimeError, "backward", loss.backward)


def test_changes_of_dead_arrays_never_raise():
    # Stamps stay behind for arrays that are gone; a new array at the same address was made
    # after the stamp, so nothing recorded with it can be older than the stamp.
    for i in range(200):
        t = fastnn.ones(3, 4)
        t.add_(1.0)
        del t
        x = _x(fastnn, 3, 4, seed=i)
        y = x.exp()
        y.sum().backward()


def test_many_changes_elsewhere_never_raise():
    # Past the record's capacity it starts afresh: a change can then be missed, never
    # invented.
    x = _x(fastnn)
    y = x.exp()
    keep = [fastnn.zeros(1) for _ in range(64)]
    for _ in range(1100):
        for t in keep:
            t.add_(1.0)
    scratch = []
    for _ in range(70000):
        t = fastnn.zeros(1)
        t.zero_()
        scratch.append(t)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.detach().numpy()), rtol=1e-6)


# ---- values held elsewhere than saved_tensors, and the changes that must (not) count ------
def test_where_condition_and_index_tensors_are_checked():
    # where keeps its condition as a ctx attribute; indexing keeps a tuple holding the index
    # tensor's array. PyTorch raises for both.
    x = _x(fastnn)
    mask = fastnn.tensor([[True, False, True], [False, True, True]])
    y = fastnn.where(mask, x, 0.0)
    with fastnn.no_grad():
        mask.fill_(True)
    expect_error(RuntimeError, "backward", y.sum().backward)
    x = _x(fastnn, 4, 3)
    i = fastnn.tensor([0, 2])
    y = x[i, 1:]
    with fastnn.no_grad():
        i[0] = 3
    expect_error(RuntimeError, "backward", y.sum().backward)


class _KeepsTensor(fastnn.autograd.Function):
    """y = x * s with s kept as a Tensor ctx attribute (not an array): s comes in a tuple,
    which apply passes through as it is (only Tensor arguments become arrays)."""

    @staticmethod
    def forward(ctx, x, box):
        ctx.s = box[0]
        return x * ctx.s._data

    @staticmethod
    def backward(ctx, g):
        return g * ctx.s._data, None


def test_a_tensor_kept_on_ctx_is_checked():
    x, s = _x(fastnn), _const(fastnn)
    y = _KeepsTensor.apply(x, (s,))
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), s.numpy())
    y = _KeepsTensor.apply(x, (s,))
    with fastnn.no_grad():
        s.T[0].mul_(2.0)
    expect_error(RuntimeError, "backward", y.sum().backward)


def test_uniform_and_failed_setitem():
    x = _x(fastnn)
    y = x.exp()
    with fastnn.no_grad():
        expect_error(ValueError, "__setitem__", y.__setitem__, 0, fastnn.ones(5))
    y.sum().backward(retain_graph=True)  # a failed assignment changed nothing
    with fastnn.no_grad():
        y[1].uniform_()
    expect_error(RuntimeError, "backward", y.sum().backward)


def test_mul_and_div_keep_only_what_their_gradients_need():
    # As PyTorch: w * c with only w requiring grad keeps c, not w, so changing w after the
    # forward (an optimizer step before backward) is allowed; c / w keeps both (w's gradient
    # needs c and w).
    for op, raises in (("mul", False), ("div", True)):
        w, c = _x(fastnn), _const(fastnn)
        loss = ((w * c) if op == "mul" else (c / w)).sum()
        with fastnn.no_grad():
            w.add_(1.0)
        if raises:
            expect_error(RuntimeError, "backward", loss.backward)
        else:
            loss.backward()
            np.testing.assert_allclose(w.grad.numpy(), c.numpy())
    w, c = _x(fastnn), _const(fastnn)
    loss = (w / c).sum()
    with fastnn.no_grad():
        w.mul_(3.0)  # w / c: w's gradient is 1 / c, w itself is not needed
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 1.0 / c.numpy(), rtol=1e-6)


def test_gradient_accumulated_into_a_saved_grad_is_seen():
    # x.grad, saved by w * x.grad, then accumulated into in place by a later backward (or
    # inside the same one), or zeroed in place: PyTorch raises; fastnn gave w.grad = 5.
    x, w = _x(fastnn), _x(fastnn, seed=5)
    (x * 2.0).sum().backward()
    y = (w * x.grad).sum()
    (x * 3.0).sum().backward()
    expect_error(RuntimeError, "backward", y.backward)
    x, w = _x(fastnn), _x(fastnn, seed=5)
    (x * 2.0).sum().backward()
    loss = (w * x.grad).sum() + (x * 3.0).sum()
    expect_error(RuntimeError, "backward", loss.backward)
    x, w = _x(fastnn), _x(fastnn, seed=5)
    (x * 2.0).sum().backward()
    y = (w * x.grad).sum()
    fastnn.optim.SGD([x], lr=0.1).zero_grad(set_to_none=False)
    expect_error(RuntimeError, "backward", y.backward)


def test_accumulation_into_a_grad_adopted_as_a_view_is_seen():
    # x used through reshape: its first gradient is adopted as a reshape view, and a view
    # taken of x.grad points at that view's base, not at x.grad's array.
    x = fastnn.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    k = fastnn.tensor(np.arange(6, dtype=np.float32))
    (x.reshape(6) * k).sum().backward()
    w = _x(fastnn, 1, 3)
    z = (w * x.grad[1]).sum()
    (x.reshape(6) * k).sum().backward()
    expect_error(RuntimeError, "backward", z.backward)


def test_optimizer_state_changes_are_seen():
    # A momentum buffer or an Adam moment used in a graph, then changed by a step (PyTorch
    # raises too).
    from fastnn.optim import SGD, Adam
    for make, key in ((lambda p: SGD(p, lr=0.1, momentum=0.9), "momentum_buffer"),
                      (lambda p: Adam(p, lr=0.1), "exp_avg"), (lambda p: Adam(p, lr=0.1), "exp_avg_sq")):
        p = _x(fastnn)
        opt = make([p])
        (p * p).sum().backward()
        opt.step()  # creates the state
        v = _x(fastnn, seed=9)
        loss = (v * opt.state[p][key]).sum()
        opt.step()
        expect_error(RuntimeError, "backward", loss.backward)


def test_accumulating_gradients_of_a_shared_weight_is_fine():
    # A weight used at several steps gets several gradients, added into its .grad in place
    # during the pass: nothing saved that .grad, so nothing raises and the sum is right.
    w = _x(fastnn, 1, 3)
    h = fastnn.ones(1, 3)
    for _ in range(4):
        h = (h * w).tanh()
    h.sum().backward()
    (w * 1.0).sum().backward()  # and across passes
    assert np.isfinite(w.grad.numpy()).all()


def test_an_optimizer_notes_only_what_it_changed():
    # Both parameters are noted; one without a gradient is not changed and not noted.
    from fastnn.optim import SGD
    for momentum in (0.0, 0.9):
        a, b = _x(fastnn), _x(fastnn, seed=7)
        loss = (a * b).sum()  # saves a and b
        (a * 2.0).sum().backward()
        b.grad = fastnn.ones(2, 3)
        SGD([a, b], lr=0.1, momentum=momentum).step()
        expect_error(RuntimeError, "backward", loss.backward)
        a, b = _x(fastnn), _x(fastnn, seed=7)
        (a * 2.0).sum().backward()
        loss = (b * b).sum()
        SGD([a, b], lr=0.1, momentum=momentum).step()  # b has no gradient: not changed
        loss.backward()
        np.testing.assert_allclose(b.grad.numpy(), 2.0 * b.detach().numpy(), rtol=1e-6)


# ---- CUDA arrays (the fake backend: host memory behind CudaArray's interface) -------------
from fake_cuda import fake_cuda  # noqa: E402,F401 - the fixture


@pytest.mark.parametrize("change", ["itself", "view", "reshape", "detach().view", "copy_"])
def test_device_changes_through_views_are_seen(fake_cuda, change):  # noqa: F811
    # A CUDA array's reshapes share its block: _memory_key names the block.
    x = fastnn.tensor(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32),
                      device="cuda", requires_grad=True)
    y = x.exp()
    with fastnn.no_grad():
        {"itself": lambda: y.mul_(2.0), "view": lambda: y.view(6).mul_(2.0),
         "reshape": lambda: y.reshape(3, 2).add_(1.0),
         "detach().view": lambda: y.detach().view(6).fill_(0.0),
         "copy_": lambda: y.copy_(y.detach().clone())}[change]()
    expect_error(RuntimeError, "backward", y.sum().backward)
    z = x.exp()
    with fastnn.no_grad():
        z.clone().view(6).mul_(2.0)
    z.sum().backward()  # a copy is its own block


def test_device_std_and_var_gradients(fake_cuda):  # noqa: F811
    # std's backward (its zero-std floor) with ops the device has; var likewise.
    a = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    a[1] = 2.0  # a row of zero spread: std's gradient there is 0
    for op in ("var", "std"):
        grads = []
        for dev in ("cpu", "cuda"):
            x = fastnn.tensor(a, device=dev, requires_grad=True)
            getattr(x, op)(1).sum().backward()
            grads.append(x.grad.cpu().numpy())
        np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6, atol=1e-7)
        assert np.isfinite(grads[0]).all() and (grads[0][1] == 0).all()
    expect_error(RuntimeError, "any", fastnn.ones(2, device="cuda").any)
