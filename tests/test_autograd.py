"""The autograd engine: accumulation, graph reuse, retain_graph, no_grad, errors."""
import numpy as np
import pytest

import fastnn
from harness import expect_error


def test_shared_subexpression_gradients_add():
    x = fastnn.tensor([2.0, -3.0], requires_grad=True)
    y = x * x + x * 3.0  # dy/dx = 2x + 3
    y.sum().backward()
    assert x.grad.tolist() == [7.0, -3.0]


def test_grads_accumulate_across_backward_calls():
    x = fastnn.tensor([1.0], requires_grad=True)
    for _ in range(3):
        (x * 2.0).sum().backward()
    assert x.grad.tolist() == [6.0]


def test_second_backward_without_retain_graph_raises():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = fastnn.sigmoid(x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    y.backward()  # allowed: the first call retained the graph
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-6)
    expect_error(RuntimeError, "backward", y.backward)


def test_backward_on_non_scalar_needs_gradient():
    x = fastnn.ones(3, requires_grad=True)
    y = x * 2.0
    expect_error(RuntimeError, "backward", y.backward)
    expect_error(RuntimeError, "backward", y.backward, fastnn.ones(4))
    y.backward(fastnn.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]


def test_backward_without_grad_raises():
    expect_error(RuntimeError, "backward", fastnn.ones(1).backward)


def test_no_grad_context_and_decorator():
    x = fastnn.ones(2, requires_grad=True)
    with fastnn.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.grad_fn is None

    @fastnn.no_grad()
    def f(t):
        return t * 3.0
    assert not f(x).requires_grad
    assert (x * 2.0).requires_grad
    assert fastnn.is_grad_enabled()


def test_detach_and_leaf_flags():
    x = fastnn.ones(2, requires_grad=True)
    y = x * 2.0
    assert x.is_leaf and not y.is_leaf
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    expect_error(RuntimeError, "requires_grad_", y.requires_grad_, False)


def test_integer_outputs_carry_no_grad():
    x = fastnn.randn(4, 3, requires_grad=True)
    assert not x.argmax(1).requires_grad
    assert not (x > 0).requires_grad


def test_deep_chain_does_not_recurse():
    x = fastnn.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


@pytest.mark.parametrize("fn", [fastnn.tanh, fastnn.sigmoid, lambda t: (t * t).sum(0),
                                lambda t: fastnn.softmax(t, 1)])
def test_gradcheck(fn, rng):
    x = fastnn.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    assert fastnn.autograd.gradcheck(fn, [x])


