"""max_pool2d / avg_pool2d forward and backward against tests/reference.py, PyTorch's
output sizes (ceil_mode), padding, dilation, overlapping windows, empty batches."""
import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from fastnn import _C
from harness import assert_close, check_op, expect_error

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0), (1, 1), False),    # the 2x2 fast path
    (1, 1, 7, 9, (2, 2), (2, 2), (0, 0), (1, 1), False),    # odd sizes drop a row/column
    (1, 2, 7, 9, (2, 2), (2, 2), (0, 0), (1, 1), True),     # ... which ceil_mode keeps
    (2, 3, 9, 7, (3, 3), (2, 2), (1, 1), (1, 1), True),     # padding + ceil_mode
    (2, 2, 6, 10, (3, 2), (1, 3), (1, 0), (1, 1), False),   # overlapping rows, rectangular
    (1, 3, 10, 10, (3, 3), (2, 2), (1, 1), (2, 2), False),  # dilation
    (3, 4, 5, 5, (5, 5), (1, 1), (2, 2), (1, 1), False),    # large kernel, padded
    (2, 2, 5, 6, (1, 1), (2, 2), (0, 0), (1, 1), True),     # 1x1 subsampling
    (0, 3, 6, 6, (2, 2), (2, 2), (0, 0), (1, 1), False),    # empty batch
]
# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0), False, True, None),
    (1, 2, 7, 9, (3, 3), (2, 2), (1, 1), True, True, None),    # ceil window clipped at H+p
    (1, 2, 7, 9, (3, 3), (2, 2), (1, 1), True, False, None),
    (2, 2, 6, 10, (3, 2), (1, 3), (1, 0), False, False, None),
    (2, 2, 6, 6, (3, 3), (2, 2), (1, 1), False, True, 4),
    (0, 3, 6, 6, (2, 2), (2, 2), (0, 0), False, True, None),
]


def run_max(rng, case):
    n, c, h, w, k, s, p, d, ceil = case
    # NOTE: a permutation of distinct values: no ties, so the arg-max (and the gradient's
    # destination) is unique and finite differences do not straddle a switch.
    x = rng.permutation(n * c * h * w).reshape(n, c, h, w) / 7.0
    return check_op(lambda t: F.max_pool2d(t, k, s, p, d, ceil),
                    lambda a: R.max_pool2d(a, k, s, p, d, ceil), [x],
                    ref_grad=lambda a, g: R.max_pool2d_grad(a, g, k, s, p, d, ceil), rng=rng)


def run_avg(rng, case):
    n, c, h, w, k, s, p, ceil, cip, div = case
    x = rng.standard_normal((n, c, h, w))
    kk = k[0] * k[1]
    f = lambda t: F.avg_pool2d(t, k, s, p, ceil, cip, div)  # noqa: E731
    return check_op(f, lambda a: R.avg_pool2d(a, k, s, p, ceil, cip, div), [x],
                    ref_grad=lambda a, g: R.avg_pool2d_grad(a, g, k, s, p, ceil, cip, div),
                    k=kk, scale=4.0, rng=rng)


@pytest.mark.parametrize("case", MAX_CASES, ids=[str(i) for i in range(len(MAX_CASES))])
def test_max_pool2d(case, rng):
    run_max(rng, case)


@pytest.mark.parametrize("case", AVG_CASES, ids=[str(i) for i in range(len(AVG_CASES))])
def test_avg_pool2d(case, rng):
    run_avg(rng, case)


def test_pool_every_isa_and_threads(rng, isa, threads):
    # 64 planes of 32x32: enough to split over the pool (the kernels are plain C++, but the
    # isa fixture proves they do not depend on the GEMM path).
    run_max(rng, (4, 16, 32, 32, (2, 2), (2, 2), (0, 0), (1, 1), False))
    run_avg(rng, (4, 16, 32, 32, (3, 3), (2, 2), (1, 1), True, True, None))


def test_max_pool2d_indices_and_nan():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    y, idx = F.max_pool2d(fastnn.tensor(x), 2, return_indices=True)
    assert idx.dtype is fastnn.int64
    np.testing.assert_array_equal(idx.numpy()[0, 0], [[0, 7], [13, 15]])
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and y.numpy()[0, 0, 1, 1] == 15


def test_pool_unbatched(rng):
    x = rng.standard_normal((3, 6, 7)).astype(np.float32)
    y = F.max_pool2d(fastnn.tensor(x), 2)
    assert_close(y.numpy(), R.max_pool2d(x[None].astype(np.float64), (2, 2), (2, 2))[0])
    y = F.avg_pool2d(fastnn.tensor(x), 3, 1, 1)
    assert_close(y.numpy(), R.avg_pool2d(x[None].astype(np.float64), (3, 3), (1, 1), (1, 1))[0],
                 k=9, scale=4.0)


def test_pool_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 11, 8)).astype(np.float32)
    for kw in (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))):
        fy = F.max_pool2d(fastnn.tensor(x), **kw)
        ty = torch.nn.functional.max_pool2d(torch.tensor(x), **kw)
        np.testing.assert_array_equal(fy.numpy(), ty.numpy())
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    fy = F.avg_pool2d(fastnn.tensor(x), **kw)
    ty = torch.nn.functional.avg_pool2d(torch.tensor(x), **kw)
    assert_close(fy.numpy(), ty.numpy(), k=9, scale=4.0)


