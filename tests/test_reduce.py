"""sum / mean / max / min: forward and backward against tests/reference.py, every dim and dim
tuple of odd-sized 3-D tensors, keepdim, long-sum accuracy, ties, NaN, empty dims, errors."""
import itertools
import operator

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import _C
from fastnn._functions import reduce as fred
from harness import assert_close, check_dim_route_declines, check_op, expect_error

SHAPE3 = (3, 5, 7)
# every single dim (positive and negative), every tuple of dims, and all
DIMS = [None, 0, 1, 2, -1, -3] + [d for n in (2, 3) for d in itertools.combinations(range(3), n)] \
    + [(2, 0), (-1, 1)]


def _k(shape, dim):
    n = 1
    for a in R._axes(np.zeros(shape), dim):
        n *= shape[a]
    return n


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean_dims(dim, keepdim, rng):
    x = rng.standard_normal(SHAPE3)
    k = _k(SHAPE3, dim)
    check_op(lambda t: t.sum(dim, keepdim=keepdim), lambda a: R.reduce_sum(a, dim, keepdim), [x],
             ref_grad=lambda a, g: R.reduce_sum_grad(a, g, dim, keepdim), k=k, scale=3.0, rng=rng)
    check_op(lambda t: t.mean(dim, keepdim=keepdim), lambda a: R.reduce_mean(a, dim, keepdim),
             [x], ref_grad=lambda a, g: R.reduce_mean_grad(a, g, dim, keepdim), k=k, scale=3.0,
             rng=rng)


@pytest.mark.parametrize("shape,dim", [((), None), ((), 0), ((1,), 0), ((17,), None),
                                       ((4, 1, 6), 1), ((33, 16), 0), ((1, 8), (0, 1)),
                                       ((600, 3), 0), ((2, 1100), 1), ((5, 1030, 3), (0, 2)),
                                       # columns in blocks of 32 and a tail (reduce.cpp):
                                       ((7, 70), 0), ((3, 9, 100), 1), ((40, 544), 0)])
def test_sum_shapes(shape, dim, rng, isa):
    x = rng.standard_normal(shape)
    k = _k(shape, dim)
    check_op(lambda t: fastnn.sum(t, dim), lambda a: R.reduce_sum(a, dim), [x],
             ref_grad=lambda a, g: R.reduce_sum_grad(a, g, dim), k=k, scale=3.0, rng=rng)


def test_large_threads(threads, rng):
    x = rng.standard_normal((257, 301))
    for dim in (None, 0, 1):
        check_op(lambda t: t.sum(dim), lambda a: R.reduce_sum(a, dim), [x],
                 ref_grad=lambda a, g: R.reduce_sum_grad(a, g, dim), k=_k(x.shape, dim), scale=3,
                 rng=rng)
        v = x.astype(np.float32)
        for f, ref in ((fastnn.max, R.max_dim), (fastnn.min, R.min_dim)):
            if dim is not None:
                got = f(fastnn.tensor(v), dim)
                want = ref(v, dim)
                np.testing.assert_array_equal(got.values.numpy(), want[0])
                np.testing.assert_array_equal(got.indices.numpy(), want[1])
    big = rng.standard_normal(300_001).astype(np.float32)
    assert fastnn.tensor(big).max().item() == big.max()
    assert fastnn.tensor(big).min().item() == big.min()


def test_long_sum_accuracy(threads):
    # 1e6 values near 1: a running float32 sum drifts by many ulps of the result (checked
    # below with NumPy's cumsum); pairwise / double accumulation stays within a few ulps.
    rng = np.random.default_rng(1)
    x = (1.0 + rng.random(1_000_000) * 1e-3).astype(np.float32)
    want = x.astype(np.float64).sum()
    got = fastnn.tensor(x).sum().item()
    assert abs(got - want) <= 4 * np.spacing(np.float32(want)), (got, want)
    assert abs(float(np.cumsum(x, dtype=np.float32)[-1]) - want) > 16 * np.spacing(np.float32(want))
    # the strided (non-innermost) path: sum over dim 0 of (1e6, 2)
    x2 = np.stack([x, x[::-1]], 1)
    got2 = fastnn.tensor(x2).sum(0).numpy()
    assert np.all(np.abs(got2 - want) <= 4 * np.spacing(np.float32(want)))
    assert abs(fastnn.tensor(x).mean().item() - want / x.size) <= 4 * np.spacing(np.float32(1.0))


