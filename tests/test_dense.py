"""linear (fused bias + activation) and matmul through autograd, against tests/reference.py."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from fastnn import _C
from harness import BATCHES, assert_close, check_op, expect_error

ACTS = ["none", "relu", "sigmoid", "tanh", "gelu", "softplus"]
# (in, out) paired with each batch size: 1, odd, around and off the 8/16/32 tile widths.
FEATS = [(1, 1), (5, 3), (8, 16), (33, 17), (16, 5)]


def _mx(a):
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


def linear_tols(x, w, b):
    """(k, scale, grad_k, grad_scale) for check_op on linear; see test_gemm.gemm_scale.
    NOTE: forward: a length-IN dot product (+ bias, one more term), then an activation whose
    slope is at most ~1.13 (gelu), so the GEMM bound carries over. Backward: dx sums over OUT,
    dw and db over the batch; terms are dZ*w or dZ*x with |dZ| <= 1.13*|r|, and r (standard
    normal, at most a few thousand draws) stays below 5."""
    n, fin = x.shape
    fout = w.shape[0]
    k = fin + 1
    scale = math.sqrt(k) * (_mx(x) * _mx(w) + _mx(b) if b is not None else _mx(x) * _mx(w))
    gk = max(n, fin, fout, 1)
    gscale = math.sqrt(gk) * 1.13 * 5 * max(_mx(x), _mx(w), 1.0)
    return k, scale, gk, gscale


def run_linear(rng, n, fin, fout, act, bias):
    while True:
        x = rng.standard_normal((n, fin))
        w = rng.standard_normal((fout, fin))
        inputs = [x, w] + ([rng.standard_normal(fout)] if bias else [])
        # NOTE: relu has a kink at 0: a pre-activation within float32 rounding (or the finite
        # difference step) of 0 can take the other branch and move a gradient by O(1). Keep
        # every |z| above 1e-3, far outside both, by redrawing (rarely needed).
        z = x @ w.T + (inputs[2] if bias else 0.0)
        if act != "relu" or z.size == 0 or np.min(np.abs(z)) > 1e-3:
            break
    k, scale, gk, gscale = linear_tols(x, w, inputs[2] if bias else None)

    def fn(*t):
        return F.linear(t[0], t[1], t[2] if bias else None, act=act)

    def ref(*a):
        return R.linear(a[0], a[1], a[2] if bias else None, act)

    def ref_grad(*a):
        g = R.linear_grad(a[0], a[1], a[2] if bias else None, a[-1], act)
        return g if bias else g[:2]

    # NOTE: c=64 as in the activation tests: exp/erf/tanh add a few ulp of their own.
    check_op(fn, ref, inputs, ref_grad=ref_grad, k=k, scale=scale, grad_k=gk,
             grad_scale=gscale, c=64, rng=rng)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n,feat", list(zip(BATCHES, FEATS)))
@pytest.mark.parametrize("act", ACTS)
def test_linear(act, n, feat, bias, rng):
    run_linear(rng, n, feat[0], feat[1], act, bias)


@pytest.mark.parametrize("act", ACTS)
def test_linear_every_isa(act, rng, isa):
    run_linear(rng, 17, 33, 17, act, True)


@pytest.mark.parametrize("act", range(6))
def test_linear_fused_epilogue_edge_tiles(act, rng, isa, threads, gemm_order):
    # _C level, forward only: the bias/z/activation epilogue runs inside the micro-kernel (or
    # on the finished tile), so every tile shape matters: full tiles, ragged row and column
    # edges (1, 15, 33, 65 outputs vs 8/16/32-wide tiles), K across a cache block, threads,
    # and on the packed path (over 256 rows) in both loop orders, where only the last K block
    # may apply it.
    kc = _C.gemm_blocks()[1]
    for n, fin, fout in [(1, 3, 1), (15, 7, 33), (29, kc + 3, 65), (300, 20, 70),
                         (300, kc + 3, 70), (301, 2 * kc + 5, 45)]:
        x = rng.standard_normal((n, fin)).astype(np.float32)
        w = rng.standard_normal((fout, fin)).astype(np.float32)
        b = rng.standard_normal(fout).astype(np.float32)
        y, z = _C.linear_fwd(x, w, b, act, 1.0, 20.0)
        name = ACTS[act]
        k = fin + 1
        scale = math.sqrt(k) * (_mx(x) * _mx(w) + _mx(b))
        # NOTE: c=64 as in the activation tests: exp/erf/tanh add a few ulp of their own.
        assert_close(y, R.linear(x.astype(np.float64), w, b, name), k=k, scale=scale, c=64,
                     what=f"linear {name} {n}x{fin}->{fout}")
        if z is not None:
            assert_close(z, x.astype(np.float64) @ w.T + b, k=k, scale=scale,
                         what=f"z {name} {n}x{fin}->{fout}")


def test_linear_relu_fused_special_values(isa):
    # The in-register ReLU must treat NaN and -0 like the elementwise relu (NaN passes).
    x = np.array([[np.nan, 1.0], [1.0, 1.0], [-1.0, 0.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, -1.0]], np.float32)
    y, _ = _C.linear_fwd(x, w, np.zeros(2, np.float32), 1, 1.0, 20.0)
    assert np.isnan(y[0]).all()  # NaN*0 is NaN: both outputs of the NaN row
    np.testing.assert_array_equal(y[1:], [[1.0, 0.0], [0.0, 0.0]])


def test_linear_large_threaded(rng, threads):
    # Above the GEMM's threading threshold in forward, dx and dw.
    run_linear(rng, 130, 129, 257, "relu", True)


def test_linear_leading_dims(rng):
    x = rng.standard_normal((2, 3, 7))
    w = rng.standard_normal((5, 7))
    b = rng.standard_normal(5)
    k, scale, gk, gscale = linear_tols(x.reshape(-1, 7), w, b)
    check_op(lambda *t: F.linear(*t, act="tanh"), lambda *a: R.linear(*a, act="tanh"),
             [x, w, b], ref_grad=lambda x_, w_, b_, g: R.linear_grad(x_, w_, b_, g, "tanh"),
             k=k, scale=scale, grad_k=gk, grad_scale=gscale, c=64, rng=rng)
    # A 1-D input is one sample: (in,) -> (out,).
    y = F.linear(fastnn.tensor(x[0, 0].astype(np.float32)), fastnn.tensor(w.astype(np.float32)))
    assert tuple(y.shape) == (5,)


def test_linear_only_requested_grads(rng):
    x = fastnn.tensor(rng.standard_normal((4, 3)).astype(np.float32))  # no grad
    w = fastnn.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    b = fastnn.tensor(np.zeros(2, np.float32))  # no grad
    F.linear(x, w, b, act="gelu").backward(fastnn.ones(4, 2))
    assert w.grad is not None and x.grad is None and b.grad is None
    dx, dw, db = _C.linear_bwd(np.ones((4, 2), np.float32), x.numpy(), w.detach().numpy(),
                               None, 0, 1.0, 20.0, True, False, False)
    assert dw is None and db is None and dx.shape == (4, 3)


def test_linear_fwd_saves_preactivation(rng):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    z_ref = x.astype(np.float64) @ w.T + b
    for act in range(6):
        y, z = _C.linear_fwd(x, w, b, act, 1.0, 20.0)
        if act in (4, 5):  # gelu, softplus need the pre-activation for backward
            assert_close(z, z_ref, k=6, scale=math.sqrt(6) * 10, what="z")
        else:
            assert z is None
        assert y.shape == (6, 3)


@pytest.mark.parametrize("beta,threshold", [(2.0, 5.0), (0.5, 1.0)])
def test_linear_softplus_params(beta, threshold, rng):
    x = rng.standard_normal((9, 7)).astype(np.float32) * 2
    w = rng.standard_normal((5, 7)).astype(np.float32)
    z = x.astype(np.float64) @ w.T
    y, _ = _C.linear_fwd(x, w, None, 5, beta, threshold)
    assert_close(y, R.softplus(z, beta, threshold), k=7, scale=math.sqrt(7) * 2 * _mx(x) * _mx(w),
                 c=64, what="softplus")


def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((11, 19)).astype(np.float32)
    w = rng.standard_normal((7, 19)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    ty = torch.nn.functional.gelu(torch.nn.functional.linear(tx, tw, tb))
    ty.backward(torch.ones_like(ty))
    fx, fw, fb = (fastnn.tensor(v, requires_grad=True) for v in (x, w, b))
    fy = F.linear(fx, fw, fb, act="gelu")
    fy.backward(fastnn.ones(11, 7))
    # NOTE: two float32 implementations, each within the derived bound of the truth.
    scale = math.sqrt(20) * _mx(x) * _mx(w) * 2
    assert_close(fy.detach().numpy(), ty.detach().numpy(), k=20, scale=scale, c=64, what="y")
    for f, t in ((fx, tx), (fw, tw), (fb, tb)):
        assert_close(f.grad.numpy(), t.grad.numpy(), k=20, scale=scale, c=64, what="grad")


# ---- matmul --------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)),                 # dot -> 0-d
    ((5, 3), (3,)),               # matrix . vector
    ((3,), (3, 4)),               # vector . matrix
    ((7, 5), (5, 9)),
    ((1, 1), (1, 1)),
    ((2, 7, 5), (5, 9)),          # batch . shared matrix (folded into one GEMM)
    ((5, 33), (2, 33, 4)),        # shared matrix . batch (broadcast by zero stride)
    ((5,), (2, 5, 4)),            # vector . batch
    ((2, 3, 5), (5,)),            # batch . vector
    ((4, 7, 5), (4, 5, 3)),
    ((2, 1, 7, 5), (1, 3, 5, 4)),  # partial broadcast on both sides
    ((3, 1, 6, 2), (4, 2, 17)),
    ((0, 7, 5), (5, 3)),          # empty batch
    ((2, 0, 5), (2, 5, 3)),       # empty rows
    ((2, 4, 0), (2, 0, 3)),       # empty reduction: zeros
]


def matmul_tols(sa, sb):
    k = sa[-1]
    m = sa[-2] if len(sa) > 1 else 1
    n = sb[-1] if len(sb) > 1 else 1
    nbatch = int(np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]), dtype=np.int64))
    # dA sums over n (and broadcast batches), dB over m times the batch; r below 5, inputs
    # standard normal below ~5 as well (see linear_tols).
    gk = max(n, m, 1) * max(nbatch, 1)
    return k, math.sqrt(max(k, 1)) * 25, gk, math.sqrt(gk) * 25


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb, rng):
    k, scale, gk, gscale = matmul_tols(sa, sb)
    check_op(fastnn.matmul, R.matmul, [rng.standard_normal(sa), rng.standard_normal(sb)],
             ref_grad=R.matmul_grad, k=k, scale=scale, grad_k=gk, grad_scale=gscale, rng=rng)


@pytest.mark.parametrize("sa,sb", [((2, 7, 33), (33, 17)), ((3, 17, 16), (3, 16, 65))])
def test_matmul_every_isa(sa, sb, rng, isa):
    k, scale, gk, gscale = matmul_tols(sa, sb)
    check_op(lambda a, b: a @ b, R.matmul, [rng.standard_normal(sa), rng.standard_normal(sb)],
             ref_grad=R.matmul_grad, k=k, scale=scale, grad_k=gk, grad_scale=gscale, rng=rng)


def test_matmul_large_threaded(rng, threads):
    sa, sb = (2, 129, 100), (100, 257)
    k, scale, gk, gscale = matmul_tols(sa, sb)
    check_op(fastnn.matmul, R.matmul, [rng.standard_normal(sa), rng.standard_normal(sb)],
             ref_grad=R.matmul_grad, k=k, scale=scale, grad_k=gk, grad_scale=gscale, rng=rng,
             fd=False)  # the float64 reference gradient is checked on the small shapes


def test_matmul_noncontiguous_input(rng):
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    got = fastnn.matmul(fastnn.tensor(a).T, fastnn.tensor(b))
    assert_close(got.numpy(), a.T.astype(np.float64) @ b, k=6, scale=math.sqrt(6) * 25)


# fastnn.matmul and Tensor.__matmul__ are _C.tensor_matmul: two plain 2-D float32 tensors with
# nothing to record are multiplied in C; everything else goes to dense._matmul_py. Both routes
# must give the same tensors.
FAST_SHAPES = [(1, 1, 1), (16, 16, 16), (7, 33, 17), (64, 64, 64), (65, 3, 100), (17, 64, 0),
               (0, 4, 3)]


@pytest.mark.parametrize("m,n,k", FAST_SHAPES)
def test_matmul_fast_path(m, n, k, rng, isa):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = math.sqrt(max(k, 1)) * 25
    ta, tb = fastnn.tensor(a), fastnn.tensor(b)
    for got in (fastnn.matmul(ta, tb), ta @ tb, fastnn.matmul(a=ta, b=tb)):
        assert type(got) is fastnn.Tensor and got.dtype is fastnn.float32
        assert not got.requires_grad and got.grad_fn is None and got.is_leaf
        assert tuple(got.shape) == (m, n)
        assert_close(got.numpy(), want, k=k, scale=scale, what="matmul fast path")
    # Operands that require grad, with grad mode off: nothing is recorded.
    pa, pb = fastnn.nn.Parameter(fastnn.tensor(a)), fastnn.tensor(b, requires_grad=True)
    with fastnn.no_grad():
        got = pa @ pb
    assert type(got) is fastnn.Tensor and not got.requires_grad and got.grad_fn is None
    assert_close(got.numpy(), want, k=k, scale=scale, what="matmul under no_grad")
    # With grad mode on the same call is recorded (the general route) and differentiates.
    got = fastnn.matmul(pa, tb)
    assert got.requires_grad and got.grad_fn is not None
    r = rng.standard_normal((m, n)).astype(np.float32)
    got.backward(fastnn.tensor(r))
    assert_close(pa.grad.numpy(), r.astype(np.float64) @ b.T.astype(np.float64), k=max(n, 1),
                 scale=math.sqrt(max(n, 1)) * 25, what="matmul grad")
    got = ta @ pb
    assert got.requires_grad


def test_matmul_fast_path_leaves_operands_alone(rng):
    # The C route borrows the operands' arrays: their reference counts, values and the
    # operands themselves (no version bump, no grad) are unchanged after many calls.
    import sys
    ta = fastnn.tensor(rng.standard_normal((9, 5)).astype(np.float32))
    tb = fastnn.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    a0, b0 = ta.numpy().copy(), tb.numpy().copy()
    # (Counted into plain variables: pytest's assertion rewriting holds what it evaluates.)
    before = [sys.getrefcount(ta._data), sys.getrefcount(tb._data)]
    outs = [ta @ tb for _ in range(1000)]
    after = [sys.getrefcount(ta._data), sys.getrefcount(tb._data), sys.getrefcount(outs[-1]._data)]
    assert after == before + before[:1]
    np.testing.assert_array_equal(ta.numpy(), a0)
    np.testing.assert_array_equal(tb.numpy(), b0)
    assert ta._version == 0 and ta.grad is None
    assert all(np.array_equal(o.numpy(), outs[0].numpy()) for o in outs)


def test_matmul_general_route_cases(rng):
    # What the C route hands on: strided views, 1-D and batched operands, int64 tensors
    # (refused as before), non-tensors, and wrong argument counts.
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    got = fastnn.tensor(a).T @ fastnn.tensor(b)
    assert_close(got.numpy(), a.T.astype(np.float64) @ b, k=6, scale=math.sqrt(6) * 25)
    v = fastnn.tensor(a[0])
    assert tuple(fastnn.matmul(fastnn.tensor(b[:, :4]), v).shape) == (6,)
    assert tuple((fastnn.ones(2, 3, 4) @ fastnn.ones(4, 5)).shape) == (2, 3, 5)
    expect_error(TypeError, "matmul", fastnn.matmul, fastnn.tensor([[1, 2], [3, 4]]),
                 fastnn.ones(2, 2))
    expect_error(TypeError, "matmul", fastnn.matmul, fastnn.ones(2, 2), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError):
        fastnn.matmul(fastnn.ones(2, 2))
    with pytest.raises(TypeError):
        fastnn.matmul(fastnn.ones(2, 2), fastnn.ones(2, 2), fastnn.ones(2, 2))


# Strided 2-D operands. The GEMM reads four layouts in place (see gemm_operand in
# bind_dense.cpp): C-contiguous, a transposed view (x @ w.T), and either of those sliced out of
# a wider array; the rest are copied first. _layout builds an (r, c) Tensor holding v's values
# in the given layout: a view of a C-contiguous Tensor, as a user's slicing makes one
# (fastnn.tensor(view) would copy into contiguous storage).
def _layout(v, kind, rng, requires_grad=False):
    r, c = v.shape

    def base(shape, fill):
        x = rng.standard_normal(shape).astype(np.float32)
        fill(x)
        return fastnn.tensor(x, requires_grad=requires_grad)
    if kind == "c":
        t = fastnn.tensor(v, requires_grad=requires_grad)
    elif kind == "t":  # stored (c, r)
        t = fastnn.tensor(np.ascontiguousarray(v.T), requires_grad=requires_grad).T
    elif kind == "rows":  # columns 2..2+c of a wider array: row stride c + 5
        t = base((r, c + 5), lambda x: x.__setitem__((slice(None), slice(2, 2 + c)), v))[:, 2:2 + c]
    elif kind == "tslice":  # a transposed view of a column slice: leading dimension r + 3
        t = base((c, r + 3), lambda x: x.__setitem__((slice(None), slice(1, 1 + r)), v.T))[:, 1:1 + r].T
    elif kind == "step":  # every other column: no unit stride (copied)
        t = base((r, 2 * c), lambda x: x.__setitem__((slice(None), slice(None, None, 2)), v))[:, ::2]
    elif kind == "neg":  # rows reversed: a negative stride (copied)
        t = fastnn.tensor(np.ascontiguousarray(v[::-1]), requires_grad=requires_grad)[::-1]
    else:
        raise AssertionError(kind)
    d = t.detach().numpy()
    assert d.shape == (r, c) and np.array_equal(d, v)
    # The view is what the test means it to be (a copy somewhere would make it contiguous).
    assert d.flags.c_contiguous == (kind == "c" or r * c <= 1 or (kind in ("t", "neg") and min(r, c) == 1)), kind
    if requires_grad and kind != "c":
        t.retain_grad()
    return t


IN_PLACE = ["c", "t", "rows", "tslice"]
LAYOUTS = IN_PLACE + ["step", "neg"]
# (m, n, k): 1, odd, empty, the small-shape paths (x·Wᵀ with m < n takes the transposed
# small kernel) and the packed path (m > 256).
VIEW_SHAPES = [(1, 1, 1), (7, 33, 17), (64, 96, 80), (3, 40, 0), (0, 5, 4), (300, 70, 130)]


@pytest.mark.parametrize("m,n,k", VIEW_SHAPES)
@pytest.mark.parametrize("la,lb", [(x, y) for x in LAYOUTS for y in LAYOUTS
                                   if x in ("c", "t") or y in ("c", "t")])
def test_matmul_strided_views(m, n, k, la, lb, rng):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = math.sqrt(max(k, 1)) * 25
    ta, tb = _layout(a, la, rng), _layout(b, lb, rng)
    # _C.mm on the arrays (the Python route's kernel), then the C route of Tensor @.
    assert_close(_C.mm(ta.numpy(), tb.numpy()), want, k=k, scale=scale, what=f"_C.mm {la} x {lb}")
    assert_close((ta @ tb).numpy(), want, k=k, scale=scale, what=f"tensor @ {la} x {lb}")
    # The recorded route, and its gradients with respect to the views.
    pa, pb = _layout(a, la, rng, True), _layout(b, lb, rng, True)
    y = pa @ pb
    assert_close(y.detach().numpy(), want, k=k, scale=scale, what=f"recorded @ {la} x {lb}")
    r = rng.standard_normal((m, n)).astype(np.float32)
    y.backward(fastnn.tensor(r))
    r64 = r.astype(np.float64)
    assert_close(pa.grad.numpy(), r64 @ b.astype(np.float64).T, k=max(n, 1),
                 scale=math.sqrt(max(n, 1)) * 25, what=f"dA {la} x {lb}")
    assert_close(pb.grad.numpy(), a.astype(np.float64).T @ r64, k=max(m, 1),
                 scale=math.sqrt(max(m, 1)) * 25, what=f"dB {la} x {lb}")
    # The operands are left as they were.
    for t, v in ((ta, a), (tb, b), (pa, a), (pb, b)):
        np.testing.assert_array_equal(t.detach().numpy(), v)


@pytest.mark.parametrize("la", LAYOUTS)
def test_matmul_views_read_in_place(la, rng, monkeypatch, isa):
    # The in-place layouts reach the GEMM without a copy, forward and backward, by every
    # route; the others are copied, which this test sees: every copy goes through
    # np.ascontiguousarray.
    a = rng.standard_normal((9, 37)).astype(np.float32)
    w = rng.standard_normal((37, 21)).astype(np.float32)
    want = a.astype(np.float64) @ w.astype(np.float64)
    r = rng.standard_normal((9, 21)).astype(np.float32)
    ta, tw = _layout(a, la, rng), _layout(w, "t", rng)
    pa, pw = _layout(a, la, rng, True), _layout(w, "t", rng, True)
    g = fastnn.tensor(r)

    def refuse(*args, **kw):
        raise RuntimeError("copied")

    monkeypatch.setattr(np, "ascontiguousarray", refuse)
    if la not in IN_PLACE:
        with pytest.raises(RuntimeError, match="copied"):
            _C.mm(ta.numpy(), tw.numpy())
        with pytest.raises(RuntimeError, match="copied"):
            ta @ tw
        return
    scale = math.sqrt(37) * 25
    assert_close(_C.mm(ta.numpy(), tw.numpy()), want, k=37, scale=scale, what=f"_C.mm {la}")
    assert_close((ta @ tw).numpy(), want, k=37, scale=scale, what=f"tensor @ {la}")
    y = pa @ pw
    y.backward(g)
    assert_close(pa.grad.numpy(), r.astype(np.float64) @ w.astype(np.float64).T, k=21,
                 scale=math.sqrt(21) * 25, what=f"dA {la}")
    assert_close(pw.grad.numpy(), a.astype(np.float64).T @ r.astype(np.float64), k=9,
                 scale=math.sqrt(9) * 25, what=f"dW {la}")


@pytest.mark.parametrize("shape", [(64, 784, 256), (3, 50, 100), (1, 1, 1)])
def test_matmul_transposed_weight_gradient_is_adopted(shape, rng, monkeypatch):
    # y = x @ w.T: w's gradient is computed in w.T's layout, so the Permute's backward hands w
    # a C-contiguous gradient, adopted without a copy when it is large enough to come from
    # the library allocator (4096 floats and up; a copy goes through _aligned_copy).
    import sys
    T = sys.modules["fastnn.tensor"]  # (fastnn.tensor the attribute is the function)
    m, k, n = shape
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    r = rng.standard_normal((m, n)).astype(np.float32)
    px, pw, g = fastnn.tensor(x, requires_grad=True), fastnn.tensor(w, requires_grad=True), \
        fastnn.tensor(r)
    copies = []
    real = T._aligned_copy
    monkeypatch.setattr(T, "_aligned_copy", lambda a, dt: copies.append(a.shape) or real(a, dt))
    (px @ pw.T).backward(g)
    big = [s for s in copies if s[0] * s[1] >= 4096]
    assert big == [], f"large gradients copied: {big}"
    r64 = r.astype(np.float64)
    assert_close(pw.grad.numpy(), r64.T @ x.astype(np.float64), k=m, scale=math.sqrt(m) * 25,
                 what="dW")
    assert_close(px.grad.numpy(), r64 @ w.astype(np.float64), k=n, scale=math.sqrt(n) * 25,
                 what="dx")
    assert pw.grad.numpy().flags.c_contiguous and px.grad.numpy().flags.c_contiguous
    out = _C.mm(x, w.T)
    if m * n >= 4096:  # from the library allocator: aligned for the next GEMM, adoptable
        assert out.ctypes.data % 64 == 0 and _C.sole_owner(out)


@pytest.mark.parametrize("sa,sb", [((2, 7, 5), (2, 5, 9)), ((3, 1, 4, 6), (2, 6, 1)),
                                   ((2, 7, 5), (5, 9)), ((5, 33), (2, 33, 4)),
                                   ((1, 1, 1), (1, 1, 1))])
@pytest.mark.parametrize("ta,tb", [(True, False), (False, True), (True, True)])
def test_matmul_batched_transposed_views(sa, sb, ta, tb, rng, monkeypatch):
    # Batched operands given as .mT views of C-contiguous tensors: the forward reads them in
    # place (no np.ascontiguousarray), and values and gradients match the reference.
    def make(shape, t):
        x = rng.standard_normal(shape).astype(np.float32)
        if not t:
            return x, fastnn.tensor(x), fastnn.tensor(x, requires_grad=True)
        stored = np.ascontiguousarray(np.swapaxes(x, -1, -2))
        p = fastnn.tensor(stored, requires_grad=True).mT
        p.retain_grad()
        return x, fastnn.tensor(stored).mT, p
    a, va, pa = make(sa, ta)
    b, vb, pb = make(sb, tb)
    want = R.matmul(a.astype(np.float64), b.astype(np.float64))
    k = sa[-1]
    real_copy = np.ascontiguousarray

    def refuse(*args, **kw):
        raise RuntimeError("copied")

    # (A partial broadcast of the batch dimensions, (3, 1) against (2,), is a real copy.)
    if len(sa) != 4:
        monkeypatch.setattr(np, "ascontiguousarray", refuse)
    got = va @ vb
    monkeypatch.setattr(np, "ascontiguousarray", real_copy)
    assert_close(got.numpy(), want, k=k, scale=math.sqrt(k) * 25, what="batched views")
    _, _, gk, gscale = matmul_tols(sa, sb)
    y = pa @ pb
    r = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(fastnn.tensor(r))
    da, db = R.matmul_grad(a.astype(np.float64), b.astype(np.float64), r.astype(np.float64))
    assert_close(pa.grad.numpy(), da, k=gk, scale=gscale, what="batched dA")
    assert_close(pb.grad.numpy(), db, k=gk, scale=gscale, what="batched dB")


# ---- bad input -----------------------------------------------------------------------------

def test_linear_bad_input():
    x = fastnn.ones(3, 4)
    msg = expect_error(ValueError, "linear", F.linear, x, fastnn.ones(4, 10))
    assert "in=4" in msg and "(4, 10)" in msg
    expect_error(ValueError, "linear", F.linear, x, fastnn.ones(10, 4), fastnn.ones(3),
                 match="bias")
    expect_error(ValueError, "linear", F.linear, x, fastnn.ones(2, 3, 4))
    expect_error(TypeError, "linear", F.linear, fastnn.tensor([[1, 2]]), fastnn.ones(3, 2))
    expect_error(TypeError, "linear", F.linear, np.ones((3, 4), np.float32), fastnn.ones(2, 4))
    expect_error(ValueError, "linear", F.linear, x, fastnn.ones(2, 4), act="swish")
    expect_error(ValueError, "linear", F.linear, fastnn.tensor(1.0), fastnn.ones(2, 1))
    f = np.ones((3, 4), np.float32)
    w = np.ones((2, 4), np.float32)
    expect_error(ValueError, "linear", _C.linear_fwd, f, w, None, 9, 1.0, 20.0)
    expect_error(ValueError, "linear", _C.linear_fwd, np.ones((4, 3), np.float32).T, w, None,
                 0, 1.0, 20.0, match="contiguous")
    expect_error(TypeError, "linear", _C.linear_fwd, f, np.ones((2, 4)), None, 0, 1.0, 20.0)
    expect_error(ValueError, "linear", _C.linear_fwd, f, w, None, 5, 0.0, 20.0, match="beta")
    dy = np.ones((3, 2), np.float32)
    expect_error(ValueError, "linear", _C.linear_bwd, dy, f, w, None, 1, 1.0, 20.0, True, True,
                 True, match="None")
    expect_error(ValueError, "linear", _C.linear_bwd, np.ones((3, 5), np.float32), f, w, None, 0,
                 1.0, 20.0, True, True, True, match="grad_output")
    expect_error(ValueError, "linear", _C.linear_bwd, dy, f, w, np.ones((2, 2), np.float32), 4,
                 1.0, 20.0, True, True, True)


def test_matmul_bad_input():
    expect_error(ValueError, "matmul", fastnn.matmul, fastnn.ones(3, 4), fastnn.ones(3, 4),
                 match="inner")
    expect_error(ValueError, "matmul", fastnn.matmul, fastnn.ones(3), fastnn.ones(4))
    expect_error(ValueError, "matmul", fastnn.matmul, fastnn.tensor(2.0), fastnn.ones(3))
    expect_error(ValueError, "matmul", fastnn.matmul, fastnn.ones(2, 3, 4), fastnn.ones(3, 4, 5),
                 match="broadcast")
    expect_error(TypeError, "matmul", fastnn.matmul, fastnn.tensor([[1, 2]]), fastnn.ones(2, 2))
    expect_error(TypeError, "matmul", fastnn.matmul, fastnn.ones(2, 2), "x")


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_linear_act_backward_bit_exact(act, rng, isa, threads):
    # The activation backward + bias gradient of relu/sigmoid/tanh runs on SIMD registers
    # (cpu/kernels/act_bwd_<isa>.cpp) or the scalar loop: one IEEE operation at a time in the
    # same order, so db (the column sums of dZ, row by row in float32) is bit-identical to that
    # arithmetic done in NumPy float32, on every path. Columns off the register width, and
    # enough work (64 x 300 x 170) for the threaded backward.
    n, fin, fout = 64, 170, 300
    x = rng.standard_normal((n, fin)).astype(np.float32)
    w = rng.standard_normal((fout, fin)).astype(np.float32)
    dy = rng.standard_normal((n, fout)).astype(np.float32)
    code = ACTS.index(act)
    y, _ = _C.linear_fwd(x, w, None, code, 1.0, 20.0)
    _, _, db = _C.linear_bwd(dy, x, w, y, code, 1.0, 20.0, True, True, True)
    one = np.float32(1)
    if act == "relu":
        dz = np.where(y > 0, dy, np.float32(0))
    elif act == "sigmoid":
        dz = dy * (y * (one - y))
    else:
        dz = dy * (one - y * y)
    ref = np.zeros(fout, np.float32)
    for row in dz:
        ref = ref + row
    np.testing.assert_array_equal(db, ref)


def test_linear_relu_backward_ignores_dy_where_inactive(isa):
    # As torch's threshold_backward (and fastnn's elementwise relu): the gradient is 0 where
    # the output is <= 0 even when the incoming gradient there is NaN or inf.
    x = np.array([[1.0, -1.0], [2.0, -0.5]], np.float32)
    w = np.eye(2, dtype=np.float32)
    y, _ = _C.linear_fwd(x, w, None, 1, 1.0, 20.0)  # [[1, 0], [2, 0]]
    dy = np.array([[1.0, np.nan], [2.0, np.inf]], np.float32)
    dx, dw, db = _C.linear_bwd(dy, x, w, y, 1, 1.0, 20.0, True, True, True)
    np.testing.assert_array_equal(db, [3.0, 0.0])
    np.testing.assert_array_equal(dx, [[1.0, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(dw, [[5.0, -2.0], [0.0, 0.0]])
