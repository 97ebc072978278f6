"""Elementwise arithmetic with broadcasting: forward and backward against tests/reference.py,
type promotion, in-place ops, comparisons, and bad input at the Python and _C levels."""
import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import _C
from harness import assert_close, check_op, expect_error

BINARY = {
    "add": (lambda a, b: a + b, R.add, R.add_grad),
    "sub": (lambda a, b: a - b, R.sub, R.sub_grad),
    "mul": (lambda a, b: a * b, R.mul, R.mul_grad),
    "div": (lambda a, b: a / b, R.div, R.div_grad),
    "pow": (lambda a, b: a ** b, R.power, R.power_grad),
    "maximum": (fastnn.maximum, R.maximum, R.maximum_grad),
    "minimum": (fastnn.minimum, R.minimum, R.minimum_grad),
}

# Broadcasting patterns: same shape, (3,1)+(1,4), trailing vector, leading 1s, 0-d on either
# side, size-1 dims, empty dims, and a large one that goes through the pool.
SHAPES = [((5,), (5,)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((4,), (2, 3, 4)),
          ((2, 1, 5), (3, 1)), ((), (3, 2)), ((3, 2), ()), ((), ()), ((1, 1), (1,)),
          ((0, 3), (3,)), ((2, 0), (2, 1)), ((17, 33), (17, 1)), ((1, 8, 1), (16, 1, 5))]


def _operands(name, sa, sb, rng):
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if name == "pow":
        # a > 0 so a^b is real; exponents in [-2, 2]
        a = rng.uniform(0.5, 2.0, sa)
        b = rng.uniform(-2.0, 2.0, sb)
    if name == "div":
        b = np.sign(b + 1e-3) * rng.uniform(0.5, 2.0, sb)  # away from 0: bounded 1/b^2
    return a, b


def _broadcast_k(sa, sb):
    """How many output elements are summed into one input gradient element (at most)."""
    out = np.broadcast_shapes(sa, sb)
    n = int(np.prod(out)) if out else 1
    return max(1, n // max(1, min(int(np.prod(sa)) if sa else 1, int(np.prod(sb)) if sb else 1)))


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_forward_backward(name, sa, sb, rng):
    fn, ref, ref_grad = BINARY[name]
    a, b = _operands(name, sa, sb, rng)
    # NOTE: pow goes through exp/log inside powf (a few ulp) and its gradient multiplies
    # three rounded terms: c=64. The gradient of a broadcast input sums up to k products.
    c = 64 if name == "pow" else 16
    k = _broadcast_k(sa, sb)
    check_op(fn, ref, [a, b], ref_grad=ref_grad, c=c, grad_k=k, grad_scale=4.0, rng=rng)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_large_threads(name, threads, rng):
    fn, ref, ref_grad = BINARY[name]
    a, b = _operands(name, (301, 257), (257,), rng)
    c = 64 if name == "pow" else 16
    check_op(fn, ref, [a, b], ref_grad=ref_grad, c=c, grad_k=301, grad_scale=4.0, rng=rng)
    a, b = _operands(name, (70001,), (70001,), rng)  # the 1-D path splits inside one row
    check_op(fn, ref, [a, b], ref_grad=ref_grad, c=c, rng=rng)


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("side", ["left", "right"])
def test_scalar_operand(name, side, rng):
    fn, ref, ref_grad = BINARY[name]
    x = rng.uniform(0.5, 2.0, (3, 5))
    s = 1.5
    if side == "left":
        check_op(lambda t: fn(fastnn.tensor(s), t) if name in ("maximum", "minimum") else fn(s, t),
                 lambda t: ref(s, t), [x], ref_grad=lambda t, g: [ref_grad(np.float64(s), t, g)[1]],
                 c=64, rng=rng)
    else:
        check_op(lambda t: fn(t, s), lambda t: ref(t, s), [x],
                 ref_grad=lambda t, g: [ref_grad(t, np.float64(s), g)[0]], c=64, rng=rng)


# Tensor's arithmetic operators are C entries (_C.tensor_add_method, ...): float32 host
# tensors, or a tensor and a Python float or int, with nothing to record, are computed there;
# everything else goes to elementwise.py's general routes. Both must give the same tensors.
ROUTED = ["add", "sub", "mul", "div", "pow"]
ROUTE_OPS = {"add": (lambda a, b: a + b), "sub": (lambda a, b: a - b),
             "mul": (lambda a, b: a * b), "div": (lambda a, b: a / b),
             "pow": (lambda a, b: a ** b)}


@pytest.mark.parametrize("name", ROUTED)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_operator_fast_route(name, sa, sb, rng):
    fn, ref, _ = BINARY[name]
    a, b = (x.astype(np.float32) for x in _operands(name, sa, sb, rng))
    want = ref(a.astype(np.float64), b.astype(np.float64))
    c = 64 if name == "pow" else 16
    ta, tb = fastnn.tensor(a), fastnn.tensor(b)
    got = fn(ta, tb)
    assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32
    assert not got.requires_grad and got.grad_fn is None
    assert_close(got.numpy(), want, c=c, what=f"{name} route")
    # The recorded route runs the same kernel: the same values, bit for bit.
    pa = fastnn.tensor(a, requires_grad=True)
    rec = fn(pa, tb)
    assert rec.grad_fn is not None
    np.testing.assert_array_equal(rec.detach().numpy(), got.numpy())
    with fastnn.no_grad():
        np.testing.assert_array_equal(fn(pa, tb).numpy(), got.numpy())
    np.testing.assert_array_equal(a, ta.numpy())
    np.testing.assert_array_equal(b, tb.numpy())


@pytest.mark.parametrize("name", ROUTED)
@pytest.mark.parametrize("s", [1.5, -3, 0, 2, 0.25, 2 ** 40])
def test_operator_fast_route_numbers(name, s, rng):
    # t op s and s op t with a Python number, taken as float32 (as PyTorch does with a float32
    # tensor); the reflected entries put the number on the left (s ** t is not routed).
    fn = ROUTE_OPS[name]
    x = rng.uniform(0.5, 2.0, (3, 5)).astype(np.float32)
    if name == "pow" and abs(s) > 8:
        s = 3
    t = fastnn.tensor(x)
    s64, x64 = np.float64(np.float32(s)), x.astype(np.float64)
    with np.errstate(divide="ignore"):
        cases = [(lambda v: fn(v, s), fn(x64, s64))]
        if name != "pow":
            cases.append((lambda v: fn(s, v), fn(s64, x64)))
    for f, want in cases:
        got = f(t)
        assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32 and not got.requires_grad
        with np.errstate(invalid="ignore"):  # x / 0: infinities, compared apart
            assert_close(got.numpy(), want, c=64, what=f"{name} with {s!r}")
        # The recorded route (the number as a 0-d float32 operand) gives the same bits.
        rec = f(fastnn.tensor(x, requires_grad=True))
        assert rec.grad_fn is not None
        np.testing.assert_array_equal(rec.detach().numpy(), got.numpy())


def test_operator_fast_route_hands_on_the_rest(rng):
    # What the C entries pass to the general routes: int64 and bool tensors, NumPy arrays,
    # strided views, bools, shapes that do not broadcast, other types, recorded calls.
    i = fastnn.tensor([1, 2, 3])
    assert (i + 2).dtype is fastnn.int64 and (i + 2).tolist() == [3, 4, 5]
    assert (i * 2.5).dtype is fastnn.float32 and (i / 2).tolist() == [0.5, 1.0, 1.5]
    f = fastnn.tensor([1.0, 2.0, 3.0])
    assert (f + True).tolist() == [2.0, 3.0, 4.0]
    assert (f > 1.5).dtype is fastnn.bool and ((f > 1.5) * f).tolist() == [0.0, 2.0, 3.0]
    assert (f + np.ones(3, np.float32)).tolist() == [2.0, 3.0, 4.0]
    m = fastnn.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    np.testing.assert_array_equal((m.T * 2.0).numpy(), m.numpy().T * np.float32(2.0))
    np.testing.assert_array_equal((m[:, ::2] + m[:, 1::2]).numpy(),
                                  m.numpy()[:, ::2] + m.numpy()[:, 1::2])
    expect_error(ValueError, "add", lambda: f + fastnn.ones(4))
    expect_error(ValueError, "mul", lambda: fastnn.ones(2, 3) * fastnn.ones(3, 2))
    expect_error(TypeError, "add", lambda: f + "a")
    with pytest.raises(TypeError):
        f.__add__()
    w = fastnn.tensor([2.0], requires_grad=True)
    y = 3.0 * w + 1.0
    y.backward()
    assert y.grad_fn is not None and w.grad.tolist() == [3.0]
    z = fastnn.tensor([2.0, 4.0], requires_grad=True)
    (1.0 / z).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [-0.25, -0.0625])


UNARY = {
    "neg": (lambda t: -t, R.neg, R.neg_grad),
    "abs": (fastnn.abs, R.absolute, R.absolute_grad),
    "exp": (fastnn.exp, R.exp, R.exp_grad),
    "log": (fastnn.log, R.log, R.log_grad),
    "sqrt": (fastnn.sqrt, R.sqrt, R.sqrt_grad),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 0), (5, 33), (40000,)])
