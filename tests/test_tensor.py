"""Tensor construction, dtypes, NumPy interop without copies, views, and bad input."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _C
from harness import expect_error


def test_dtypes_and_inference():
    assert fastnn.tensor([1.0, 2.0]).dtype is fastnn.float32
    assert fastnn.tensor([1, 2]).dtype is fastnn.int64
    assert fastnn.tensor(np.arange(3, dtype=np.int32)).dtype is fastnn.int64
    assert fastnn.tensor(np.ones(3, np.float64)).dtype is fastnn.float32
    assert fastnn.zeros(2, 3).dtype is fastnn.float32
    assert fastnn.arange(4).dtype is fastnn.int64
    assert fastnn.arange(0, 1, 0.25).dtype is fastnn.float32
    assert fastnn.tensor([1, 2], dtype=fastnn.float32).dtype is fastnn.float32
    assert fastnn.full((2,), 3).dtype is fastnn.int64


def test_storage_is_64_byte_aligned():
    for shape in [(1,), (3, 5), (0, 4), (17, 33)]:
        for make in (fastnn.zeros, fastnn.ones, fastnn.randn, fastnn.empty):
            t = make(*shape)
            assert t.data_ptr() % 64 == 0, (make.__name__, shape)
    assert fastnn.tensor([[1.0, 2.0, 3.0]]).data_ptr() % 64 == 0


def test_first_gradient_is_an_aligned_copy(rng):
    """A leaf's first gradient is copied (the graph may hand one array to several leaves) into
    the library's aligned memory, for every dtype and shape the kernels return."""
    from fastnn import _C
    for shape in [(0,), (1,), (3, 5), (2, 0, 3), (17, 33)]:
        for dt in (np.float32, np.int64):
            a = (rng.standard_normal(shape) * 100).astype(dt)
            c = _C.clone(a)
            assert c.dtype == dt and c.shape == a.shape and c.flags.c_contiguous
            np.testing.assert_array_equal(c, a)
            if c.size:
                assert c.ctypes.data % 64 == 0 and not np.shares_memory(c, a)
    with pytest.raises(ValueError, match=r"\[clone\] input"):
        _C.clone(np.zeros((4, 4), np.float32)[:, ::2])
    w = fastnn.tensor([1.0, 2.0], requires_grad=True)
    (w + w).sum().backward()  # one gradient array reaches w twice
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0])


def test_from_numpy_shares_memory():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = fastnn.from_numpy(a)
    a[0, 0] = 42
    assert t[0, 0].item() == 42
    with fastnn.no_grad():
        t.add_(1)
    assert a[1, 2] == 6
    assert np.shares_memory(t.numpy(), a)
    assert np.shares_memory(np.asarray(t), a)
    i = np.arange(4)
    assert fastnn.from_numpy(i).dtype is fastnn.int64


def test_numpy_shares_memory_and_tensor_copies():
    t = fastnn.zeros(3)
    t.numpy()[1] = 5
    assert t.tolist() == [0.0, 5.0, 0.0]
    a = np.ones(3, np.float32)
    c = fastnn.tensor(a)
    a[0] = 9
    assert c[0].item() == 1.0


def test_from_numpy_rejects_what_it_cannot_share():
    expect_error(TypeError, "from_numpy", fastnn.from_numpy, np.ones(3))  # float64
    expect_error(TypeError, "from_numpy", fastnn.from_numpy, np.ones(3, np.int32))
    expect_error(TypeError, "from_numpy", fastnn.from_numpy, [1.0, 2.0])
    expect_error(ValueError, "from_numpy", fastnn.from_numpy, np.ones((3, 4), np.float32).T)
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    expect_error(ValueError, "from_numpy", fastnn.from_numpy, ro)


def test_other_dtypes_are_clear_errors():
    expect_error(TypeError, "tensor", fastnn.tensor, np.array(["a", "b"]))
    expect_error(TypeError, "tensor", fastnn.tensor, [1.0], dtype=np.complex64)
    expect_error(TypeError, "zeros", fastnn.zeros, 3, dtype="float16")
    expect_error(TypeError, "tensor", fastnn.tensor, np.array([1 + 2j]))
    expect_error(ValueError, "zeros", fastnn.zeros, -1)
    expect_error(RuntimeError, "requires_grad_", fastnn.tensor([1, 2]).requires_grad_)


def test_dlpack_roundtrip():
    t = fastnn.arange(6).reshape(2, 3).float()
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t.numpy())
    u = fastnn.from_dlpack(np.arange(4, dtype=np.float32))
    assert u.tolist() == [0, 1, 2, 3]
    torch = pytest.importorskip("torch")
    x = torch.arange(5, dtype=torch.float32)
    f = fastnn.from_dlpack(x)
    x[0] = 7
    assert f[0].item() == 7


