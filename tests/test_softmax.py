"""softmax / log_softmax (any dim, forward and backward) and argmax against tests/reference.py."""
import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from fastnn import _C
from harness import BATCHES, assert_close, check_dim_route_declines, check_op, expect_error

KINDS = {
    "softmax": (F.softmax, R.softmax, R.softmax_grad),
    "log_softmax": (F.log_softmax, R.log_softmax, R.log_softmax_grad),
}
CLASSES = [1, 2, 3, 8, 9, 10, 16, 17, 31, 32, 33, 48, 63, 64, 1000]  # (short rows: one call)


def _check(kind, x, dim, rng, c=64):
    fn, ref, ref_grad = KINDS[kind]
    k = x.shape[dim] if x.ndim else 1
    # NOTE: exp/log in float32 are accurate to a few ulp (c=64); the row sums have k terms.
    # log_softmax values are (x - max) - log(sum): their error scales with the logits'
    # magnitude, hence scale = max|x|. The gradients are sums of k terms of size |r|.
    scale = max(1.0, float(np.max(np.abs(x)))) if (kind == "log_softmax" and x.size) else 1.0
    gscale = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
    return check_op(lambda t: fn(t, dim), lambda a: ref(a, dim), [x],
                    ref_grad=lambda a, g: ref_grad(a, dim, g), k=k, scale=scale,
                    grad_scale=gscale * 4, c=c, rng=rng)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("classes", CLASSES)
def test_last_dim(kind, n, classes, rng, isa):
    _check(kind, rng.standard_normal((n, classes)) * 3, -1, rng)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 1, 65), (4, 9, 130), (1, 3, 1), (4, 0, 3),
                                   (0, 3, 2)])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_every_dim_3d(kind, shape, dim, rng, isa):
    # inner = 65 and 130 cross the kernel's 64-column strips, with a partial last strip.
    _check(kind, rng.standard_normal(shape) * 2, dim, rng)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape,dim", [((), 0), ((), -1), ((7,), 0), ((1,), -1), ((0,), 0),
                                       ((2, 3, 4, 5), 2)])
def test_any_rank(kind, shape, dim, rng):
    _check(kind, rng.standard_normal(shape), dim, rng)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape,dim", [((64, 1000), 1), ((8, 300, 70), 1), ((300, 6, 20), 0)])
def test_threads(kind, shape, dim, threads, rng):
    # Large enough that both the row path and the strip path split over the pool.
    _check(kind, rng.standard_normal(shape), dim, rng)


@pytest.mark.parametrize("kind", list(KINDS))
def test_large_logits_are_finite(kind, rng, isa):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0],
                  [-1e4, -1e4, -1e4, -1e4],
                  [1e4, 1e4, 1e4, 1e4],
                  [-1e4, 1e4, 3.0, -2.0]])
    fn = KINDS[kind][0]
    t = fastnn.tensor(x.astype(np.float32), requires_grad=True)
    y = fn(t, 1)
    y.backward(fastnn.tensor(rng.standard_normal(x.shape).astype(np.float32)))
    assert np.isfinite(y.detach().numpy()).all() and np.isfinite(t.grad.numpy()).all()
    _check(kind, x, 1, rng)
    _check(kind, x.T.copy(), 0, rng)  # the strided path too


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dim", [0, 1])
def test_nan_and_inf_rows(kind, dim, isa):
    """A NaN makes its whole row NaN; an all -inf row is NaN; other rows are untouched."""
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [0.5, -np.inf, 1.0],
                  [3.0, 1.0, 2.0]], np.float32)
    if dim == 0:
        x = np.ascontiguousarray(x.T)
    fn, ref, _ = KINDS[kind]
    y = fn(fastnn.tensor(x), dim).numpy()
    with np.errstate(invalid="ignore"):  # -inf - -inf inside assert_close's error measure
        assert_close(y, ref(x.astype(np.float64), dim), k=3, c=64, what=kind)
    rows = np.moveaxis(y, dim, -1)
    assert np.isnan(rows[0]).all() and np.isnan(rows[1]).all()
    assert not np.isnan(rows[2:]).any()