def test_gradcheck_catches_a_wrong_gradient():
    class Wrong(fastnn.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3  # wrong on purpose

    x = fastnn.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^\[gradcheck\]"):
        fastnn.autograd.gradcheck(Wrong.apply, [x])


def test_zero_d_tensor_used_twice():
    a = fastnn.tensor(1.5, requires_grad=True)
    h = a * a
    ((h * h) * a).backward()  # a^5: gradient 5 a^4; two 0-d gradients meet in the graph
    assert abs(a.grad.item() - 5 * 1.5 ** 4) < 1e-5


def test_inplace_on_graph_tensor_is_refused_not_silently_wrong():
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    expect_error(RuntimeError, "mul_", y.mul_, 3.0)
    expect_error(RuntimeError, "__setitem__", y.__setitem__, 0, 0.0)
    w = fastnn.nn.Parameter(fastnn.zeros(2, 2))
    expect_error(RuntimeError, "add_", w[0].add_, 1.0)  # a view of a leaf that requires grad
    assert w.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    z = fastnn.zeros(3)
    expect_error(RuntimeError, "__setitem__", z.__setitem__, slice(0, 2),
                 fastnn.ones(2, requires_grad=True) * 2.0)
    with fastnn.no_grad():
        y.mul_(3.0)  # outside autograd it is an ordinary in-place update
    assert y.tolist() == [6.0, 12.0, 18.0]


def test_input_modified_after_use_is_detected_in_backward():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    c = fastnn.tensor([3.0, 4.0])
    y = (x * c).sum()
    c.add_(1.0)  # c was saved for the gradient of x
    expect_error(RuntimeError, "backward", y.backward)


@pytest.mark.parametrize("use", ["transpose", "index", "direct"])
def test_modified_input_raises_before_any_gradient_is_written(use):
    # w is used through a view (w.T, w[0]) or directly, then modified in place: backward
    # raises before any node runs, so no leaf is left with a partial (wrong) gradient.
    w = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x = fastnn.tensor([[1.0, 1.0], [1.0, 1.0]], requires_grad=True)
    b = fastnn.tensor([0.5, 0.5], requires_grad=True)
    y = {"transpose": lambda: x @ w.T, "index": lambda: x * w[0], "direct": lambda: x @ w}[use]()
    loss = (y + b).sum()
    with fastnn.no_grad():
        w.add_(10.0)
    expect_error(RuntimeError, "backward", loss.backward)
    assert x.grad is None and w.grad is None and b.grad is None


def test_setitem_shape_error_names_the_op():
    t = fastnn.ones(2, 3)
    expect_error(ValueError, "__setitem__", t.__setitem__, 0, fastnn.ones(4))


def test_no_grad_decorates_generators():
    @fastnn.no_grad()
    def gen():
        yield fastnn.is_grad_enabled()
        yield fastnn.is_grad_enabled()
    assert list(gen()) == [False, False]
    assert fastnn.is_grad_enabled()


class _Probe(fastnn.autograd.Function):
    """Identity whose backward returns a fresh kernel array for x (and, when asked, the
    same array again for y, or keeps it), recording where that array's memory is."""
    ptr = None
    keep = []

    @staticmethod
    def forward(ctx, x, y, mode):
        ctx.mode = mode
        return fastnn._C.clone(x)

    @staticmethod
    def backward(ctx, g):
        gx = fastnn._C.clone(g)
        _Probe.ptr = gx.__array_interface__["data"][0]
        if ctx.mode == "keep":
            _Probe.keep.append(gx)
        return gx, (gx if ctx.mode == "twice" else None), None


def _leaves():
    return (fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True),
            fastnn.tensor([4.0, 5.0, 6.0], requires_grad=True))


def test_a_first_gradient_nothing_else_holds_is_adopted():
    x, y = _leaves()
    _Probe.apply(x, y, "once").sum().backward()
    assert x.grad._data.__array_interface__["data"][0] == _Probe.ptr  # the backward's own array, not a copy
    assert x.grad.tolist() == [1.0, 1.0, 1.0] and y.grad is None


def test_a_gradient_handed_to_two_leaves_is_copied():
    x, y = _leaves()
    _Probe.apply(x, y, "twice").sum().backward()
    assert not np.shares_memory(x.grad._data, y.grad._data)
    x.grad.mul_(2.0)  # in place on one leaf's gradient: the other's is untouched
    assert x.grad.tolist() == [2.0, 2.0, 2.0] and y.grad.tolist() == [1.0, 1.0, 1.0]


def test_a_gradient_the_backward_keeps_is_copied():
    x, y = _leaves()
    _Probe.apply(x, y, "keep").sum().backward()
    assert not np.shares_memory(x.grad._data, _Probe.keep.pop())


def test_user_seed_gradient_is_not_adopted_or_modified():
    x = fastnn.tensor([1.0, -2.0], requires_grad=True)
    seed = np.array([3.0, 4.0], np.float32)
    x.backward(seed)  # backward on a leaf: its gradient is the seed, copied
    assert not np.shares_memory(x.grad._data, seed)
    z = fastnn.tensor([1.0, -2.0], requires_grad=True)
    (z * 1.0).backward(seed)
    assert not np.shares_memory(z.grad._data, seed)
    seed[:] = 0
    assert x.grad.tolist() == [3.0, 4.0] and z.grad.tolist() == [3.0, 4.0]


def test_sole_owner_recognises_only_unshared_library_arrays():
    from fastnn import _C
    a = _C.clone(np.arange(6, dtype=np.float32))
    assert _C.sole_owner(a)
    assert not _C.sole_owner(a.reshape(2, 3))      # a view of a: its base is a
    assert not _C.sole_owner(np.arange(6, dtype=np.float32))  # NumPy's memory
    assert not _C.sole_owner(3.0) and not _C.sole_owner(fastnn.tensor([1.0, 2.0]))
    # A view whose base is a library array that only the view references (the transpose of
    # a transposed result) is looked through; while anything else holds the base, it is not.
    b = _C.clone(np.arange(6, dtype=np.float32)).reshape(2, 3)  # a view of the clone
    v = b.T.T  # another view of the clone (NumPy collapses the chain to it)
    assert not _C.sole_owner(v)  # b references the clone too
    del b
    assert _C.sole_owner(v)
    assert not _C.sole_owner(v.T)  # not C-contiguous
    w = v[:1]
    assert not _C.sole_owner(w)  # shares v's base (and does not span the storage)
    del v
    assert not _C.sole_owner(w)  # the only reference, but only part of the storage