def test_unary(name, shape, rng):
    fn, ref, ref_grad = UNARY[name]
    x = rng.standard_normal(shape) * 2
    if name in ("log", "sqrt"):
        x = rng.uniform(0.1, 5.0, shape)
    # NOTE: expf/logf are accurate to a few ulp: c=64, as the activation tests.
    check_op(fn, ref, [x], ref_grad=ref_grad, c=64, rng=rng)


# One-operand ops as C entries (fastnn.exp is _C.tensor_exp, Tensor.exp its bound form, ...):
# a float32 host tensor with nothing to record is computed there, the rest goes to the
# Python routes. Both give the same tensors.
ONE_OPERAND = {
    "neg": (lambda t: -t, R.neg), "abs": (lambda t: abs(t), R.absolute),
    "exp": (lambda t: t.exp(), R.exp), "log": (lambda t: t.log(), R.log),
    "sqrt": (lambda t: t.sqrt(), R.sqrt), "sigmoid": (lambda t: t.sigmoid(), R.sigmoid),
    "tanh": (lambda t: t.tanh(), R.tanh), "relu": (lambda t: t.relu(), R.relu),
}


@pytest.mark.parametrize("name", list(ONE_OPERAND))
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 0), (5, 33), (40000,)])
def test_one_operand_fast_route(name, shape, rng):
    fn, ref = ONE_OPERAND[name]
    x = rng.standard_normal(shape).astype(np.float32)
    if name in ("log", "sqrt"):
        x = np.abs(x) + np.float32(0.1)
    t = fastnn.tensor(x)
    got = fn(t)
    assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32
    assert not got.requires_grad and got.grad_fn is None and tuple(got.shape) == shape
    assert_close(got.numpy(), ref(x.astype(np.float64)), c=64, what=f"{name} route")
    # The module function is the same entry, and the recorded route gives the same bits.
    if name not in ("neg",):
        np.testing.assert_array_equal(getattr(fastnn, name)(t).numpy(), got.numpy())
    p = fastnn.tensor(x, requires_grad=True)
    rec = fn(p)
    assert rec.grad_fn is not None
    np.testing.assert_array_equal(rec.detach().numpy(), got.numpy())
    np.testing.assert_array_equal(t.numpy(), x)