def test_results_do_not_depend_on_thread_count(rng):
    x = fastnn.tensor(rng.standard_normal(500_000).astype(np.float32))
    prev = _C.get_num_threads()
    try:
        _C.set_num_threads(1)
        one = x.sum().item()
        _C.set_num_threads(2)
        two = x.sum().item()
    finally:
        _C.set_num_threads(prev)
    assert one == two


def test_int64_sum():
    x = fastnn.tensor(np.arange(24).reshape(2, 3, 4))
    s = x.sum((0, 2))
    assert s.dtype is fastnn.int64 and s.tolist() == np.arange(24).reshape(2, 3, 4).sum((0, 2)).tolist()
    assert x.sum().item() == 276 and x.sum().dtype is fastnn.int64
    big = fastnn.tensor([2 ** 62, 2 ** 62, 5])
    assert big.sum().item() == (2 ** 63 + 5) - 2 ** 64  # wraps, as PyTorch
    assert (fastnn.tensor([1, 2]) > 1).sum().item() == 1  # bool masks count as int64
    expect_error(TypeError, "mean", x.mean)


def test_empty_reductions():
    assert fastnn.zeros(0).sum().item() == 0.0
    assert np.isnan(fastnn.zeros(0).mean().item())
    s = fastnn.ones(3, 0).sum(1)
    assert s.shape == (3,) and s.tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(fastnn.ones(3, 0).mean(1).numpy()).all()
    assert fastnn.ones(0, 3).sum(1).shape == (0,)
    assert fastnn.ones(0, 3).max(1).values.shape == (0,)
    expect_error(IndexError, "max", fastnn.ones(3, 0).max, 1)
    expect_error(IndexError, "min", fastnn.ones(0, 3).min, 0)
    expect_error(RuntimeError, "max", fastnn.ones(0).max)
    x = fastnn.ones(3, 0, requires_grad=True)
    x.sum(1).sum().backward()
    assert x.grad.shape == (3, 0)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("is_max", [True, False])
def test_max_min_dim(dim, keepdim, is_max, rng):
    x = rng.standard_normal(SHAPE3)
    f = fastnn.max if is_max else fastnn.min
    ref = R.max_dim if is_max else R.min_dim
    out = check_op(lambda t: f(t, dim, keepdim).values, lambda a: ref(a, dim, keepdim)[0], [x],
                   ref_grad=lambda a, g: R.extreme_dim_grad(a, g, dim, keepdim, is_max), rng=rng)
    idx = f(fastnn.tensor(x.astype(np.float32)), dim, keepdim).indices
    assert idx.dtype is fastnn.int64 and idx.grad_fn is None
    np.testing.assert_array_equal(idx.numpy(), ref(x.astype(np.float32), dim, keepdim)[1])
    assert out.shape == ref(x, dim, keepdim)[0].shape


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("shape", [(1,), (4, 9), (7, 19), (300, 7), (70000,)])
def test_max_min_all(is_max, shape, rng, isa):
    # (the value alone runs on SIMD registers, four at a time, then the tail; 70000 crosses
    # the 65536-element blocks)
    x = rng.standard_normal(shape)
    f = fastnn.max if is_max else fastnn.min
    check_op(f, R.max_all if is_max else R.min_all, [x],
             ref_grad=R.max_all_grad if is_max else R.min_all_grad, rng=rng)