class _Custom(fastnn.autograd.Function):
    """x -> (2x, 3x); backward as ctx.mode says, to reach the engine's less common paths."""

    @staticmethod
    def forward(ctx, x, mode):
        ctx.mode = mode
        return (x * 2).astype(np.float32), (x * 3).astype(np.float32)

    @staticmethod
    def backward(ctx, g2, g3):
        if ctx.mode == "bad_shape":
            return np.zeros(7, np.float32)
        if ctx.mode == "raise":
            raise ValueError("custom backward failed")
        gx = (2 * g2 + 3 * g3).astype(np.float32)
        return gx if ctx.mode == "bare" else (gx,)   # one array, or a short tuple


def test_engine_uncommon_paths():
    # a bare array instead of a tuple, fewer gradients than inputs (mode gets none), and an
    # unused output of a multi-output node (its gradient is zeros)
    for mode in ("bare", "short"):
        x = fastnn.tensor([1.0, 2.0], requires_grad=True)
        a, b = _Custom.apply(x, mode)
        (a * a).sum().backward()   # b unused
        assert x.grad.tolist() == [8.0, 16.0], mode   # d(sum 4x^2)/dx = 8x
    # an intermediate that retains its gradient, and one used twice (gradients summed)
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    (h * h + h).sum().backward()
    assert h.grad.tolist() == [7.0, 13.0] and x.grad.tolist() == [21.0, 39.0]


def test_engine_errors():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    a, _ = _Custom.apply(x, "bad_shape")
    with pytest.raises(RuntimeError, match=r"^\[backward\] _Custom returned a gradient of shape "
                                           r"\(7,\) for an input of shape \(2,\)$"):
        a.sum().backward()
    a, _ = _Custom.apply(x, "raise")
    with pytest.raises(ValueError, match="custom backward failed"):
        a.sum().backward()
    assert x.grad is None   # nothing was accumulated


def test_tensors_built_by_the_engine_are_complete():
    """Function.apply's outputs and the gradients the engine adopts are built in C++ slot by
    slot (as Tensor._make): every attribute must be there, with _make's values."""
    from fastnn.tensor import Tensor
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    a, b = _Custom.apply(x, "short")
    ref = Tensor._make(np.zeros(2, np.float32), a.grad_fn, 1)
    for t, idx in ((a, 0), (b, 1)):
        assert type(t) is Tensor and t.grad_fn is a.grad_fn and not t.is_leaf
        assert t.requires_grad and t.grad is None and t._index == idx
        assert t._retains_grad is False and t._version == 0
    for name in Tensor.__slots__:
        if name != "__weakref__":
            assert hasattr(a, name) and hasattr(ref, name), name
    with fastnn.no_grad():
        c = x * 2.0
    assert c.is_leaf and not c.requires_grad and c._index == 0 and c._version == 0
    c.add_(1.0)
    assert c._version == 1 and c.tolist() == [3.0, 5.0]
    loss = (x * x).sum()
    loss.backward()
    g = x.grad
    assert type(g) is Tensor and g.is_leaf and not g.requires_grad and g.grad is None
    assert g._version == 0 and g.tolist() == [2.0, 4.0]
    import weakref
    assert weakref.ref(g)() is g


def test_backward_fast_path_and_arguments():
    """A scalar loss without a gradient argument goes straight to the engine; retain_graph
    is taken for its truth value."""
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=1)
    loss.backward()  # the graph was kept
    assert x.grad.tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    from fastnn import _C
    loss = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"\[backward\] run_backward takes 4 arguments"):
        _C.run_backward(loss.grad_fn, 0, np.ones((), np.float32))
    with pytest.raises(TypeError):
        _C.run_backward(loss.grad_fn, "0", np.ones((), np.float32), False)