def test_pool_bad_input(rng):
    x = fastnn.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    for f, op in ((F.max_pool2d, "max_pool2d"), (F.avg_pool2d, "avg_pool2d")):
        expect_error(ValueError, op, f, fastnn.tensor(np.ones((5, 5), np.float32)), 2, match="4-D")
        expect_error(ValueError, op, f, x, 7, match="larger than the padded input")
        expect_error(ValueError, op, f, x, 2, 2, 2, match="at most half")
        expect_error(ValueError, op, f, x, 0, match="kernel_size")
        expect_error(ValueError, op, f, x, 2, 0, match="stride")
        expect_error(TypeError, op, f, fastnn.tensor(np.ones((1, 1, 4, 4), np.int64)), 2)
    expect_error(ValueError, "avg_pool2d", F.avg_pool2d, x, 2, divisor_override=0,
                 match="divisor_override")
    xn = x.numpy()
    expect_error(ValueError, "max_pool2d", _C.max_pool2d_fwd, xn[:, :, ::2], 2, 2, 2, 2,
                 match="contiguous")
    dy = np.ones((2, 3, 2, 2), np.float32)
    idx = np.zeros((2, 3, 2, 2), np.int64)
    expect_error(ValueError, "max_pool2d", _C.max_pool2d_bwd, dy, idx, 5, 6, 2, 2, 2, 2,
                 match="grad_output")
    expect_error(ValueError, "max_pool2d", _C.max_pool2d_bwd, dy, idx[:, :, :1], 5, 5, 2, 2, 2,
                 2, match="indices")
    expect_error(IndexError, "max_pool2d", _C.max_pool2d_bwd, dy, idx + 25, 5, 5, 2, 2, 2, 2,
                 match="indices")
    expect_error(TypeError, "max_pool2d", _C.max_pool2d_bwd, dy, idx.astype(np.float32), 5, 5,
                 2, 2, 2, 2)
    expect_error(ValueError, "avg_pool2d", _C.avg_pool2d_bwd, dy, 7, 7, 2, 2, 2, 2,
                 match="grad_output")


def test_pool_modules(rng):
    m = fastnn.nn.MaxPool2d(3, padding=1, ceil_mode=True)
    assert m.stride == 3
    x = rng.standard_normal((2, 3, 8, 8))
    y = m(fastnn.tensor(x.astype(np.float32)))
    assert_close(y.numpy(), R.max_pool2d(x.astype(np.float32).astype(np.float64), (3, 3),
                                         (3, 3), (1, 1), ceil_mode=True))
    y, idx = fastnn.nn.MaxPool2d(2, return_indices=True)(fastnn.tensor(x.astype(np.float32)))
    assert tuple(idx.shape) == (2, 3, 4, 4)
    a = fastnn.nn.AvgPool2d(2, 1, count_include_pad=False)
    assert a.stride == 1 and tuple(a(fastnn.tensor(x.astype(np.float32))).shape) == (2, 3, 7, 7)
    assert "kernel_size=3" in repr(m)


def test_max_pool2d_bwd_foreign_indices():
    """Indices that are in range but not in their own window (not from this forward) take
    the general scatter path: the fast 2x2 path must not drop them."""
    dy = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)
    dx = _C.max_pool2d_bwd(dy, np.zeros((1, 1, 2, 2), np.int64), 4, 4, 2, 2, 2, 2)
    want = np.zeros((1, 1, 4, 4), np.float32)
    want[0, 0, 0, 0] = 10
    np.testing.assert_array_equal(dx, want)


def _argmax22(x):
    """PyTorch's 2x2/stride-2 max-pool indices: the first maximum in a window's row-major
    order, except that a NaN wins (the last NaN)."""
    n, c, h, w = x.shape
    idx = np.zeros((n, c, h // 2, w // 2), np.int64)
    for i in np.ndindex(idx.shape):
        best, bi = None, None
        for dh in (0, 1):
            for dw in (0, 1):
                r, q = 2 * i[2] + dh, 2 * i[3] + dw
                v = x[i[0], i[1], r, q]
                if best is None or v > best or np.isnan(v):
                    best, bi = v, r * w + q
        idx[i] = bi
    return idx


@pytest.mark.parametrize("w", [2, 3, 14, 15, 16, 28, 30, 31, 32, 33, 34])
def test_max_pool2d_22_row_widths(w, rng, isa, threads):
    """The 2x2 kernel on every row width around the SIMD steps (outputs 1..17 per row; the
    AVX-512 path has its own masked loop for rows under 16 outputs), with ties and NaNs in
    every window position: values, indices and the backward's scatter."""
    x = rng.integers(0, 4, (2, 3, 5, w)).astype(np.float32)  # few values: many ties
    x[rng.random(x.shape) < 0.05] = np.nan
    y, idx = _C.max_pool2d_fwd(x, 2, 2, 2, 2)
    want = _argmax22(x)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(y, np.take_along_axis(x.reshape(2, 3, -1),
                                                        want.reshape(2, 3, -1), 2).reshape(y.shape))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = _C.max_pool2d_bwd(dy, idx, 5, w, 2, 2, 2, 2)
    ref = np.zeros((2, 3, 5 * w), np.float32)
    np.put_along_axis(ref, want.reshape(2, 3, -1), dy.reshape(2, 3, -1), 2)
    np.testing.assert_array_equal(dx, ref.reshape(dx.shape))
    # An index moved out of its window in the last (partial) vector step must not be dropped.
    bad = idx.copy()
    bad[1, 2, -1, -1] = 0
    dx = _C.max_pool2d_bwd(dy, bad, 5, w, 2, 2, 2, 2)
    ref = np.zeros((2, 3, 5 * w), np.float32)
    for i in np.ndindex(bad.shape):
        ref[i[0], i[1], bad[i]] += dy[i]
    np.testing.assert_array_equal(dx, ref.reshape(dx.shape))