@pytest.mark.parametrize("n", [1, 5, 64, 77, 200, 70000])
def test_max_min_all_nan_anywhere(n, isa):
    # NaN anywhere (first, in the SIMD body, in the tail) makes max() and min() NaN; -inf and
    # +inf are ordinary values.
    for pos in sorted({0, n // 2, n - 1}):
        x = np.linspace(-3, 3, n).astype(np.float32)
        x[pos] = np.nan
        t = fastnn.tensor(x)
        assert np.isnan(t.max().item()) and np.isnan(t.min().item()), pos
    x = np.linspace(-3, 3, n).astype(np.float32)
    x[n // 3] = np.inf
    x[(2 * n) // 3] = -np.inf
    t = fastnn.tensor(x)
    assert t.max().item() == x.max() and t.min().item() == x.min()


def test_ties():
    x = fastnn.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    v = x.max(1)
    assert v.indices.tolist() == [1, 0]  # first index on ties
    v.values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.max().backward()  # the full max splits the gradient among the ties (PyTorch)
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [0, 0, 0]])
    x.grad = None
    x.min().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 0], [0, 0, 1]])


def test_nan_is_the_max_and_min():
    nan = float("nan")
    x = fastnn.tensor([[1.0, nan, 5.0, nan], [7.0, 2.0, 3.0, 0.0]])
    mx, mn = x.max(1), x.min(1)
    assert np.isnan(mx.values.numpy()[0]) and mx.indices.tolist() == [1, 0]
    assert np.isnan(mn.values.numpy()[0]) and mn.indices.tolist() == [1, 3]
    assert np.isnan(x.max().item()) and np.isnan(x.min().item())
    assert np.isnan(x.sum().item()) and x.sum(1).numpy()[1] == 12.0
    xg = fastnn.tensor([1.0, nan, nan], requires_grad=True)
    xg.max().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), [0, 0.5, 0.5])


def test_int64_max_min():
    x = fastnn.tensor([[3, -1, 7], [7, 2, 7]])
    assert x.max().item() == 7 and x.max().dtype is fastnn.int64
    assert x.min().item() == -1
    r = x.max(1)
    assert r.values.tolist() == [7, 7] and r.indices.tolist() == [2, 0]
    assert r.values.dtype is fastnn.int64


def test_zero_dim_input():
    x = fastnn.tensor(4.0, requires_grad=True)
    assert x.sum().item() == 4.0 and x.sum(0).shape == ()
    r = x.max(0)
    assert r.values.item() == 4.0 and r.indices.item() == 0
    r.values.backward()
    assert x.grad.item() == 1.0


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    for dim in [None, 1, (0, 2)]:
        a = fastnn.tensor(x).sum(dim) if dim is not None else fastnn.tensor(x).sum()
        b = torch.tensor(x).sum(dim) if dim is not None else torch.tensor(x).sum()
        assert_close(a.numpy(), b.numpy(), k=105, scale=3)
    v = fastnn.tensor(x).max(2)
    tv = torch.tensor(x).max(2)
    np.testing.assert_array_equal(v.values.numpy(), tv.values.numpy())
    np.testing.assert_array_equal(v.indices.numpy(), tv.indices.numpy())


def test_sum_axes_contract(rng):
    g = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out = fred.sum_axes(g.transpose(2, 0, 1), (0, 2))  # non-contiguous input is fine
    assert out.dtype == np.float32
    assert_close(out, g.astype(np.float64).sum((1, 2)), k=12, scale=3)
    np.testing.assert_array_equal(fred.sum_axes(g, ()), g)


def test_bad_input():
    x = fastnn.ones(2, 3)
    expect_error(IndexError, "sum", x.sum, 2)
    expect_error(IndexError, "mean", x.mean, -3)
    expect_error(IndexError, "max", x.max, 5)
    expect_error(RuntimeError, "sum", x.sum, (0, -2))  # repeated dim, as PyTorch
    expect_error(TypeError, "sum", x.sum, 1.5)
    expect_error(TypeError, "max", x.max, (0, 1))
    expect_error(TypeError, "max", x.max, 1, 1)  # keepdim must be a bool, as PyTorch
    expect_error(TypeError, "min", x.min, 1, keepdim=None)
    expect_error(TypeError, "sum", x.sum, 1, np.bool_(False), match="got numpy.bool")
    expect_error(TypeError, "sum", fastnn.sum, np.ones(3))
    f = np.ones((2, 3), np.float32)
    expect_error(TypeError, "sum", _C.sum, np.ones((2, 3)), None, False, False)  # float64
    expect_error(ValueError, "sum", _C.sum, f.T, None, False, False)  # non-contiguous
    expect_error(TypeError, "mean", _C.sum, np.ones(3, np.int64), None, False, True)
    expect_error(ValueError, "max", _C.extreme, f.T, 0, False, True)
    expect_error(IndexError, "max", _C.extreme_dim_bwd, np.ones(2, np.float32),
                 np.array([0, 3]), [2, 3], 1, False, True)
    expect_error(ValueError, "max", _C.extreme_dim_bwd, np.ones(3, np.float32),
                 np.array([0, 1, 2]), [2, 3], 1, False, True)