def test_one_operand_fast_route_hands_on_the_rest(rng):
    # int64 tensors (neg/abs stay int64, exp/log/sqrt give float32), strided views, extra
    # arguments, non-tensors: the general routes, with their results and messages.
    i = fastnn.tensor([-1, 2, -3])
    assert (-i).dtype is fastnn.int64 and (-i).tolist() == [1, -2, 3]
    assert abs(i).tolist() == [1, 2, 3] and fastnn.abs(i).dtype is fastnn.int64
    assert i.exp().dtype is fastnn.float32
    np.testing.assert_allclose(fastnn.sqrt(fastnn.tensor([4, 9])).numpy(), [2.0, 3.0])
    m = rng.standard_normal((4, 6)).astype(np.float32)
    v = fastnn.tensor(m).T
    assert_close(v.exp().numpy(), np.exp(m.T.astype(np.float64)), c=64)
    assert_close(fastnn.tanh(v).numpy(), np.tanh(m.T.astype(np.float64)), c=64)
    expect_error(TypeError, "exp", fastnn.exp, np.ones(3, np.float32))
    expect_error(TypeError, "sigmoid", fastnn.sigmoid, 1.0)
    with pytest.raises(TypeError):
        fastnn.exp(fastnn.ones(2), fastnn.ones(2))
    with pytest.raises(TypeError):
        fastnn.tanh()
    w = fastnn.tensor([0.5, -1.0], requires_grad=True)
    w.sigmoid().sum().backward()
    s = 1 / (1 + np.exp(-np.array([0.5, -1.0])))
    np.testing.assert_allclose(w.grad.numpy(), s * (1 - s), rtol=1e-6)


def test_abs_grad_at_zero_and_sign():
    x = fastnn.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])


def test_unary_int64():
    x = fastnn.tensor([-3, 0, 4])
    assert (-x).dtype is fastnn.int64 and (-x).tolist() == [3, 0, -4]
    assert abs(x).dtype is fastnn.int64 and abs(x).tolist() == [3, 0, 4]
    for f, npf in [(fastnn.exp, np.exp), (fastnn.sqrt, np.sqrt), (fastnn.log, np.log)]:
        y = f(fastnn.tensor([1, 4, 9]))
        assert y.dtype is fastnn.float32  # as PyTorch: int64 -> float32
        assert_close(y.numpy(), npf(np.array([1.0, 4.0, 9.0])), c=64)


# ---- int64 paths and type promotion ------------------------------------------------------

@pytest.mark.parametrize("name,op", [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                                     ("maximum", np.maximum), ("minimum", np.minimum)])
def test_int64_ops_exact(name, op, rng):
    a = rng.integers(-10**12, 10**12, (4, 1, 5))
    b = rng.integers(-10**6, 10**6, (3, 1))
    out = check_op(BINARY[name][0], op, [a, b])  # int64 output compared exactly
    assert out.dtype is fastnn.int64


def test_int64_true_division_and_pow():
    a, b = fastnn.tensor([1, 7, -9]), fastnn.tensor([2, 2, 4])
    q = a / b
    assert q.dtype is fastnn.float32 and q.tolist() == [0.5, 3.5, -2.25]
    assert (a / 2).tolist() == [0.5, 3.5, -4.5]
    p = a ** 2  # computed in float32 (PyTorch keeps int64 here)
    assert p.dtype is fastnn.float32 and p.tolist() == [1.0, 49.0, 81.0]


def test_type_promotion():
    i, f = fastnn.tensor([1, 2]), fastnn.tensor([0.5, 1.0])
    assert (i + f).dtype is fastnn.float32 and (i + f).tolist() == [1.5, 3.0]
    assert (f + i).dtype is fastnn.float32
    assert (i + 1).dtype is fastnn.int64 and (1 + i).dtype is fastnn.int64
    assert (i * 2.5).dtype is fastnn.float32 and (i * 2.5).tolist() == [2.5, 5.0]
    assert (2.5 - i).tolist() == [1.5, 0.5]
    assert (f + 1).dtype is fastnn.float32
    assert (i + fastnn.tensor(0.5)).dtype is fastnn.float32  # 0-d float tensor promotes too
    assert fastnn.maximum(i, 1.5).tolist() == [1.5, 2.0]


def test_mixed_dtype_gradient_flows_to_float():
    f = fastnn.tensor([[1.0], [2.0]], requires_grad=True)
    i = fastnn.tensor([1, 2, 3])
    (f * i).sum().backward()
    np.testing.assert_array_equal(f.grad.numpy(), [[6.0], [6.0]])


# ---- edge cases ------------------------------------------------------------------------------

def test_nan_propagates():
    nan = np.float32("nan")
    a = fastnn.tensor([nan, 1.0, 2.0])
    b = fastnn.tensor([0.0, nan, 1.0])
    for f in (fastnn.maximum, fastnn.minimum, lambda x, y: x + y, lambda x, y: x * y):
        y = f(a, b).numpy()
        assert np.isnan(y[0]) and np.isnan(y[1]) and not np.isnan(y[2])
    assert np.isnan(fastnn.sqrt(fastnn.tensor([-1.0])).item())


def test_maximum_ties_split_gradient():
    a = fastnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = fastnn.tensor([2.0, 2.0, 1.0], requires_grad=True)
    fastnn.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 0.5, 0.0])