def test_views_and_indexing(rng):
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    t = fastnn.tensor(a)
    np.testing.assert_array_equal(t.transpose(0, 2).numpy(), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), a.transpose(1, 2, 0))
    np.testing.assert_array_equal(t.reshape(20, 6).numpy(), a.reshape(20, 6))
    np.testing.assert_array_equal(t.view(-1).numpy(), a.reshape(-1))
    np.testing.assert_array_equal(t.flatten(1).numpy(), a.reshape(4, 30))
    np.testing.assert_array_equal(t[1:3, ::2, -1].numpy(), a[1:3, ::2, -1])
    np.testing.assert_array_equal(t[fastnn.tensor([0, 2, 2])].numpy(), a[[0, 2, 2]])
    np.testing.assert_array_equal(t.unsqueeze(1).numpy(), a[:, None])
    np.testing.assert_array_equal(t[:, :1].squeeze(1).numpy(), a[:, 0])
    np.testing.assert_array_equal(fastnn.cat([t, t], 1).numpy(), np.concatenate([a, a], 1))
    np.testing.assert_array_equal(fastnn.stack([t, t], -1).numpy(), np.stack([a, a], -1))
    assert t.T.shape == (6, 5, 4)
    expect_error(ValueError, "reshape", t.reshape, 7, 7)
    expect_error(IndexError, "transpose", t.transpose, 0, 3)
    expect_error(ValueError, "cat", fastnn.cat, [t, fastnn.zeros(3, 5, 6)], 1)
    expect_error(IndexError, "getitem", t.__getitem__, 9)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (3, 17), (2, 0, 5), (2, 3, 5)])
@pytest.mark.parametrize("n", [1, 3, 20])  # (along dim 0 _C.concat0 copies the pieces)
@pytest.mark.parametrize("grad", [False, True])  # (recorded, or the short no-record route)
def test_stack_and_cat_values_and_gradients(shape, n, grad, rng):
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    for d in range(-len(shape) - 1, len(shape) + 1):
        ts = [fastnn.tensor(a, requires_grad=grad) for a in arrays]
        y = fastnn.stack(ts, d)
        want = np.stack(arrays, d)
        assert y.shape == want.shape and y.is_contiguous() and y.requires_grad == grad
        np.testing.assert_array_equal(y.detach().numpy(), want)
        if not grad:
            continue
        g = rng.standard_normal(want.shape).astype(np.float32)
        y.backward(fastnn.tensor(g))
        for i, t in enumerate(ts):  # input i's gradient is slice i along the new dim
            np.testing.assert_array_equal(t.grad.numpy(), np.take(g, i, axis=d))
    for d in range(-len(shape), len(shape)):
        ts = [fastnn.tensor(a, requires_grad=grad) for a in arrays]
        y = fastnn.cat(ts, d)
        want = np.concatenate(arrays, d)
        assert y.shape == want.shape and y.requires_grad == grad
        np.testing.assert_array_equal(y.detach().numpy(), want)
        if not grad:
            continue
        g = rng.standard_normal(want.shape).astype(np.float32)
        y.backward(fastnn.tensor(g))
        for t, part in zip(ts, np.split(g, n, axis=d)):
            np.testing.assert_array_equal(t.grad.numpy(), part)


@pytest.mark.parametrize("grad", [False, True])
def test_views_with_and_without_recording(grad, rng):
    # Indexing by ints and slices, reshape, view, flatten and unsqueeze take a short route when
    # nothing is recorded (Tensor._plain); recorded or not, the values, shapes and errors are
    # NumPy's, and a recorded call carries the gradient back.
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    t = fastnn.tensor(a, requires_grad=grad)
    cases = [
        (lambda x: x[1], lambda x: x[1]), (lambda x: x[-1], lambda x: x[-1]),
        (lambda x: x[1:3], lambda x: x[1:3]), (lambda x: x[::2], lambda x: x[::2]),
        (lambda x: x[1, 2], lambda x: x[1, 2]), (lambda x: x[1, 2, 3], lambda x: x[1, 2, 3]),
        (lambda x: x[:, 1:4, -1], lambda x: x[:, 1:4, -1]), (lambda x: x[()], lambda x: x),
        (lambda x: x.reshape(20, 6), lambda x: x.reshape(20, 6)),
        (lambda x: x.reshape((5, -1)), lambda x: x.reshape(5, -1)),
        (lambda x: x.reshape([120]), lambda x: x.reshape(120)),
        (lambda x: x.view(2, 2, 30), lambda x: x.reshape(2, 2, 30)),
        (lambda x: x.flatten(), lambda x: x.reshape(-1)),
        (lambda x: x.flatten(1), lambda x: x.reshape(4, 30)),
        (lambda x: x.flatten(0, 1), lambda x: x.reshape(20, 6)),
        (lambda x: x.flatten(-2, -1), lambda x: x.reshape(4, 30)),
        (lambda x: x.flatten(1, 1), lambda x: x),
        (lambda x: x.flatten(-3, 1), lambda x: x.reshape(20, 6)),
        (lambda x: x.flatten(0, -2), lambda x: x.reshape(20, 6)),
        (lambda x: x.flatten(-3, -2), lambda x: x.reshape(20, 6)),
        (lambda x: x.transpose(0, 2).flatten(1), lambda x: x.transpose(2, 1, 0).reshape(6, 20)),
        (lambda x: x.unsqueeze(0), lambda x: x[None]), (lambda x: x.unsqueeze(-1), lambda x: x[..., None]),
        (lambda x: x.unsqueeze(2), lambda x: x[:, :, None]),
        (lambda x: x[:, ::2].reshape(-1), lambda x: x[:, ::2].reshape(-1)),  # a copy, not a view
    ]
    for f, ref in cases:
        y = f(t)
        want = ref(a)
        assert y.shape == want.shape
        np.testing.assert_array_equal(y.detach().numpy(), want)
        assert y.requires_grad == grad and (y.grad_fn is not None) == grad
        if grad:
            g = rng.standard_normal(want.shape).astype(np.float32)
            t.grad = None
            y.backward(fastnn.tensor(g))
            # Each output element is one input element: the same selection applied to the
            # input's flat positions says where each part of g goes.
            src = np.asarray(ref(np.arange(a.size).reshape(a.shape)))
            want_grad = np.bincount(src.ravel(), weights=g.ravel(), minlength=a.size)
            np.testing.assert_allclose(t.grad.numpy(), want_grad.reshape(a.shape), rtol=1e-6)
    assert fastnn.tensor(3.0)[()].shape == () and fastnn.tensor(3.0).flatten().shape == (1,)
    assert fastnn.zeros(0, 3, 4).flatten(1).shape == (0, 12)
    assert fastnn.zeros(2, 0, 4).flatten(0, 1).shape == (0, 4)
    expect_error(IndexError, "flatten", t.flatten, 3)
    expect_error(ValueError, "flatten", t.flatten, 2, 1)
    expect_error(IndexError, "getitem", t.__getitem__, 4)
    expect_error(IndexError, "getitem", t.__getitem__, (0, 0, 0, 0))
    expect_error(IndexError, "getitem", fastnn.tensor(3.0).__getitem__, 0)
    expect_error(ValueError, "reshape", t.reshape, 7, 7)
    expect_error(IndexError, "unsqueeze", t.unsqueeze, 4)