@pytest.mark.parametrize("mean", [False, True])
def test_fast_route_matches_general_route(mean, rng, monkeypatch):
    # fastnn.sum and Tensor.sum are _C.tensor_sum (mean likewise): the common call (a float32
    # host tensor with nothing to record, dim None or an int, keepdim a bool, by position or
    # keyword) in C++, every other call through reduce.py's general route. Same bits, shapes
    # and errors either way.
    name = "mean" if mean else "sum"
    fast, general = getattr(fastnn, name), getattr(fred, f"_{name}_py")
    assert fast is getattr(_C, f"tensor_{name}") and getattr(fred, name) is fast
    shapes = [(1,), (5,), (0,), (3, 0), (0, 4), (4, 7), (7, 33), (2, 3, 5), (1, 1, 9),
              (3, 1, 17), (2, 130, 3)]
    cases = []
    for shape in shapes:
        x = fastnn.tensor(rng.standard_normal(shape).astype(np.float32))
        for dim in [None] + list(range(-len(shape), len(shape))):
            for keepdim in (False, True):
                cases.append((x, dim, keepdim, general(x, dim, keepdim).numpy()))
    # These calls must not reach the Python layer at all.
    monkeypatch.setattr(fred, "Sum", None)
    monkeypatch.setattr(fred, "_check", lambda *a: pytest.fail("took the general route"))
    for x, dim, keepdim, want in cases:
        calls = [fast(x, dim, keepdim), fast(x, dim=dim, keepdim=keepdim),
                 getattr(x, name)(dim, keepdim), getattr(x, name)(dim, keepdim=keepdim)]
        if not keepdim:
            calls += [fast(x, dim), getattr(x, name)(dim=dim)]
            if dim is None:
                calls += [fast(x), getattr(x, name)()]
        for got in calls:
            assert got.shape == want.shape and not got.requires_grad
            assert got.dtype is fastnn.float32
            np.testing.assert_array_equal(got.numpy(), want)
    monkeypatch.undo()
    # The general route: a recorded call, a transposed view, a NumPy integer dim, a tuple of
    # dims, keepdim given as an int, int64 and bool tensors, dtype=.
    c, plain = check_dim_route_declines(fast, general, rng)
    np.testing.assert_array_equal(fast(c, (0, 1), True).numpy(), general(c, (0, 1), True).numpy())
    np.testing.assert_array_equal(fast(input=c, dim=1).numpy(), general(c, 1).numpy())
    i = fastnn.tensor(np.arange(12).reshape(3, 4))
    if not mean:
        assert fast(i, 1).dtype is fastnn.int64 and fast(i, 1).tolist() == [6, 22, 38]
        assert fast(i > 5).item() == 6
        # dtype casts the input first, as PyTorch: 0 + 0, not int(1.2)
        s = fast(fastnn.tensor([0.6, 0.6]), dtype=fastnn.int64)
        assert s.dtype is fastnn.int64 and s.item() == 0
    else:
        for dt in (fastnn.float32, "float32", np.float32):
            m = fast(i, 1, dtype=dt)
            assert m.dtype is fastnn.float32 and m.tolist() == [1.5, 5.5, 9.5]
        expect_error(TypeError, name, fast, c, dtype=fastnn.int64)
    for bad in (1, None, np.bool_(True)):  # keepdim must be a bool, as PyTorch
        expect_error(TypeError, name, fast, c, 1, bad, match=type(bad).__name__)
        expect_error(TypeError, name, getattr(c, name), 0, keepdim=bad)
    expect_error(TypeError, name, fast, plain, True)
    expect_error(TypeError, name, fast, plain, 1.0)
    expect_error(TypeError, name, fast, plain, dim=1.0)
    expect_error(IndexError, name, fast, plain, dim=2)
    expect_error(IndexError, name, fast, plain, -3)
    expect_error(IndexError, name, fast, plain, 2**70)
    expect_error(TypeError, name, fast, np.ones(3, np.float32))
    # Python's own argument errors name the public function.
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'axis'"):
        fast(plain, axis=1)
    with pytest.raises(TypeError, match=rf"^{name}\(\) got multiple values for argument 'dim'"):
        fast(plain, 1, dim=1)
    with pytest.raises(TypeError, match=rf"^{name}\(\) missing 1 required positional"):
        fast()