def test_pow_edge_gradients():
    # d/da at b == 0 is 0 (not NaN at a == 0); d/db at a == 0, b >= 0 is 0; NaN for a < 0.
    a = fastnn.tensor([0.0, 0.0, -2.0, 3.0], requires_grad=True)
    b = fastnn.tensor([0.0, 2.0, 2.0, 2.0], requires_grad=True)
    (a ** b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0, -4.0, 6.0])
    gb = b.grad.numpy()
    assert gb[0] == 0 and gb[1] == 0 and np.isnan(gb[2])
    assert_close(gb[3], 9 * np.log(3.0), c=64)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.uniform(0.5, 2, (4, 1, 3)).astype(np.float32)
    b = rng.uniform(-2, 2, (5, 1)).astype(np.float32)
    for name in BINARY:
        fn = BINARY[name][0]
        ta, tb = fastnn.tensor(a, requires_grad=True), fastnn.tensor(b, requires_grad=True)
        fn(ta, tb).sum().backward()
        xa, xb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        tfn = {"maximum": torch.maximum, "minimum": torch.minimum}.get(name, fn)
        tfn(xa, xb).sum().backward()
        assert_close(fn(ta, tb).detach().numpy(), tfn(xa, xb).detach().numpy(), c=64, what=name)
        assert_close(ta.grad.numpy(), xa.grad.numpy(), k=5, scale=4, c=64, what=name)
        assert_close(tb.grad.numpy(), xb.grad.numpy(), k=12, scale=4, c=64, what=name)


def test_comparisons():
    a = fastnn.tensor([[1.0, 2.0, 3.0]])
    b = fastnn.tensor([[2.0], [3.0]])
    want = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}
    for op, f in want.items():
        m = getattr(a, op)(b)
        assert m.dtype is fastnn.bool and m.shape == (2, 3) and m.grad_fn is None
        np.testing.assert_array_equal(m.numpy(), f(a.numpy(), b.numpy()))
    assert (fastnn.tensor([1, 2]) == 2).tolist() == [False, True]
    assert (fastnn.tensor([1, 2]) < 1.5).tolist() == [True, False]
    assert (fastnn.tensor([1.0]) == "x") is False  # NotImplemented -> Python's fallback
    expect_error(ValueError, "lt", lambda: fastnn.ones(2) < fastnn.ones(3))
    m = fastnn.tensor([1.0, 2.0]) > 1.5
    assert (m == m).tolist() == [True, True]  # masks compare with masks
    assert (m * fastnn.tensor([3.0, 4.0])).tolist() == [0.0, 4.0]  # and act as 0/1 in math
    assert (m + m).dtype is fastnn.int64


def test_clamp():
    x = fastnn.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    y = x.clamp(min=-1.0, max=1.0)
    assert y.tolist() == [-1.0, 0.5, 1.0]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])
    expect_error(ValueError, "clamp", fastnn.clamp, x)


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (3, 17), (2, 5, 33)])
@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (None, 0.25), (-0.25, None), (1.0, -1.0), (0, 1)])
def test_clamp_number_bounds_like_pytorch(shape, lo, hi, rng):
    # Forward min(max(x, lo), hi) (lo > hi gives hi everywhere); the gradient is g where
    # lo <= x <= hi, the bounds themselves included (x hits them exactly here), 0 elsewhere
    # and at NaN, as torch.clamp's backward.
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    for v in (lo, hi):
        if v is not None and flat.size >= 3:
            flat[rng.integers(0, flat.size, 2)] = v  # exact ties with the bounds
    if flat.size >= 4:
        flat[rng.integers(0, flat.size)] = np.nan
    g = rng.standard_normal(shape).astype(np.float32)
    t = fastnn.tensor(x, requires_grad=True)
    y = t.clamp(lo, hi)
    want = x.astype(np.float64)
    if lo is not None:
        want = np.maximum(want, lo)
    if hi is not None:
        want = np.minimum(want, hi)
    np.testing.assert_array_equal(y.detach().numpy(), want.astype(np.float32))
    y.backward(fastnn.tensor(g))
    with np.errstate(invalid="ignore"):
        keep = np.ones(shape, bool)
        if lo is not None:
            keep &= x >= lo
        if hi is not None:
            keep &= x <= hi
    np.testing.assert_array_equal(t.grad.numpy(), np.where(keep, g, 0).astype(np.float32))


def test_clamp_dtypes_and_bad_bounds():
    i = fastnn.tensor([1, 5, -3])
    assert i.clamp(0, 3).dtype is fastnn.int64 and i.clamp(0, 3).tolist() == [1, 3, 0]
    f = i.clamp(0.5, 3)  # an int64 tensor with a float bound gives float32, as PyTorch
    assert f.dtype is fastnn.float32 and f.tolist() == [1.0, 3.0, 0.5]
    x = fastnn.tensor([1.0, 5.0])
    assert x.clamp(min=np.float32(2)).tolist() == [2.0, 5.0]  # NumPy scalars are numbers
    assert x.clamp(max=float("inf")).tolist() == [1.0, 5.0]
    assert np.isnan(x.clamp(min=float("nan")).numpy()).all()  # NaN bounds propagate
    expect_error(ValueError, "clamp", lambda: x.clamp(max=1e300))  # not a float32
    expect_error(ValueError, "clamp", lambda: i.clamp(min=-2 ** 70))  # not an int64
    # bool tensors clamp as int64, NumPy scalars of every width are numbers.
    b = fastnn.clamp(fastnn.tensor([True, False]), 0, None)
    assert b.dtype is fastnn.int64 and b.tolist() == [1, 0]
    assert fastnn.tensor([-5, 0, 7]).clamp(np.longdouble(0.5)).tolist() == [0.5, 0.5, 7.0]
    # A zero at a bound of the other sign stays x, as PyTorch (min(max(x, lo), hi) keeps x
    # unless x < lo or x > hi), recorded or not.
    for grad in (False, True):
        z = fastnn.tensor([-0.0, 0.0], requires_grad=grad)
        assert np.signbit(z.clamp(0.0, 1.0).detach().numpy()).tolist() == [True, False]
        assert np.signbit(z.clamp(None, -0.0).detach().numpy()).tolist() == [True, False]
    # Strided views (a transpose, a step) are read as they are.
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = fastnn.tensor(a)
    np.testing.assert_array_equal(t.T.clamp(2, 9).numpy(), np.clip(a.T, 2, 9))
    np.testing.assert_array_equal(t[:, ::2].clamp(max=5).numpy(), np.minimum(a[:, ::2], 5))
    # Tensor bounds still work (maximum/minimum composed).
    lo = fastnn.tensor([2.0, 0.0])
    assert x.clamp(min=lo).tolist() == [2.0, 5.0]