@pytest.mark.parametrize("n", [2, 20])
def test_stack_and_cat_of_strided_and_mixed_pieces(n, rng):
    # Strided views (a column slice, a transpose) among contiguous pieces: _C.concat0 declines
    # them and NumPy copies instead; int64 and bool pieces; a float32 dtype equal to, but not
    # the same object as, the others' takes the general check.
    base = rng.standard_normal((n, 6, 8)).astype(np.float32)
    ts = [fastnn.tensor(base[i]) for i in range(n)]
    views = [t[:, ::2] for t in ts]  # every piece strided
    want = np.stack([t.numpy() for t in ts])
    np.testing.assert_array_equal(fastnn.stack(ts).numpy(), want)
    np.testing.assert_array_equal(fastnn.stack(views).numpy(), want[:, :, ::2])
    np.testing.assert_array_equal(fastnn.cat(views).numpy(), np.concatenate(want[:, :, ::2]))
    mixed = list(ts)
    mixed[1] = fastnn.tensor(base[1].T).transpose(0, 1)  # one strided piece among the rest
    np.testing.assert_array_equal(fastnn.stack(mixed).numpy(), want)
    ints = [fastnn.tensor(rng.integers(-9, 9, 5)) for _ in range(n)]
    np.testing.assert_array_equal(fastnn.stack(ints).numpy(), np.stack([t.numpy() for t in ints]))
    masks = [t > 0 for t in ts]
    np.testing.assert_array_equal(fastnn.cat(masks).numpy(), np.concatenate([m.numpy() for m in masks]))
    same = np.dtype(np.float32).newbyteorder("=")  # equal to float32, another object
    other = fastnn.tensor(base[0])
    other._data = other._data.view(same)
    assert other._data.dtype is not ts[1]._data.dtype
    np.testing.assert_array_equal(fastnn.stack([other] + ts[1:]).numpy(), want)
    np.testing.assert_array_equal(fastnn.stack(ts[1:] + [other]).numpy()[-1], base[0])
    # The copy itself refuses a mismatch rather than writing past out.
    out = np.empty(10, np.float32)
    expect_error(ValueError, "concat0", _C.concat0, [np.ones(4, np.float32)] * 3, out)
    assert _C.concat0([np.ones(5, np.int64)] * 2, out) is False  # (NumPy casts instead)
    assert _C.concat0([np.ones(5, ">f4")] * 2, out) is False
    assert _C.concat0((np.full(4, 2.0, np.float32), np.ones(6, np.float32)), out) is True
    np.testing.assert_array_equal(out, [2.0] * 4 + [1.0] * 6)
    expect_error(TypeError, "concat0", _C.concat0, [1.0], out)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_cat_dim0_of_pieces_of_different_lengths(dtype, rng):
    # Along dim 0 without recording, cat and stack are one _C.cat0 call (checks, allocation,
    # copy); recorded, the general path. Both give the same values and the same messages.
    rows = [0, 1, 5, 2, 0, 3]
    arrays = [(rng.standard_normal((r, 3, 2)) * 10).astype(dtype) for r in rows]
    y = fastnn.cat([fastnn.tensor(a) for a in arrays])
    assert y.shape == (11, 3, 2) and y.dtype is fastnn.tensor(arrays[0]).dtype
    np.testing.assert_array_equal(y.numpy(), np.concatenate(arrays))
    for grad in (False, True):
        bad = [fastnn.ones(2, 3, requires_grad=grad), fastnn.ones(1, 3), fastnn.ones(2, 4)]
        with pytest.raises(ValueError, match=r"^\[cat\] sizes must match except in dim 0: "
                                             r"element 0 has shape \(2, 3\), element 2 has \(2, 4\)$"):
            fastnn.cat(bad)
        with pytest.raises(ValueError, match=r"^\[stack\] all tensors must have the same shape: "
                                             r"element 0 is \(2, 3\), element 1 is \(1, 3\)$"):
            fastnn.stack(bad)
        scalars = [fastnn.tensor(1.0, requires_grad=grad), fastnn.tensor(2.0)]
        with pytest.raises(ValueError, match=r"^\[cat\] zero-dimensional tensor \(element 0\)"):
            fastnn.cat(scalars)
        # dim must be an int or a NumPy integer (PyTorch: not a bool or a float), recorded or not
        expect_error(TypeError, "cat", fastnn.cat, [fastnn.ones(2, requires_grad=grad)] * 2, 0.0)
        expect_error(TypeError, "stack", fastnn.stack, [fastnn.ones(2, requires_grad=grad)] * 2, 0.0)
        expect_error(TypeError, "cat", fastnn.cat, [fastnn.ones(2, requires_grad=grad)] * 2, False)
        assert fastnn.cat([fastnn.ones(2, requires_grad=grad)] * 2, np.int64(0)).shape == (4,)