# ---- var / std ------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["var", "std"])
def test_var_std_dims(op, dim, keepdim, rng):
    x = rng.standard_normal(SHAPE3) * 3.0 + 1.5
    k = _k(SHAPE3, dim)
    sq = op == "std"
    check_op(lambda t: getattr(t, op)(dim, keepdim=keepdim),
             lambda a: R.var(a, dim, 1, keepdim, sq), [x],
             ref_grad=lambda a, g: R.var_grad(a, g, dim, 1, keepdim, sq), k=k, scale=10.0,
             rng=rng)


@pytest.mark.parametrize("shape,dim", [((1,), None), ((2,), 0), ((17,), None), ((4, 1, 6), 1),
                                       ((33, 16), 0), ((1, 8), (0, 1)), ((5, 3), -1)])
@pytest.mark.parametrize("correction", [0, 1, 2, 0.5])
@pytest.mark.parametrize("op", ["var", "std"])
def test_var_std_corrections(op, shape, dim, correction, rng):
    # n - correction <= 0 divides by 0, as PyTorch: inf, or NaN for 0 / 0.
    x = rng.standard_normal(shape)
    sq = op == "std"
    fn = getattr(fastnn, op)
    out = check_op(lambda t: fn(t, dim, correction=correction),
                   lambda a: R.var(a, dim, correction, False, sq), [x],
                   ref_grad=None if _k(shape, dim) <= correction else
                   (lambda a, g: R.var_grad(a, g, dim, correction, False, sq)),
                   k=_k(shape, dim), scale=10.0, rng=rng)
    assert out.dtype is fastnn.float32