@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch_on_specials(kind):
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, np.nan, 2.0], [-np.inf, -np.inf, -np.inf], [0.5, -np.inf, 1.0],
                  [np.inf, 1.0, 2.0], [1e4, -1e4, 0.0]], np.float32)
    got = KINDS[kind][0](fastnn.tensor(x), 1).numpy()
    want = getattr(torch, kind)(torch.from_numpy(x), 1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_softmax_rows_sum_to_one(rng):
    y = F.softmax(fastnn.tensor(rng.standard_normal((17, 1000)).astype(np.float32) * 10), 1)
    # NOTE: 1000 terms each rounded once: |sum - 1| <= ~1000 * eps32 / 2 in the worst case.
    np.testing.assert_allclose(y.numpy().sum(1), 1.0, atol=1000 * 6e-8)


# ---- argmax -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5, 7), (2, 1, 65), (4, 0, 3)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_matches_numpy(shape, keepdim, rng):
    # Small integers give many ties (first index must win).
    x = rng.integers(0, 3, size=shape).astype(np.float64)
    for dim in [None] + list(range(-len(shape), len(shape))) if shape else [None, 0, -1]:
        if dim is not None and len(shape) and shape[dim] == 0:
            continue
        if dim is None and x.size == 0:
            continue
        check_op(lambda t: fastnn.argmax(t, dim, keepdim), lambda a: R.argmax(a, dim, keepdim), [x])
        check_op(lambda t: fastnn.argmax(t, dim, keepdim), lambda a: R.argmax(a, dim, keepdim),
                 [x.astype(np.int64)])


def test_argmax_ties_and_nan():
    a = fastnn.tensor([[1.0, 3.0, 3.0, 2.0], [1.0, np.nan, 5.0, np.nan], [np.nan, 9.0, 1.0, 1.0],
                       [-np.inf, -np.inf, -np.inf, -np.inf]])
    np.testing.assert_array_equal(fastnn.argmax(a, 1).numpy(), [1, 1, 0, 0])
    np.testing.assert_array_equal(fastnn.argmax(a, 0).numpy(), [2, 1, 1, 1])
    assert fastnn.argmax(a).item() == 5  # flattened: the first NaN
    assert fastnn.argmax(a, keepdim=True).shape == (1, 1)
    assert fastnn.argmax(a, 1, keepdim=True).shape == (4, 1)
    assert fastnn.argmax(a).dtype is fastnn.int64
    big = np.array([2**62, 2**62 + 1, 2**62 + 1], np.int64)  # beyond float precision
    assert fastnn.argmax(fastnn.tensor(big)).item() == 1


def test_argmax_matches_torch_with_nan(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 9)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    for dim in (0, 1):
        np.testing.assert_array_equal(fastnn.argmax(fastnn.tensor(x), dim).numpy(),
                                      torch.argmax(torch.from_numpy(x), dim).numpy())


def test_argmax_threads(threads, rng):
    x = rng.integers(0, 50, size=(4000, 33)).astype(np.float32)
    check_op(lambda t: fastnn.argmax(t, 1), lambda a: R.argmax(a, 1), [x])
    check_op(lambda t: fastnn.argmax(t, 0), lambda a: R.argmax(a, 0), [x])


# ---- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
def test_fast_route_matches_general_route(kind, rng, monkeypatch):
    # fastnn.softmax is _C.tensor_softmax: the common call (a C-contiguous float32 host tensor,
    # nothing to record, an int dim by position or as dim=) in C++, the rest through
    # softmax.py's general route. Both give the same bits, shapes and errors.
    from fastnn._functions import softmax as S
    fast, general = getattr(fastnn, kind), getattr(S, f"_{kind}_py")
    assert fast is getattr(_C, f"tensor_{kind}") and getattr(F, kind) is fast
    cases = [((), 0), ((), -1), ((5,), 0), ((0, 3), 1), ((3, 0), 0), ((3, 0), 1), ((4, 7), 1),
             ((4, 7), -2), ((2, 3, 5), 1), ((64, 10), 1), ((3, 70), -1)]
    xs = [fastnn.tensor(rng.standard_normal(shape).astype(np.float32)) for shape, _ in cases]
    wants = [general(x, dim).numpy() for x, (_, dim) in zip(xs, cases)]
    # These calls must not reach the Python layer at all.
    monkeypatch.setattr(S, "_softmax", lambda *a: pytest.fail("took the general route"))
    for x, (_, dim), want in zip(xs, cases, wants):
        for got in (fast(x, dim), fast(x, dim=dim), getattr(x, kind)(dim),
                    getattr(x, kind)(dim=dim), getattr(F, kind)(x, dim)):
            assert got.shape == want.shape and not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), want)
    monkeypatch.undo()
    # The general route: a recorded call, a transposed view, a NumPy integer dim.
    _, plain = check_dim_route_declines(fast, general, rng)
    expect_error(TypeError, kind, fast, plain, True)
    expect_error(TypeError, kind, fast, plain, 1.0)
    expect_error(TypeError, kind, fast, plain, dim=1.0)
    expect_error(IndexError, kind, fast, plain, dim=2)
    expect_error(IndexError, kind, fast, plain, 2**70)
    # Python's own argument errors name the public function.
    with pytest.raises(TypeError, match=rf"^{kind}\(\) takes 2 positional"):
        fast(plain, 1, 2)
    with pytest.raises(TypeError, match=rf"^{kind}\(\) got an unexpected keyword argument 'axis'"):
        fast(plain, axis=1)
    with pytest.raises(TypeError, match=rf"^{kind}\(\) missing 1 required positional argument: 'dim'"):
        getattr(plain, kind)()