# ---- in place ----------------------------------------------------------------------------------

def test_add_inplace_accumulates_gradients(rng):
    x = fastnn.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 4), 5.0, np.float32))
    dst = np.ones((100001,), np.float32)
    from fastnn._functions import elementwise as ew
    ew.add_inplace(dst, np.full(100001, 2.0, np.float32))
    assert (dst == 3).all()


def test_inplace_ops(rng):
    t = fastnn.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    ref = t.numpy().astype(np.float64).copy()
    o = rng.standard_normal(4).astype(np.float32)
    data_before = t.numpy()
    t.add_(fastnn.tensor(o), alpha=2)
    ref += 2 * o
    t.sub_(0.5)
    ref -= 0.5
    t.mul_(fastnn.tensor(o))
    ref *= o
    t.div_(3)
    ref /= 3
    t += 1
    ref += 1
    assert t.numpy() is data_before  # updated in place, same memory
    assert_close(t.numpy(), ref, c=32)


def test_inplace_int64_and_errors():
    t = fastnn.tensor([1, 2, 3])
    t.add_(2)
    t.mul_(fastnn.tensor([2, 2, 2]))
    t.sub_(fastnn.tensor([1, 1, 1]), alpha=3)
    assert t.tolist() == [3, 5, 7] and t.dtype is fastnn.int64
    expect_error(TypeError, "add_", t.add_, 1.5)
    expect_error(TypeError, "div_", t.div_, 2)
    f = fastnn.ones(3)
    f.add_(fastnn.tensor([1, 2, 3]))  # int64 other on a float32 tensor is fine
    assert f.tolist() == [2.0, 3.0, 4.0]
    expect_error(ValueError, "add_", fastnn.ones(3).add_, fastnn.ones(2, 3))
    expect_error(ValueError, "mul_", fastnn.ones(3).mul_, fastnn.ones(2))
    expect_error(TypeError, "add_", fastnn.ones(3).add_, "x")


def test_inplace_on_a_view():
    t = fastnn.zeros(3, 4)
    col = t[:, 1]
    col.add_(fastnn.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t.numpy()[:, 1], [1.0, 2.0, 3.0])
    assert t.numpy().sum() == 6.0


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BINARY))
def test_shapes_that_do_not_broadcast(name):
    fn = BINARY[name][0]
    expect_error(ValueError, name, fn, fastnn.ones(2, 3), fastnn.ones(4))
    expect_error(ValueError, name, fn, fastnn.ones(2, 3), fastnn.ones(3, 3))


def test_c_level_errors():
    f = np.ones((2, 3), np.float32)
    expect_error(ValueError, "add", _C.binary, f, np.ones(4, np.float32), "add")
    expect_error(TypeError, "add", _C.binary, f, np.ones((2, 3)), "add")  # float64
    expect_error(TypeError, "add", _C.binary, f, np.ones((2, 3), np.int64), "add")  # mixed
    expect_error(ValueError, "mul", _C.binary, f, np.ones((3, 2), np.float32).T, "mul")
    expect_error(TypeError, "div", _C.binary, np.ones(2, np.int64), np.ones(2, np.int64), "div")
    expect_error(ValueError, "binary", _C.binary, f, f, "mod")
    expect_error(TypeError, "exp", _C.unary, np.ones(3, np.int64), "exp")
    expect_error(TypeError, "exp", _C.unary, np.ones(3), "exp")
    expect_error(ValueError, "exp", _C.unary, f.T, "exp")
    expect_error(ValueError, "sqrt", _C.unary_bwd, f, None, None, "sqrt")
    expect_error(ValueError, "mul", _C.binary_bwd, np.ones(4, np.float32), f, f, "mul")
    expect_error(ValueError, "add_", _C.binary_inplace, np.ones(3, np.float32),
                 np.ones((2, 3), np.float32), "add", 1.0, "add_")
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    expect_error(ValueError, "add_", _C.binary_inplace, ro, np.ones(3, np.float32), "add", 1.0, "add_")
    expect_error(ValueError, "expand", _C.expand, np.ones(3, np.float32), [2, 4], 1.0)
    expect_error(TypeError, "exp", fastnn.exp, np.ones(3, np.float32))
    expect_error(TypeError, "add", lambda: fastnn.ones(2) + "a")


# ---- where and comparisons (NumPy underneath; a short route when nothing is recorded) ----

@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("sc,sa,sb", [((5,), (5,), (5,)), ((3, 4), (3, 4), ()), ((3, 4), (4,), (3, 1)),
                                      ((0, 2), (0, 2), (2,)), ((2, 3, 5), (1, 3, 5), (2, 1, 5))])