def test_var_std_argument_forms(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    x = fastnn.tensor(a)
    for got, want in [(x.var(), np.var(a, ddof=1)), (x.var(False), np.var(a)),
                      (x.var(True), np.var(a, ddof=1)), (x.var(1, False), np.var(a, 1)),
                      (x.var(1, True, True), np.var(a, 1, ddof=1, keepdims=True)),
                      (x.var(dim=0, unbiased=False), np.var(a, 0)),
                      (x.var(dim=(0, 1), correction=0), np.var(a)),
                      (x.std(0, correction=2), np.std(a, 0, ddof=2)),
                      (fastnn.std(x, unbiased=False), np.std(a)),
                      (x.std(dim=-1, keepdim=True), np.std(a, -1, ddof=1, keepdims=True))]:
        assert_close(got.numpy(), want, k=24, scale=3.0)
    expect_error(TypeError, "var", x.var, 0, True, correction=1)
    expect_error(TypeError, "std", x.std, False, unbiased=True)
    expect_error(TypeError, "var", x.var, unbiased=1)
    expect_error(TypeError, "var", x.var, keepdim=1)
    expect_error(TypeError, "std", fastnn.tensor([1, 2, 3]).std)  # int64: PyTorch refuses
    expect_error(IndexError, "var", x.var, 2)


def test_std_of_a_constant_has_zero_gradient():
    # sqrt's derivative is infinite at 0; PyTorch's std backward gives 0 there, not NaN.
    x = fastnn.tensor([[2.0, 2.0, 2.0], [1.0, 3.0, 5.0]], requires_grad=True)
    x.std(1).sum().backward()
    g = x.grad.numpy()
    assert (g[0] == 0).all() and np.isfinite(g).all()
    assert_close(g[1], R.var_grad(np.array([1.0, 3.0, 5.0]), 1.0, None, 1, False, True)[0])
    # Equal values whose float32 mean is rounded (0.1 * 3 / 3 != 0.1): every dev is the same
    # tiny number, the corrected variance exactly 0, and the gradient 0 too, as PyTorch's.
    for v in (0.1, 1.1, 3.3e7):
        x = fastnn.tensor([v] * 7, requires_grad=True)
        s = x.std()
        s.backward()
        assert s.item() == 0.0 and (x.grad.numpy() == 0).all()


def test_var_std_empty_and_zero_dim():
    assert np.isnan(fastnn.zeros(0).var().item()) and np.isnan(fastnn.zeros(0).std().item())
    assert fastnn.zeros(0, 3).var(0).shape == (3,)
    assert np.isnan(fastnn.tensor(2.0).var().item())
    assert fastnn.tensor(2.0).var(correction=0).item() == 0.0


# ---- argmin, any, all -----------------------------------------------------------------------
@pytest.mark.parametrize("dim", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_argmin(dim, keepdim, dtype, rng):
    # Ties (integers in a small range) go to the first index, as NumPy's and PyTorch's.
    a = rng.integers(-3, 3, SHAPE3).astype(dtype)
    got = fastnn.tensor(a).argmin(dim, keepdim=keepdim)
    want = np.argmin(a, axis=dim, keepdims=keepdim)
    if dim is None and keepdim:
        want = want.reshape((1,) * a.ndim)  # PyTorch keeps every dim as 1
    assert got.dtype is fastnn.int64 and got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)
    assert fastnn.argmin(fastnn.tensor(a), dim, keepdim).tolist() == want.tolist()


def test_argmin_nan_and_errors():
    x = fastnn.tensor([[1.0, float("nan"), -float("inf")], [3.0, 0.0, float("nan")]])
    assert x.argmin().item() == 1 and x.argmin(1).tolist() == [1, 2]  # NaN is the minimum
    y = fastnn.tensor([3.0, -1.0], requires_grad=True)
    assert y.argmin().item() == 1 and y.argmin().grad_fn is None
    expect_error(ValueError, "argmin", fastnn.zeros(0).argmin)  # (argmax's type here)
    expect_error(ValueError, "argmin", fastnn.zeros(2, 0).argmin, 1)
    expect_error(IndexError, "argmin", x.argmin, 2)
    expect_error(TypeError, "argmin", x.argmin, 0, 1)
    expect_error(TypeError, "argmin", (x > 0).argmin)


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("op", ["any", "all"])
def test_any_all(op, dim, keepdim, rng):
    for a in (rng.integers(0, 2, SHAPE3), rng.integers(-1, 5, SHAPE3),
              np.where(rng.random(SHAPE3) < 0.9, 1.0, 0.0).astype(np.float32),
              np.full(SHAPE3, np.nan, np.float32), np.ones(SHAPE3, bool)):
        t = fastnn.tensor(a)
        got = getattr(t, op)(dim, keepdim=keepdim)
        want = getattr(np, op)(a != 0, axis=dim, keepdims=keepdim)  # NaN counts as true
        assert got.dtype is fastnn.bool and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
        np.testing.assert_array_equal(getattr(fastnn, op)(t, dim, keepdim).numpy(), want)
    assert fastnn.zeros(0).all().item() is True and fastnn.zeros(0).any().item() is False
    assert fastnn.zeros(0, 3).any(0).tolist() == [False] * 3


# ---- bitwise / logical operators ------------------------------------------------------------
@pytest.mark.parametrize("op", ["&", "|", "^"])
def test_bitwise_operators(op, rng):
    fn = {"&": np.bitwise_and, "|": np.bitwise_or, "^": np.bitwise_xor}[op]
    m1, m2 = rng.random((4, 5)) < 0.5, rng.random((4, 5)) < 0.5
    i1, i2 = rng.integers(-9, 9, (4, 5)), rng.integers(-9, 9, (5,))
    cases = [(m1, m2), (m1, m2[0]), (i1, i2), (m1, i1), (i1, 3), (m1, True), (5, i2), (False, m2)]
    for a, b in cases:
        ta = fastnn.tensor(a) if isinstance(a, np.ndarray) else a
        tb = fastnn.tensor(b) if isinstance(b, np.ndarray) else b
        got = {"&": operator.and_, "|": operator.or_, "^": operator.xor}[op](ta, tb)
        want = fn(np.asarray(a, np.int64) if np.asarray(a).dtype != np.asarray(b).dtype else a,
                  np.asarray(b, np.int64) if np.asarray(a).dtype != np.asarray(b).dtype else b)
        assert got.dtype is (fastnn.bool if want.dtype == np.bool_ else fastnn.int64)
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal((~fastnn.tensor(m1)).numpy(), ~m1)
    np.testing.assert_array_equal((~fastnn.tensor(i1)).numpy(), ~i1)
    x = fastnn.tensor(rng.standard_normal((4, 5)).astype(np.float32))
    mask = (x > 0) & (x < 1)
    np.testing.assert_array_equal(mask.numpy(), (x.numpy() > 0) & (x.numpy() < 1))


def test_bitwise_errors():
    x, m = fastnn.ones(3), fastnn.tensor([True, False, True])
    expect_error(TypeError, "bitwise_and", lambda: x & m)
    expect_error(TypeError, "bitwise_or", lambda: m | x)
    expect_error(TypeError, "bitwise_not", lambda: ~x)
    expect_error(ValueError, "bitwise_xor", lambda: m ^ fastnn.tensor([True, False]))
    with pytest.raises(TypeError):
        m & 1.5  # a float operand: Python's own TypeError, as with any unsupported operand


def test_matmul_method(rng):
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    assert_close(fastnn.tensor(a).matmul(fastnn.tensor(b)).numpy(), a.astype(np.float64) @ b, k=4)


def test_bitwise_in_place(rng):
    # &=, |=, ^= change the tensor itself (views see it), keep its dtype and shape, and count
    # as in-place changes for autograd's check.
    m = rng.random((3, 4)) < 0.5
    t = fastnn.tensor(m)
    row = t[1]
    other = rng.random((4,)) < 0.5
    t &= fastnn.tensor(other)
    np.testing.assert_array_equal(t.numpy(), m & other)
    np.testing.assert_array_equal(row.numpy(), (m & other)[1])
    i = fastnn.tensor(rng.integers(-9, 9, (5,)))
    want = i.numpy() ^ 6
    i ^= 6
    np.testing.assert_array_equal(i.numpy(), want)
    i |= fastnn.tensor([True, False, True, False, True])  # int64 | bool stays int64
    assert i.dtype is fastnn.int64
    b = fastnn.tensor([True, False])
    expect_error(TypeError, "bitwise_or_", b.__ior__, fastnn.tensor([2, 0]))
    expect_error(ValueError, "bitwise_and_", b.__iand__, fastnn.tensor([[True], [False]]))
    assert b.tolist() == [True, False]  # a refused update changes nothing
    x = fastnn.ones(2, requires_grad=True)
    y = fastnn.where(b, x, 0.0)
    with fastnn.no_grad():
        b ^= True
    expect_error(RuntimeError, "backward", y.sum().backward)


def test_var_std_review_cases(rng):
    # A large mean: the float32 mean's rounding is taken back out (corrected two-pass), so
    # the variance keeps its relative accuracy (it was 5.7e-5 off, PyTorch 2.6e-8).
    a = (rng.standard_normal((8, 4096)) + 1e5).astype(np.float32)
    want = np.var(a.astype(np.float64), 1, ddof=1)
    got = fastnn.tensor(a).var(1).numpy()
    assert np.max(np.abs(got - want) / want) < 1e-6
    # correction as any real number, as PyTorch
    x = fastnn.tensor(rng.standard_normal((3, 5)).astype(np.float32))
    for c in (np.float32(1), np.int64(1), True):
        assert_close(x.var(1, correction=c).numpy(), np.var(x.numpy().astype(np.float64), 1, ddof=1), k=5)
    # a dim given twice names the op called
    expect_error(RuntimeError, "var", x.var, (0, 0))
    expect_error(RuntimeError, "any", x.any, (1, -1))
    expect_error(RuntimeError, "sum", x.sum, [0, 0])
    # var's output is not needed by its backward (changing it is allowed); std's is (raises)
    for op, raises in (("var", False), ("std", True)):
        t = fastnn.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
        v = getattr(t, op)(0)
        with fastnn.no_grad():
            v.add_(1.0)
        if raises:
            expect_error(RuntimeError, "backward", (v * v).sum().backward)
        else:
            (v * v).sum().backward()
            assert np.isfinite(t.grad.numpy()).all()


def test_any_all_with_no_dims_reduce_nothing():
    # dim=() (PyTorch 2): each element's truth, not a reduction over everything.
    x = fastnn.tensor([[0.0, 1.0], [float("nan"), 0.0]])
    assert x.any(()).tolist() == [[False, True], [True, False]]
    assert x.all([]).tolist() == [[False, True], [True, False]]


def test_bitwise_zero_dim_and_numpy_scalars():
    t, f = fastnn.tensor(True), fastnn.tensor(False)
    r = t & f
    assert r.shape == () and r.item() is False and (~t).item() is False and (~t).shape == ()
    assert (fastnn.tensor(5) ^ 3).item() == 6
    assert ((fastnn.tensor(5) & 3) + 1).item() == 2  # a 0-d result is a whole tensor
    m = fastnn.tensor([True, False])
    assert isinstance(m & np.bool_(False), fastnn.Tensor) and (m | np.bool_(True)).tolist() == [True, True]
    i = fastnn.tensor([1, 2])
    assert (i | np.int64(4)).tolist() == [5, 6] and (np.int64(4) | i).tolist() == [5, 6]


def test_var_std_gradients_with_a_large_mean():
    # The deviations the gradient is built from carry the same correction as the forward:
    # the gradient of a spread-out-invariant quantity sums to 0 (it summed to 1e-2 when the
    # forward was corrected and the backward not), and two values 1 ulp apart get +-1/sqrt(2).
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(64) + 1e5).astype(np.float32)
    for op in ("var", "std"):
        x = fastnn.tensor(a, requires_grad=True)
        getattr(x, op)().backward()
        g = x.grad.numpy().astype(np.float64)
        assert abs(g.sum()) < 1e-6 * np.abs(g).sum()
        d = a.astype(np.float64) - a.astype(np.float64).mean()
        want = 2 * d / 63 if op == "var" else d / (63 * np.sqrt((d * d).sum() / 63))
        assert np.max(np.abs(g - want)) < 1e-3 * np.max(np.abs(want))
    x = fastnn.tensor([1.0, float(np.nextafter(np.float32(1), np.float32(2)))], requires_grad=True)
    x.std().backward()
    assert_close(x.grad.numpy(), np.array([-1.0, 1.0]) / np.sqrt(2.0), k=4)
    # Overflowed squares give inf, and a finite (0) gradient, not NaN, as PyTorch.
    x = fastnn.tensor([3e38, -3e38], requires_grad=True)
    s = x.std()
    s.backward()
    assert s.item() == float("inf") and np.isfinite(x.grad.numpy()).all()


def test_bitwise_in_place_with_arrays_and_bad_operands():
    x = fastnn.tensor(np.array([3, 5]))
    y = x
    x &= np.array([1, 1])
    assert x is y and x.tolist() == [1, 1]
    with pytest.raises(TypeError, match=r"\[bitwise_or_\]"):
        x |= 1.5
    for bad in (np.array([1.0]), np.array([1], np.int32)):  # NumPy's other dtypes: refused
        expect_error(TypeError, "bitwise_and", lambda: x & bad)
    assert x.tolist() == [1, 1]