def test_cat_and_stack_routes_match_the_general_routes(rng):
    # fastnn.cat / fastnn.stack are _C.tensor_cat / _C.tensor_stack: a list or tuple of host
    # tensors with nothing to record and dim 0 (left out, by position or as dim=) in C++,
    # every other call through shape.py's _cat_py / _stack_py. Same values, same errors.
    from fastnn._functions import shape as S
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 4)).astype(np.float32)
    ta, tb = fastnn.tensor(a), fastnn.tensor(b)
    assert fastnn.cat is _C.tensor_cat and fastnn.stack is _C.tensor_stack
    # The common calls must not reach the Python layer at all.
    check_seq = S._check_seq
    S._check_seq = lambda *a: pytest.fail("took the general route")
    try:
        np.testing.assert_array_equal(fastnn.cat([ta, tb]).numpy(), np.concatenate([a, b]))
        np.testing.assert_array_equal(fastnn.stack((ta, ta), dim=0).numpy(), np.stack([a, a]))
    finally:
        S._check_seq = check_seq
    for fast, general, args, neg, want in [
            (fastnn.cat, S._cat_py, [ta, tb], -2, np.concatenate([a, b])),
            (fastnn.stack, S._stack_py, [ta, ta], -3, np.stack([a, a]))]:
        for call in (lambda f: f(args), lambda f: f(tuple(args)), lambda f: f(args, 0),
                     lambda f: f(args, dim=0), lambda f: f(args, np.int64(0)),
                     lambda f: f(iter(args)), lambda f: f(args, neg)):
            got, ref = call(fast), call(general)
            assert got.shape == ref.shape == want.shape and not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), want)
            np.testing.assert_array_equal(ref.numpy(), want)
    one = fastnn.cat([ta])  # a copy, never the input's array
    one.numpy()[0, 0] = 123.0
    assert ta.numpy()[0, 0] == a[0, 0]
    # recorded (grad mode on, an input requires grad) -> the general route; off -> the route
    p = fastnn.nn.Parameter(fastnn.tensor(a))
    y = fastnn.cat([p, tb])
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), np.ones_like(a))
    with fastnn.no_grad():
        z = fastnn.stack((p, p))
    assert not z.requires_grad and z.shape == (2, 3, 4)
    for fast in (fastnn.cat, fastnn.stack):
        name = fast.__name__
        expect_error(ValueError, name, fast, [])
        expect_error(TypeError, name, fast, [ta, a])
        expect_error(ValueError, name, fast, [ta, fastnn.tensor([1, 2, 3, 4])])  # (promoted)
        expect_error(TypeError, name, fast, [ta, ta], True)
        expect_error(IndexError, name, fast, [ta, ta], 2**70)
        with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'axis'"):
            fast([ta, ta], axis=0)


def test_dims_and_sizes_are_ints():
    # Dims: an int, a NumPy integer or a 0-d int64 tensor; a bool or a float is a TypeError
    # naming the op and the argument, as PyTorch's argument parser, on every path (including
    # the shortcuts for flatten() and permute(), and 0-d tensors). Sizes likewise: int() would
    # have turned 2.5 into 2 and given a wrong shape.
    x = fastnn.ones(2, 3)
    assert x.transpose(fastnn.tensor(0), np.int64(1)).shape == (3, 2)
    assert fastnn.cat([x, x], fastnn.tensor(0)).shape == (4, 3)
    assert x.reshape(np.int64(3), fastnn.tensor(2)).shape == (3, 2)
    expect_error(TypeError, "flatten", x.flatten, False, match="start_dim must be an int")
    expect_error(TypeError, "flatten", x.flatten, 0.0)
    expect_error(TypeError, "permute", x.permute, True, False, match="dims must be ints")
    expect_error(TypeError, "permute", x.permute, 1.0, 0.0)
    expect_error(TypeError, "transpose", x.transpose, 0, 1.0, match="dim1 must be an int")
    expect_error(TypeError, "reshape", x.reshape, 2.5, 3, match="sizes must be ints, got float")
    expect_error(TypeError, "reshape", x.reshape, True, 6)
    expect_error(TypeError, "expand", x.expand, 2.0, 3)
    expect_error(TypeError, "zeros", fastnn.zeros, 2.0, 3)
    expect_error(TypeError, "ones", fastnn.ones, True, 2)
    s = fastnn.tensor(1.0)  # 0-d: dims 0 and -1 only
    assert s.transpose(0, -1).shape == () and s.squeeze(0).shape == () and s.flatten(0, -1).shape == (1,)
    expect_error(TypeError, "transpose", s.transpose, True, 0)
    expect_error(IndexError, "squeeze", s.squeeze, 5)
    expect_error(TypeError, "flatten", s.flatten, 7.5)
    expect_error(IndexError, "transpose", s.transpose, 0, 1)
    # The same rules for reductions, size() and full().
    assert x.mean(fastnn.tensor(1)).shape == (2,) and x.max(np.int64(1)).values.shape == (2,)
    expect_error(TypeError, "transpose", x.transpose, fastnn.tensor([0]), 1)
    expect_error(TypeError, "sum", x.sum, True)
    expect_error(TypeError, "max", x.max, 1.0)
    assert x.size(np.int64(1)) == 3 and x.size(-1) == 3
    expect_error(TypeError, "size", x.size, True)
    expect_error(IndexError, "size", x.size, 5)
    expect_error(IndexError, "size", s.size, 0)
    assert fastnn.full(np.int64(3), 1.0).shape == (3,) and fastnn.full(fastnn.tensor(2), 1.0).shape == (2,)
    expect_error(TypeError, "full", fastnn.full, True, 1.0)