def test_where_values_and_gradients(grad, sc, sa, sb, rng):
    c = rng.random(sc) < 0.5
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    ta, tb = fastnn.tensor(a, requires_grad=grad), fastnn.tensor(b, requires_grad=grad)
    y = fastnn.where(fastnn.tensor(c), ta, tb)
    want = np.where(c, a, b)
    assert y.dtype is fastnn.float32 and y.shape == want.shape
    np.testing.assert_array_equal(y.detach().numpy(), want)
    if grad:
        g = rng.standard_normal(want.shape).astype(np.float32)
        y.backward(fastnn.tensor(g))
        def reduce_to(x, shape):
            while x.ndim > len(shape):
                x = x.sum(0)
            return x.sum(tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True) \
                if shape else x
        np.testing.assert_allclose(ta.grad.numpy(), reduce_to(np.where(c, g, 0.0), sa), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(tb.grad.numpy(), reduce_to(np.where(c, 0.0, g), sb), rtol=1e-5, atol=1e-6)
    # Python numbers on either side.
    t = fastnn.tensor(a)
    np.testing.assert_array_equal(fastnn.where(fastnn.tensor(c), t, 0.0).numpy(),
                                  np.where(c, a, np.float32(0)))
    np.testing.assert_array_equal(fastnn.where(fastnn.tensor(c), 2, t).numpy(),
                                  np.where(c, np.float32(2), a))


def test_where_dtypes_and_errors():
    m = fastnn.tensor([True, False])
    assert fastnn.where(m, fastnn.tensor([1, 2]), 0.5).dtype is fastnn.float32  # as PyTorch
    assert fastnn.where(m, fastnn.tensor([1, 2]), 0).tolist() == [1, 0]
    expect_error(TypeError, "where", fastnn.where, fastnn.tensor([1.0, 0.0]), m, m)
    expect_error(ValueError, "where", fastnn.where, m, fastnn.ones(2), fastnn.ones(3))
    expect_error(ValueError, "where", fastnn.where, m, fastnn.ones(3), 0.0)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_with_numbers_and_tensors(op, rng):
    f = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
         "gt": np.greater, "ge": np.greater_equal}[op]
    dunder = getattr(fastnn.Tensor, f"__{op}__")
    a = rng.standard_normal((3, 7)).astype(np.float32)
    a[0, 0], a[1, 1] = np.nan, 0.5
    b = rng.standard_normal((3, 7)).astype(np.float32)
    b[2, 2] = a[2, 2]
    ta, tb = fastnn.tensor(a), fastnn.tensor(b)
    for other, ref in [(0.5, np.float32(0.5)), (0, np.float32(0)), (tb, b), (ta, a),
                       (fastnn.tensor(b[0]), b[0]), (float("nan"), np.float32(np.nan))]:
        got = dunder(ta, other)
        assert got.dtype is fastnn.bool and got.shape == (3, 7)
        np.testing.assert_array_equal(got.numpy(), f(a, ref))
    # 0-d tensors give 0-d bool tensors (NumPy gives a scalar there).
    for z in (dunder(fastnn.tensor(0.5), 0.25), dunder(fastnn.tensor(0.5), fastnn.tensor(0.25))):
        assert z.dtype is fastnn.bool and z.shape == () and z.item() == f(0.5, 0.25)
        assert z.float().item() == float(f(0.5, 0.25)) and repr(z)
    i = fastnn.tensor([1, 2, 3])
    np.testing.assert_array_equal(dunder(i, 2).numpy(), f(np.array([1, 2, 3]), 2))
    np.testing.assert_array_equal(dunder(i, 1.5).numpy(), f(np.array([1.0, 2.0, 3.0]), 1.5))
    expect_error(ValueError, op, dunder, ta, fastnn.ones(4))


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparison_fast_route(op, rng, monkeypatch):
    # Tensor.__gt__ etc. are _C.tensor_gt_method, ...: a float32 host tensor against a Python
    # number float32 holds or a float32 host tensor of its shape, in C; everything else through
    # elementwise.py's _gt_py (compare). The same bool tensors either way.
    from fastnn._functions import elementwise as E
    dunder, general = getattr(fastnn.Tensor, f"__{op}__"), getattr(E, f"_{op}_py")
    assert fastnn.Tensor.__dict__[f"__{op}__"] is getattr(_C, f"tensor_{op}_method")
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 16777216.0,
                        16777218.0, 0.1, 3.4028235e38], np.float32)
    cases = []
    for shape in [(), (1,), (0,), (5,), (3, 0), (4, 7), (2, 3, 33), (1000,)]:
        a = rng.standard_normal(shape).astype(np.float32)
        if a.size:
            a.flat[rng.integers(0, a.size, min(a.size, 11))] = special[:min(a.size, 11)]
        b = a.copy()
        if b.size:
            b.flat[::2] = rng.standard_normal(b.flat[::2].shape)
        ta, tb = fastnn.tensor(a), fastnn.tensor(b)
        for other in (tb, ta, 0.5, 0, -3, 0.1, 16777217, float("nan"), float("inf"), -0.0,
                      float(np.finfo(np.float32).max)):
            cases.append((ta, other, general(ta, other).numpy()))
    monkeypatch.setattr(E, "compare", lambda *a: pytest.fail("took the general route"))
    for ta, other, want in cases:
        got = dunder(ta, other)
        assert type(got) is fastnn.Tensor and got.dtype is fastnn.bool
        assert got.shape == want.shape and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)
    monkeypatch.undo()
    # The general route: broadcasting, int64 and bool tensors, numbers beyond float32, bools,
    # NumPy scalars, a recorded tensor, and what no comparison takes (NotImplemented).
    a = rng.standard_normal((3, 4)).astype(np.float32)
    ta = fastnn.tensor(a)
    f = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
         "gt": np.greater, "ge": np.greater_equal}[op]
    np.testing.assert_array_equal(dunder(ta, fastnn.tensor(a[0])).numpy(), f(a, a[0]))
    np.testing.assert_array_equal(dunder(ta, np.float32(0.5)).numpy(), f(a, np.float32(0.5)))
    np.testing.assert_array_equal(dunder(ta, True).numpy(), f(a, np.float32(1)))
    np.testing.assert_array_equal(dunder(ta, 1e39).numpy(), f(a.astype(np.float64), 1e39))
    w = fastnn.tensor(a, requires_grad=True)
    r = dunder(w, 0.0)
    assert r.dtype is fastnn.bool and not r.requires_grad
    np.testing.assert_array_equal(r.numpy(), f(a, 0.0))
    assert dunder(ta, "x") is NotImplemented and dunder(ta, None) is NotImplemented
    # An int is rounded to float32 once (through int64), as PyTorch.
    for big in (fastnn.tensor([float(2**60 + 2**37)]),
                fastnn.tensor([float(2**60 + 2**37)], requires_grad=True)):
        assert dunder(big, 2**60 + 2**36 + 1).item() == f(np.float32(2**60 + 2**37),
                                                         np.float32(2**60 + 2**37))
    assert (ta == None) is False and (ta != None) is True  # noqa: E711 (Python's fallback)
    expect_error(ValueError, op, dunder, ta, fastnn.ones(5))