def test_bad_input():
    x = fastnn.ones(3, 4)
    for name, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
        expect_error(TypeError, name, fn, np.ones((3, 4), np.float32), 1)
        expect_error(TypeError, name, fn, fastnn.tensor([1, 2, 3]), 0)
        expect_error(IndexError, name, fn, x, 2, match="got 2")
        expect_error(IndexError, name, fn, x, -3)
        expect_error(TypeError, name, fn, x, 1.5)
        expect_error(TypeError, name, fn, x, None)
    expect_error(TypeError, "argmax", fastnn.argmax, np.ones(3))
    expect_error(TypeError, "argmax", fastnn.argmax, fastnn.ones(3) > 0)
    expect_error(IndexError, "argmax", fastnn.argmax, x, 2)
    expect_error(ValueError, "argmax", fastnn.argmax, fastnn.zeros(0))
    expect_error(ValueError, "argmax", fastnn.argmax, fastnn.zeros(3, 0), 1)


def test_bad_input_c_level():
    good = np.ones((3, 4), np.float32)
    expect_error(TypeError, "softmax", _C.softmax_fwd, np.ones((3, 4)), 1)
    expect_error(ValueError, "log_softmax", _C.softmax_fwd, good.T, 1, True)
    expect_error(IndexError, "softmax", _C.softmax_fwd, good, 2)
    expect_error(TypeError, "softmax", _C.softmax_fwd, [1.0, 2.0], 0)
    expect_error(ValueError, "softmax", _C.softmax_bwd, good, np.ones((4, 3), np.float32), 1)
    expect_error(ValueError, "softmax", _C.softmax_bwd, good.T, good.T, 1)
    expect_error(TypeError, "log_softmax", _C.softmax_bwd, good, np.ones((3, 4)), 1, True)
    expect_error(ValueError, "argmax", _C.argmax, good.T, 0)
    expect_error(TypeError, "argmax", _C.argmax, np.ones(3, np.int32), 0)
    expect_error(IndexError, "argmax", _C.argmax, good, -3)


@pytest.mark.parametrize("n", [63, 64, 65, 200, 1000])
def test_exp_range_in_long_rows(n, isa, rng):
    """The exp over its whole range (gradual underflow, 0, values near overflow) in rows
    long enough for the vector kernels' main loops, not only their tails: softmax(x) with a
    spread of 220 gives terms from 1 down to exp(-220) = 0."""
    x = rng.uniform(-130.0, 90.0, (3, n)).astype(np.float32)
    x[1, n // 2] = -np.inf  # exp(-inf - m) = 0 exactly, mid-row
    got = F.softmax(fastnn.tensor(x), 1).numpy().astype(np.float64)
    want = R.softmax(x.astype(np.float64), 1)
    # NOTE: every term is exp(x - m) with x - m exact in float32 (Sterbenz does not apply
    # in general, so allow the rounding of x - m: |x - m| <= 220, ulp 1.5e-5, and exp's own
    # few ulp) relative to each term, plus the denominators' rounding. Results below the
    # smallest normal float may be flushed to 0 (the generic exp does; vscalefps gives the
    # subnormal), hence atol = float32's tiny.
    np.testing.assert_allclose(got, want, rtol=5e-5, atol=float(np.finfo(np.float32).tiny))
    assert got[1, n // 2] == 0.0
    log = F.log_softmax(fastnn.tensor(x), 1).numpy()
    np.testing.assert_allclose(log, R.log_softmax(x.astype(np.float64), 1), rtol=1e-6, atol=2e-5)