def test_cat0_kernel_directly(rng):
    # _C.cat0: a new 64-byte-aligned array the library owns, or None for the general path.
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal((2, 5)).astype(np.float32)
    out = _C.cat0([a, b], False)
    np.testing.assert_array_equal(out, np.concatenate([a, b]))
    assert out.ctypes.data % 64 == 0 and _C.sole_owner(out)
    np.testing.assert_array_equal(_C.cat0([a, a], True), np.stack([a, a]))
    assert _C.cat0([a, np.asfortranarray(b)], False) is None            # strided
    assert _C.cat0([a.astype(">f4"), a.astype(">f4")], False) is None   # byte-swapped
    assert _C.cat0([a.astype(np.float64)] * 2, False) is None
    assert _C.cat0([a > 0, a > 0], False) is None
    assert _C.cat0([a, a.astype(np.int64)], False) is None              # mixed dtypes
    i = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert _C.cat0([i, i], False).dtype == np.int64
    # Sizes past int64 are refused before anything is allocated or copied (a view that claims
    # 2^62 bytes of a 4-byte buffer: reading it would crash).
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(2**60,), strides=(4,))
    expect_error(ValueError, "cat", _C.cat0, [big, big], False)
    expect_error(ValueError, "stack", _C.cat0, [big, big], True)
    expect_error(ValueError, "empty", _C.empty, (2**31, 2**31, 4))
    expect_error(ValueError, "empty", _C.empty, (2**62, 2))

    # A concatenation of empty pieces can still have too many rows.
    z = np.empty((2**60, 0), np.float32)
    expect_error(ValueError, "cat", _C.cat0, [z] * 16, False)


def test_cat_route_survives_gc_code_that_clears_its_list():
    # The cat route reads a list's items before it allocates anything: an allocation can run
    # the garbage collector, and code run there (a gc callback here, a finalizer in general)
    # that clears the list left the route with stale item pointers (a crash on Python 3.11,
    # checked against the old order). In a subprocess, so a crash fails the test instead of
    # ending the run.
    script = '''
import gc, fastnn
ts = [fastnn.ones(2, 2) for _ in range(4)]
lst = []
armed = [False]
def cb(phase, info):
    if phase == "start" and armed[0]:
        lst.clear()
gc.callbacks.append(cb)
keep = []
gc.set_threshold(1)
for k in range(4):
    for i in range(200):
        for f in (fastnn.cat, fastnn.stack):
            lst = list(ts)
            for _ in range(k):
                keep.append([])
            armed[0] = True
            try:
                f(lst)
            except ValueError:
                pass
            armed[0] = False
print("ok")
'''
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


def test_stack_and_cat_dtypes_and_errors():
    i = fastnn.tensor([1, 2])
    assert fastnn.stack([i, i]).dtype is fastnn.int64 and fastnn.stack([i, i]).tolist() == [[1, 2], [1, 2]]
    m = i > 1
    assert fastnn.cat([m, m]).dtype is fastnn.bool and fastnn.cat([m, m]).tolist() == [False, True] * 2
    x = fastnn.ones(2)
    expect_error(ValueError, "stack", fastnn.stack, [])
    expect_error(TypeError, "stack", fastnn.stack, [x, [1.0, 1.0]])
    # Mixed dtypes are promoted, as PyTorch: bool < int64 < float32, on every dim and with
    # autograd (the float32 pieces get their gradients).
    for f, dim in ((fastnn.cat, 0), (fastnn.stack, 0), (fastnn.stack, 1)):
        npf = np.concatenate if f is fastnn.cat else np.stack
        for parts, want in [((x, i), fastnn.float32), ((i, m), fastnn.int64),
                            ((m, x, i), fastnn.float32), ((m, m), fastnn.bool)]:
            got = f(list(parts), dim)
            assert got.dtype is want
            np.testing.assert_array_equal(
                got.numpy(), npf([p.numpy().astype(want.name) for p in parts], dim))
    w = fastnn.ones(2, requires_grad=True)
    y = fastnn.cat([w, i, m])
    assert y.dtype is fastnn.float32 and y.requires_grad
    (y * fastnn.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0]
    expect_error(ValueError, "stack", fastnn.stack, [x, fastnn.ones(3)])
    expect_error(IndexError, "stack", fastnn.stack, [x, x], 2)
    expect_error(ValueError, "cat", fastnn.cat, [fastnn.ones(2, 3), fastnn.ones(2)], 0)
    expect_error(ValueError, "cat", fastnn.cat, [fastnn.tensor(1.0), fastnn.tensor(2.0)])
    # A generator works, as in PyTorch.
    assert fastnn.stack(t for t in (x, x)).shape == (2, 2)