def test_where_fast_route(rng, monkeypatch):
    # fastnn.where is _C.tensor_where: a bool mask with float32 host tensors of its shape or
    # Python numbers (not both numbers), nothing to record, in C; everything else through
    # shape.py's _where_py. The same tensors either way.
    from fastnn._functions import shape as S
    assert fastnn.where is _C.tensor_where and S.where is _C.tensor_where
    cases = []
    for shape in [(), (1,), (0,), (7,), (3, 0), (4, 33), (2, 3, 17), (5000,)]:
        a = rng.standard_normal(shape).astype(np.float32)
        b = rng.standard_normal(shape).astype(np.float32)
        if a.size:
            a.flat[0], b.flat[-1] = np.nan, -0.0
        c = fastnn.tensor(rng.random(shape) < 0.5)
        ta, tb = fastnn.tensor(a), fastnn.tensor(b)
        for x, y in [(ta, tb), (ta, 0.0), (0.5, tb), (ta, -3), (7, tb), (ta, float("inf")),
                     (float("nan"), tb), (ta, ta)]:
            want = np.where(c.numpy(), np.float32(x) if not isinstance(x, fastnn.Tensor)
                            else x.numpy(), np.float32(y) if not isinstance(y, fastnn.Tensor)
                            else y.numpy())
            cases.append((c, x, y, S._where_py(c, x, y).numpy(), want))
    monkeypatch.setattr(S, "_where_operand", lambda *a: pytest.fail("took the general route"))
    monkeypatch.setattr(S, "Where", None)
    for c, x, y, general, want in cases:
        got = fastnn.where(c, x, y)
        assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32
        assert got.shape == want.shape and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)
        np.testing.assert_array_equal(got.numpy(), general)
    monkeypatch.undo()
    # The general route: strided (transposed) masks and operands, broadcasting, a recorded
    # operand, int64 operands, two numbers, a mask that is not bool, keywords.
    m = fastnn.tensor(rng.random((3, 4)) < 0.5)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    at = fastnn.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    for c, x, y in [(m.t(), at, 0.0), (m.t(), 1.0, at), (m, at.t(), at.t()),
                    (fastnn.tensor(np.ascontiguousarray(m.numpy().T)), at, at.t().t())]:
        want = np.where(c.numpy(), *(v.numpy() if isinstance(v, fastnn.Tensor) else np.float32(v)
                                      for v in (x, y)))
        np.testing.assert_array_equal(fastnn.where(c, x, y).numpy(), want)
    np.testing.assert_array_equal(fastnn.where(m, fastnn.tensor(a[0]), 0.0).numpy(),
                                  np.where(m.numpy(), a[0], np.float32(0)))
    w = fastnn.tensor(a, requires_grad=True)
    r = fastnn.where(m, w, 0.0)
    assert r.requires_grad
    r.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), m.numpy().astype(np.float32))
    with fastnn.no_grad():
        assert not fastnn.where(m, w, 0.0).requires_grad
    assert fastnn.where(m, fastnn.tensor(np.arange(12).reshape(3, 4)), 0).dtype is fastnn.int64
    assert fastnn.where(m, 1.0, 0.0).dtype is fastnn.float32
    assert fastnn.where(fastnn.tensor([True]), 2**60 + 2**36 + 1, fastnn.ones(1)).item() == \
        2**60 + 2**37  # (an int rounded to float32 once, as PyTorch)
    np.testing.assert_array_equal(fastnn.where(condition=m, input=w.detach(), other=0.0).numpy(),
                                  np.where(m.numpy(), a, np.float32(0)))
    expect_error(TypeError, "where", fastnn.where, fastnn.ones(3, 4), w.detach(), 0.0)
    expect_error(ValueError, "where", fastnn.where, m, fastnn.ones(5), 0.0)
    with pytest.raises(TypeError, match=r"^where\(\) missing 1 required positional"):
        fastnn.where(m, w)