@pytest.mark.parametrize("shape,dims", [((4, 5, 6), (1, 2, 0)), ((4, 5, 6), (2, 0, 1)),
                                        ((2, 3, 4, 5), (3, 1, 0, 2)), ((2, 3, 4, 5), (-1, 0, -2, 1)),
                                        ((3, 1), (1, 0)), ((0, 3, 2), (2, 0, 1)), ((7,), (0,))])
def test_permute_values_and_gradients(shape, dims, rng):
    # Every permutation's backward applies the inverse (a 3-cycle is not its own inverse).
    a = rng.standard_normal(shape).astype(np.float32)
    x = fastnn.tensor(a, requires_grad=True)
    y = x.permute(*dims)
    np.testing.assert_array_equal(y.detach().numpy(), a.transpose(dims))
    r = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(fastnn.tensor(r))
    # d/dx sum(r * x.transpose(dims)) puts r[j] back where x.transpose(dims)[j] came from.
    want = np.empty_like(a)
    want.transpose(dims)[...] = r
    np.testing.assert_array_equal(x.grad.numpy(), want)
    xt = fastnn.tensor(a, requires_grad=True)
    xt.T.backward(fastnn.tensor(np.ascontiguousarray(a.T)))
    np.testing.assert_array_equal(xt.grad.numpy(), a)


@pytest.mark.parametrize("shape", [(), (4,), (3, 5), (2, 3, 4)])
def test_T_and_t(shape, rng, monkeypatch):
    # x.T (every dim reversed) and x.t() (2-D): with nothing to record, a view of the same
    # memory (NumPy's own transpose; x.T in C, _C.tensor_T); recorded when the tensor requires
    # grad in grad mode (tensor.py's _T_py, which reaches shape.py through _fnmod).
    a = rng.standard_normal(shape).astype(np.float32)
    x = fastnn.tensor(a)
    want = a.T
    T = importlib.import_module("fastnn.tensor")
    monkeypatch.setattr(T, "_fnmod", lambda *a: pytest.fail("took the general route"))
    y = x.T
    if len(shape) <= 2:
        yt = x.t()  # C too (_C.tensor_t)
        np.testing.assert_array_equal(yt.numpy(), want)
    monkeypatch.undo()
    np.testing.assert_array_equal(y.numpy(), want)
    for y in [x.T] + ([x.t()] if len(shape) <= 2 else []):
        if len(shape) < 2:
            assert y is x  # (as fastnn has done: 0-d and 1-D tensors are their own transpose)
            continue
        assert y.shape == want.shape and not y.requires_grad and y.grad_fn is None
        np.testing.assert_array_equal(y.numpy(), want)
        assert np.shares_memory(y.numpy(), x.numpy())
    if len(shape) >= 2:
        w = fastnn.tensor(a, requires_grad=True)
        assert w.T.requires_grad and w.T.grad_fn is not None
        with fastnn.no_grad():
            assert not w.T.requires_grad and w.T.grad_fn is None
            np.testing.assert_array_equal(w.T.numpy(), want)
        if len(shape) == 2:
            assert w.t().grad_fn is not None
        t = x.T
        t.numpy()[...] = 0.0  # a view: writes reach x, as in PyTorch
        assert not x.numpy().any()


def test_t_refuses_more_than_2_dims():
    # As PyTorch (RuntimeError), on the C route and the recorded one alike; it returned the
    # tensor unchanged, a silently wrong "transpose".
    for x in (fastnn.zeros(2, 3, 4), fastnn.zeros(2, 3, 4, requires_grad=True)):
        msg = expect_error(RuntimeError, "t", x.t)
        assert "(2, 3, 4)" in msg


def test_permute_bad_dims():
    t = fastnn.ones(2, 3, 4)
    expect_error(ValueError, "permute", t.permute, 0, 0, 1)
    expect_error(ValueError, "permute", t.permute, 0, 1)
    expect_error(IndexError, "permute", t.permute, 0, 1, 3)
    expect_error(IndexError, "permute", t.permute, 0, 1, -4)


def test_index_gradients_accumulate_duplicates():
    x = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[fastnn.tensor([0, 0, 2])].sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 1.0]
    y = fastnn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y[:, 1].sum().backward()
    assert y.grad.tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_item_tolist_repr():
    t = fastnn.tensor([[1.5]])
    assert t.item() == 1.5 and isinstance(t.item(), float)
    assert fastnn.tensor(3).item() == 3 and isinstance(fastnn.tensor(3).item(), int)
    expect_error(ValueError, "item", fastnn.ones(2).item)
    assert "requires_grad=True" in repr(fastnn.ones(2, requires_grad=True))
    assert repr(fastnn.tensor([1, 2])) == "tensor([1, 2])"


def test_numpy_of_grad_tensor_follows_pytorch():
    t = fastnn.ones(2, requires_grad=True)
    expect_error(RuntimeError, "numpy", t.numpy)
    assert t.detach().numpy().tolist() == [1.0, 1.0]


def test_inplace_on_leaf_requiring_grad_is_refused():
    w = fastnn.ones(3, requires_grad=True)
    expect_error(RuntimeError, "add_", w.add_, 1.0)
    with fastnn.no_grad():
        w.add_(1.0)
    assert w.tolist() == [2.0, 2.0, 2.0]


def test_manual_seed_reproduces():
    fastnn.manual_seed(3)
    a = fastnn.randn(5).tolist()
    fastnn.manual_seed(3)
    assert fastnn.randn(5).tolist() == a
    assert fastnn.rand(1000).numpy().min() >= 0


def test_threads_setting():
    n = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    assert fastnn.get_num_threads() == 1
    fastnn.set_num_threads(n)
    expect_error(ValueError, "set_num_threads", fastnn.set_num_threads, 0)


def test_isa_switching():
    isas = fastnn.supported_isas()
    assert "generic" in isas
    prev = fastnn.get_isa()
    for name in isas:
        fastnn.set_isa(name)
        assert fastnn.get_isa() == name
    fastnn.set_isa(prev)
    expect_error(ValueError, "set_isa", fastnn.set_isa, "sse9")


def test_cuda_reports_unavailable_cleanly():
    if fastnn.cuda.is_available():
        pytest.skip("a CUDA device is present: this checks the no-device behaviour "
                    "(tests/test_cuda.py runs the device)")
    assert fastnn.cuda.is_available() is False
    assert fastnn.cuda.device_count() == 0
    expect_error(RuntimeError, "tensor", fastnn.tensor, [1.0], device="cuda")
    expect_error(RuntimeError, "to", fastnn.ones(2).to, "cuda")
    assert fastnn.ones(2).to("cpu").device == "cpu"


def test_small_storage_recycling_keeps_live_arrays_intact(rng):
    """Library outputs up to 1 KiB reuse freed blocks (csrc/core/tensor.cpp): a reused block
    must never be one that a live array still uses, at any size class or cache depth."""
    from fastnn import _C
    live = {}
    for step in range(3000):
        if live and rng.random() < 0.5:
            del live[list(live)[int(rng.integers(len(live)))]]  # free one (back to the cache)
        n = int(rng.integers(0, 300))  # 0 .. 1196 bytes: every small class and a few over
        a = _C.empty((n,), "float32")
        a[:] = step
        live[step] = a
    addrs = [a.__array_interface__["data"][0] for a in live.values() if a.size]
    assert len(addrs) == len(set(addrs)), "two live arrays share a block"
    for step, a in live.items():
        assert a.__array_interface__["data"][0] % 64 == 0
        assert np.all(a == step), f"array {step} was overwritten"