def test_clamp_fast_route(rng, monkeypatch):
    # fastnn.clamp, Tensor.clamp and Tensor.clip are _C.tensor_clamp: a float32 host tensor
    # that records nothing with number bounds in float32's finite range (by position or
    # keyword, at least one), in C; everything else through elementwise.py's _clamp_py. The
    # same tensors either way.
    from fastnn._functions import elementwise as E
    assert fastnn.clamp is _C.tensor_clamp and E.clamp is _C.tensor_clamp
    assert fastnn.Tensor.__dict__["clamp"] is _C.tensor_clamp_method
    cases = []
    for shape in [(), (1,), (0,), (7,), (4, 33), (2, 3, 17)]:
        a = rng.standard_normal(shape).astype(np.float32) * 2
        if a.size:
            a.flat[0] = np.nan
            a.flat[-1] = -0.0
        x = fastnn.tensor(a)
        for lo, hi in [(-1, 1), (-0.5, None), (None, 0.25), (0.0, 0.0), (1, -1), (0, None),
                       (-3.4e38, 3.4e38)]:
            cases.append((x, lo, hi, E._clamp_py(x, lo, hi).numpy()))
    monkeypatch.setattr(E, "_plain_bound", lambda *a: pytest.fail("took the general route"))
    for x, lo, hi, want in cases:
        calls = [fastnn.clamp(x, lo, hi), fastnn.clamp(x, min=lo, max=hi), x.clamp(lo, hi),
                 x.clip(lo, hi), x.clamp(lo, max=hi)]
        if hi is None:
            calls.append(x.clamp(lo))
        if lo is None:
            calls.append(x.clamp(max=hi))
        for got in calls:
            assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32
            assert got.shape == want.shape and not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), want)
            assert np.signbit(got.numpy()).tolist() == np.signbit(want).tolist()
    monkeypatch.undo()
    # The general route: tensor bounds, inf/NaN bounds, a recorded tensor, int64, strided,
    # errors.
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = fastnn.tensor(a)
    np.testing.assert_array_equal(fastnn.clamp(x, max=fastnn.tensor(a[0])).numpy(),
                                  np.minimum(a, a[0]))
    np.testing.assert_array_equal(x.clamp(float("-inf"), 0.5).numpy(), np.minimum(a, 0.5))
    np.testing.assert_array_equal(x.t().clamp(-0.1, 0.1).numpy(), np.clip(a.T, -0.1, 0.1))
    w = fastnn.tensor(a, requires_grad=True)
    y = w.clamp(-0.5, 0.5)
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), ((a >= -0.5) & (a <= 0.5)).astype(np.float32))
    assert fastnn.tensor([1, 5, 9]).clamp(2, 8).tolist() == [2, 5, 8]
    # An int bound is rounded to float32 once (through int64), as PyTorch; one beyond
    # float32's range is refused even where the float it rounds to is float32's maximum.
    n = 2**60 + 2**36 + 1
    for t in (fastnn.tensor([1.0]), fastnn.tensor([1.0], requires_grad=True),
              fastnn.tensor([[1.0, 2.0]]).t()[0]):  # (fast route, recorded, strided)
        assert t.clamp(n).item() == 2**60 + 2**37 and t.clamp(max=-n).item() == -(2**60 + 2**37)
        assert (t * 0 + n).item() == 2**60 + 2**37  # (binary_plain and _as_pair alike)
    expect_error(ValueError, "clamp", x.clamp, int(float(np.finfo(np.float32).max)) + 1)
    expect_error(ValueError, "clamp", x.clamp)
    expect_error(ValueError, "clamp", x.clamp, 1e39)
    with pytest.raises(TypeError, match=r"^clamp\(\) got an unexpected keyword argument 'lo'"):
        x.clamp(lo=0.0)


# ---- // and % ----------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["//", "%"])
def test_floor_divide_and_remainder_values(op, rng):
    # NumPy's floor division and remainder (the divisor's sign), as Python and PyTorch; int64
    # stays int64, a float on either side gives float32; broadcasting; numbers on both sides.
    fn = np.floor_divide if op == "//" else np.remainder
    tf = (lambda x, y: x // y) if op == "//" else (lambda x, y: x % y)
    fi = rng.integers(-20, 20, (4, 5))
    gi = rng.integers(1, 7, (5,)) * rng.choice([-1, 1], (5,))
    ff = (rng.standard_normal((4, 5)) * 5).astype(np.float32)
    gf = (rng.uniform(0.5, 3, (4, 1)) * rng.choice([-1, 1], (4, 1))).astype(np.float32)
    for a, b in [(fi, gi), (ff, gf), (ff, 2.5), (fi, 3), (fi, -4), (7, gi), (-7.5, gf),
                 (fi, gf), (ff, gi), (np.zeros((0, 5), np.int64), gi)]:
        ta = fastnn.tensor(a) if isinstance(a, np.ndarray) else a
        tb = fastnn.tensor(b) if isinstance(b, np.ndarray) else b
        got = tf(ta, tb)
        a_, b_ = np.asarray(a), np.asarray(b)
        if a_.dtype.kind == "f" or b_.dtype.kind == "f":
            a_, b_ = a_.astype(np.float32), b_.astype(np.float32)
        want = fn(a_, b_)
        assert got.dtype is (fastnn.float32 if want.dtype.kind == "f" else fastnn.int64)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
    assert getattr(fastnn, "floor_divide" if op == "//" else "remainder")(
        fastnn.tensor([-7]), 2).tolist() == ([-4] if op == "//" else [1])


def test_floor_divide_and_remainder_edges():
    # A zero integer divisor is PyTorch's ZeroDivisionError (a RuntimeError); a float one gives
    # inf / NaN silently, as IEEE and PyTorch.
    for f, name in ((lambda: fastnn.tensor([1, 2]) // 0, "floor_divide"),
                    (lambda: fastnn.tensor([1, 2]) % fastnn.tensor([1, 0]), "remainder"),
                    (lambda: 5 % fastnn.tensor([0]), "remainder")):
        expect_error(RuntimeError, name, f)
    assert (fastnn.tensor([1.5]) // 0.0).tolist() == [float("inf")]
    assert np.isnan((fastnn.tensor([1.5]) % 0.0).item())
    expect_error(ValueError, "remainder", lambda: fastnn.ones(2, 3) % fastnn.ones(4))
    with pytest.raises(TypeError):
        fastnn.ones(2) % "a"


def test_remainder_gradient_and_floor_divide_refusal(rng):
    # d(a % b)/da = 1, d(a % b)/db = -floor(a / b), reduced over broadcast dims.
    a = (rng.standard_normal((3, 4)) * 4).astype(np.float32)
    b = (rng.uniform(0.7, 2.5, (4,)) * np.array([1, -1, 1, -1])).astype(np.float32)
    ta, tb = fastnn.tensor(a, requires_grad=True), fastnn.tensor(b, requires_grad=True)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    (ta % tb).backward(fastnn.tensor(g))
    assert_close(ta.grad.numpy(), g.astype(np.float64))
    want_b = (-g.astype(np.float64) * np.floor_divide(a, b)).sum(0)
    assert_close(tb.grad.numpy(), want_b, k=3, scale=float(np.abs(want_b).max()))
    c = fastnn.tensor(a, requires_grad=True)
    (c % 2.0).sum().backward()
    assert (c.grad.numpy() == 1).all()
    y = ta // tb
    assert y.requires_grad
    expect_error(RuntimeError, "floor_divide", y.sum().backward)