@pytest.mark.parametrize("name", ["empty", "zeros", "ones"])
def test_factory_fast_route(name, monkeypatch):
    # fastnn.zeros is _C.tensor_zeros (empty, ones likewise): sizes as non-negative ints, by
    # position or as one tuple/list/Size, and no keyword, in C; every other call through
    # tensor.py's _zeros_py. Same shapes, dtype and values either way.
    T = importlib.import_module("fastnn.tensor")  # (fastnn.tensor is the function)
    fast, general = getattr(fastnn, name), getattr(T, f"_{name}_py")
    assert fast is getattr(_C, f"tensor_{name}")
    fill = {"empty": None, "zeros": 0.0, "ones": 1.0}[name]
    shapes = [(1,), (7,), (0,), (3, 5), (0, 4), (17, 33), (2, 1, 3, 1), (64, 65)]
    monkeypatch.setattr(T, "_new", lambda *a: pytest.fail("took the general route"))
    for shape in shapes:
        for t in (fast(*shape), fast(shape), fast(list(shape)), fast(fastnn.Size(shape))):
            assert type(t) is fastnn.Tensor and t.shape == shape and t.dtype is fastnn.float32
            assert not t.requires_grad and t.device.type == "cpu"
            assert t.numpy().flags.c_contiguous and t.numpy().flags.writeable
            if fill is not None:
                assert (t.numpy() == fill).all()
    monkeypatch.undo()
    a, b = fast(4, 4), fast(4, 4)  # new memory every call
    assert not np.shares_memory(a.numpy(), b.numpy())
    # The general route: keywords, other size types, 0-d, errors.
    t = fast(2, 3, dtype=fastnn.int64)
    assert t.dtype is fastnn.int64 and t.shape == (2, 3)
    t = fast(2, 3, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    assert fast(np.int64(2), 3).shape == (2, 3) and fast(fastnn.tensor(2)).shape == (2,)
    assert fast().shape == () and fast(()).shape == ()
    if fill is not None:
        assert fast().item() == fill and (general(2, 2).numpy() == fill).all()
    expect_error(ValueError, name, fast, 2, -1)
    expect_error(ValueError, name, fast, [-3])
    expect_error(TypeError, name, fast, 2.0, 3)
    expect_error(TypeError, name, fast, True)
    expect_error(ValueError, name, fast, 2**62, 4)
    expect_error(ValueError, name, fast, 2**40, 2**30)
    expect_error(ValueError, name, fast, 2**64)
    expect_error(ValueError, name, fast, 2**60)  # (the C route's limit is the same)
    expect_error(ValueError, name, fast, 2**31, 2**29)
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'size'"):
        fast(size=3)


def test_getitem_fast_route(rng, monkeypatch):
    # t[idx] is _C.tensor_getitem for an int, a slice or a tuple of them on a host tensor that
    # records nothing (NumPy's view, with t[i] of a 1-D tensor a 0-d tensor); everything else,
    # and indices NumPy refuses, through shape.py's getitem. The same tensors either way.
    from fastnn._functions import shape as S
    assert fastnn.Tensor.__dict__["__getitem__"] is _C.tensor_getitem_method
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    x, v, i = fastnn.tensor(a), fastnn.tensor(a[0, 0]), fastnn.tensor(np.arange(12).reshape(3, 4))
    cases = [(x, 0), (x, -1), (x, slice(1, 3)), (x, slice(None, None, -2)), (x, (1, 2)),
             (x, (1, slice(0, 5, 2), -1)), (x, (slice(None), 3)), (x, ()), (v, 2), (v, -6),
             (v, slice(2, 2)), (i, (2, 3)), (i, slice(1, None))]
    wants = [S.getitem(t, idx) for t, idx in cases]
    monkeypatch.setattr(S, "_unwrap_index", lambda *a: pytest.fail("took the general route"))
    for (t, idx), want in zip(cases, wants):
        got = t[idx]
        assert type(got) is fastnn.Tensor and got.dtype is want.dtype and got.shape == want.shape
        assert not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert np.shares_memory(got.numpy(), t.numpy()) or got.numpy().size == 0
    monkeypatch.undo()
    assert v[2].shape == () and isinstance(v[2], fastnn.Tensor)  # 0-d, not a NumPy scalar
    # The general route: a recorded tensor, tensor and list indices, None, ..., bools, and
    # the errors.
    w = fastnn.tensor(a, requires_grad=True)
    w[1, 2].sum().backward()
    want = np.zeros_like(a)
    want[1, 2] = 1.0
    np.testing.assert_array_equal(w.grad.numpy(), want)
    with fastnn.no_grad():
        assert not w[0].requires_grad
    np.testing.assert_array_equal(x[fastnn.tensor([0, 2])].numpy(), a[[0, 2]])
    np.testing.assert_array_equal(x[None, 1].numpy(), a[None, 1])
    np.testing.assert_array_equal(x[..., 0].numpy(), a[..., 0])
    np.testing.assert_array_equal(x[np.int64(1)].numpy(), a[1])
    expect_error(IndexError, "getitem", x.__getitem__, 4)
    expect_error(IndexError, "getitem", x.__getitem__, (0, 0, 0, 0))
    expect_error(IndexError, "getitem", v.__getitem__, -7)

    class Interrupting:  # a slice bound interrupted once (the index is not retried)
        calls = 0

        def __index__(self):
            Interrupting.calls += 1
            if Interrupting.calls == 1:
                raise KeyboardInterrupt
            return 1

    with pytest.raises(KeyboardInterrupt):
        x[slice(0, Interrupting())]
    assert Interrupting.calls == 1


def test_reshape_fast_route(rng, monkeypatch):
    # t.reshape(*shape) and t.view(*shape) are _C.tensor_reshape for sizes as ints (-1 once)
    # on a host tensor that records nothing (NumPy's reshape: a view when the layout allows,
    # else a copy); everything else, and shapes NumPy refuses, through tensor.py's
    # _reshape_py. The same tensors either way.
    T = importlib.import_module("fastnn.tensor")
    assert fastnn.Tensor.__dict__["reshape"] is _C.tensor_reshape_method
    assert fastnn.Tensor.__dict__["view"] is _C.tensor_view_method
    a = rng.standard_normal((4, 6)).astype(np.float32)
    x, xt = fastnn.tensor(a), fastnn.tensor(a).t()
    cases = [(x, (24,)), (x, (-1,)), (x, (2, 12)), (x, ((3, 8),)), (x, ([2, -1, 3],)),
             (x, (1, 24, 1)), (xt, (24,)), (xt, (2, -1)), (fastnn.tensor(a[0, 0]), (1,)),
             (fastnn.zeros(0, 3), (3, 0)), (fastnn.zeros(0, 3), (-1, 5))]
    wants = [T._reshape_py(t, *s) for t, s in cases]
    monkeypatch.setattr(T, "_fnmod", lambda *a: pytest.fail("took the general route"))
    for (t, s), want in zip(cases, wants):
        # (view of the transposed one to 24 or (2, -1) needs a copy: PyTorch's error, below)
        for got in (t.reshape(*s),) + ((t.view(*s),) if t is not xt else ()):
            assert type(got) is fastnn.Tensor and got.shape == want.shape and not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            if t is x:
                assert np.shares_memory(got.numpy(), x.numpy())  # a view of a contiguous one
    assert xt.view(6, 4).shape == (6, 4)  # (the same layout: a view)
    monkeypatch.undo()
    # view refuses what needs a copy, on both routes, as PyTorch; reshape copies.
    for t in (xt, fastnn.tensor(a, requires_grad=True).t()):
        expect_error(RuntimeError, "view", t.view, 24)
        expect_error(RuntimeError, "view", t.view, 2, -1)
        r = t.reshape(24)
        assert not np.shares_memory(r.detach().numpy(), t.detach().numpy())
    assert fastnn.zeros(0, 3).t().view(0).shape == (0,)
    # The general route: a recorded tensor, NumPy and 0-d tensor sizes, the errors (PyTorch's:
    # a size below -1 is refused, where NumPy takes any negative size as -1).
    w = fastnn.tensor(a, requires_grad=True)
    w.reshape(3, 8).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones_like(a))
    assert x.reshape(np.int64(3), fastnn.tensor(8)).shape == (3, 8)
    for bad in [(-2, 12), (5, 5), (-1, -1), (4, -5), (2**63,)]:
        expect_error(ValueError, "reshape", x.reshape, *bad)
        expect_error(ValueError, "reshape", w.reshape, *bad)
    expect_error(TypeError, "reshape", x.reshape, 2.0, 12)
    expect_error(TypeError, "reshape", x.reshape, True, 24)
    with pytest.raises(TypeError, match=r"^reshape\(\) got an unexpected keyword argument"):
        x.reshape(shape=(24,))
