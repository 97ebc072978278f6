"""conv2d forward and all gradients against the float64 direct definition (tests/reference.py),
on odd shapes, 1x1 and large kernels, stride, padding, dilation, groups, empty batches."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from fastnn import _C
from harness import assert_close, check_op, expect_error

# (N, C, H, W, OC, kernel, stride, padding, dilation, groups)
SHAPES = [
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),      # odd sizes, 'same' 3x3
    (1, 1, 5, 5, 1, (1, 1), (1, 1), (0, 0), (1, 1), 1),      # 1x1, batch 1: direct GEMM path
    (3, 5, 6, 7, 6, (1, 1), (1, 1), (0, 0), (1, 1), 1),      # 1x1 with channels
    (2, 4, 7, 7, 3, (1, 1), (2, 2), (0, 0), (1, 1), 1),      # 1x1 stride 2: im2col path
    (2, 4, 9, 8, 6, (3, 3), (2, 2), (1, 1), (1, 1), 2),      # stride 2, groups 2
    (2, 6, 8, 8, 6, (3, 3), (1, 1), (1, 1), (1, 1), 6),      # depthwise
    (2, 6, 8, 8, 12, (3, 3), (1, 1), (1, 1), (1, 1), 6),     # depthwise, multiplier 2
    (1, 2, 12, 11, 3, (7, 7), (1, 1), (3, 3), (1, 1), 1),    # large kernel
    (2, 3, 6, 6, 2, (3, 3), (1, 1), (3, 3), (1, 1), 1),      # padding > kernel / 2
    (2, 3, 10, 9, 4, (3, 2), (2, 3), (2, 1), (2, 3), 1),     # rectangular, dilation
    (2, 3, 4, 4, 5, (6, 6), (1, 1), (1, 1), (1, 1), 1),      # kernel == padded input: 1x1 out
    (1, 17, 5, 5, 33, (3, 3), (1, 1), (1, 1), (1, 1), 1),    # channels off the SIMD widths
    (0, 3, 5, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),      # empty batch
]


def _mx(a):
    return float(np.max(np.abs(a))) if a.size else 1.0


def conv_tols(x, w, oh, ow, groups):
    """(k, scale, grad_k, grad_scale): k = the reduction length behind one output (C/groups *
    kh*kw), the gradients' the longest of OC/groups * kh*kw (dx) and N*OH*OW (dw, db); the
    scales bound the magnitude of the summed terms (r ~ N(0, 1), |r| < 5)."""
    k = w.shape[1] * w.shape[2] * w.shape[3]
    scale = math.sqrt(k) * (_mx(x) * _mx(w) + 1.0)
    gk = max(w.shape[0] // groups * w.shape[2] * w.shape[3], x.shape[0] * oh * ow, 1)
    gscale = math.sqrt(gk) * 5 * max(_mx(x), _mx(w), 1.0)
    return k, scale, gk, gscale


def run_conv(rng, shape, bias=True, relu=False):
    n, c, h, w_, oc, k, s, p, d, g = shape
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((oc, c // g) + k) / math.sqrt(c // g * k[0] * k[1])
    b = rng.standard_normal(oc) if bias else None
    oh, ow = R._conv_geom(x, w, s, p, d)
    kk, scale, gk, gscale = conv_tols(x, w, oh, ow, g)
    act = "relu" if relu else "none"
    inputs = [x, w] + ([b] if bias else [])
    if bias:
        fn = lambda X, W, B: F.conv2d(X, W, B, s, p, d, g, act=act)  # noqa: E731
        ref = lambda X, W, B: R.conv2d(X, W, B, s, p, d, g, relu)  # noqa: E731
        ref_grad = lambda X, W, B, r: R.conv2d_grad(X, W, B, r, s, p, d, g, relu)  # noqa: E731
    else:
        fn = lambda X, W: F.conv2d(X, W, None, s, p, d, g, act=act)  # noqa: E731
        ref = lambda X, W: R.conv2d(X, W, None, s, p, d, g, relu)  # noqa: E731
        ref_grad = lambda X, W, r: R.conv2d_grad(X, W, None, r, s, p, d, g, relu)[:2]  # noqa: E731
    # NOTE: c=64 as for the GEMM: float32 dot products of length k, blocked differently from
    # the float64 reference.
    return check_op(fn, ref, inputs, ref_grad=ref_grad, k=kk, scale=scale, grad_k=gk,
                    grad_scale=gscale, c=64, rng=rng)


@pytest.mark.parametrize("shape", SHAPES, ids=[str(i) for i in range(len(SHAPES))])
def test_conv2d(shape, rng):
    run_conv(rng, shape)


@pytest.mark.parametrize("bias,relu", [(False, False), (True, True), (False, True)])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2], SHAPES[4], SHAPES[12]],
                         ids=["3x3", "1x1", "groups", "empty"])
def test_conv2d_bias_relu(shape, bias, relu, rng):
    run_conv(rng, shape, bias=bias, relu=relu)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2], SHAPES[9], SHAPES[11]],
                         ids=["3x3", "1x1", "dilated", "wide"])
def test_conv2d_every_isa(shape, rng, isa):
    run_conv(rng, shape, relu=True)


def test_conv2d_threaded(rng, threads):
    # Large enough (> 2^18 multiply-adds) to spread images over the pool; 5 images on 2
    # threads split unevenly, and the weight-gradient partials are summed across threads.
    # Small images go through the batched-images path (several images per GEMM) ...
    run_conv(rng, (5, 8, 12, 13, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1), relu=True)
    run_conv(rng, (1, 16, 20, 20, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    # ... large ones (K*OH*OW > the 2^17-float col block) through one image at a time in
    # blocks of output rows (24 rows: 18 + 6), groups and stride included.
    run_conv(rng, (3, 32, 24, 24, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1), relu=True)
    run_conv(rng, (2, 64, 26, 23, 6, (3, 3), (1, 1), (2, 1), (1, 1), 2), relu=True)
    run_conv(rng, (2, 16, 40, 40, 4, (1, 1), (1, 1), (0, 0), (1, 1), 1), relu=True)


# Shapes that take Winograd F(4x4, 3x3) in the forward (3x3, stride 1, groups 1, >= 32
# channels in and out, output >= 8x8): odd sizes leave partial tiles at the right and bottom.
WINOGRAD = [
    (2, 32, 9, 11, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 32, 16, 17, 33, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    (2, 48, 13, 10, 32, (3, 3), (1, 1), (2, 2), (1, 1), 1),
    (0, 32, 9, 9, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1),
]


@pytest.mark.parametrize("shape", WINOGRAD, ids=[str(i) for i in range(len(WINOGRAD))])
def test_conv2d_winograd(shape, rng, isa):
    # NOTE: Winograd's transforms (entries up to 8 and 1/24) amplify float32 rounding about
    # 10x over a direct sum; the derived tolerance (c=64, scale sqrt(k)*|x||w|) covers it
    # with room to spare (observed errors ~2e-5 against an atol of ~4e-3).
    assert _C.conv2d_winograd()
    out = run_conv(rng, shape, relu=True)
    if shape[0]:
        n, c, h, w_, oc, k, s, p, d, g = shape
        x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
        w = (rng.standard_normal((oc, c) + k) / math.sqrt(c * 9)).astype(np.float32)
        b = rng.standard_normal(oc).astype(np.float32)
        y_w = _C.conv2d_fwd(x, w, b, 1, 1, p[0], p[1])
        _C.conv2d_set_winograd(False)
        try:
            y_i = _C.conv2d_fwd(x, w, b, 1, 1, p[0], p[1])
        finally:
            _C.conv2d_set_winograd(True)
        ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, p)
        err_w, err_i = np.abs(y_w - ref).max(), np.abs(y_i - ref).max()
        assert err_w < 1e-3 and err_i < 1e-4, (err_w, err_i)
        assert not np.array_equal(y_w, y_i)  # the two algorithms really differ


def test_conv2d_winograd_threaded(rng, threads):
    run_conv(rng, (3, 32, 20, 21, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1), relu=True)


def _grads(x, w, b, dy, p, relu, winograd):
    _C.conv2d_set_winograd(winograd)
    try:
        y = _C.conv2d_fwd(x, w, b, 1, 1, p, p, 1, 1, 1, relu)
        return _C.conv2d_bwd(dy, x, w, y, 1, 1, p, p, 1, 1, 1, relu, True, True, True)
    finally:
        _C.conv2d_set_winograd(True)


# (N, C, OC, H, W, padding): Winograd weight gradient (any padding) and input gradient
# (padding <= 2; padding 3 sends dx to im2col while dw stays Winograd). Odd H/W leave partial
# tiles; 8x8 outputs are the smallest that select Winograd; several tile-row blocks per image
# (60 wide: 15 tiles a row, 5 rows a block) and batch 1.
WINOGRAD_GRAD = [
    (2, 32, 33, 9, 11, 1), (1, 33, 32, 10, 10, 0), (3, 32, 40, 10, 13, 2),
    (2, 32, 32, 6, 7, 3), (1, 32, 32, 30, 60, 1),
]


@pytest.mark.parametrize("shape", WINOGRAD_GRAD, ids=[str(i) for i in range(len(WINOGRAD_GRAD))])
def test_conv2d_winograd_grads(shape, rng, isa, threads):
    """All three gradients of the Winograd paths against the float64 reference, tighter than
    the harness's derived bound, and against the im2col path (they must differ: the Winograd
    path really ran)."""
    n, c, oc, h, w_, p = shape
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = (rng.standard_normal((oc, c, 3, 3)) / math.sqrt(c * 9)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    dy = rng.standard_normal((n, oc, h + 2 * p - 2, w_ + 2 * p - 2)).astype(np.float32)
    for relu in (False, True):
        win = _grads(x, w, b, dy, p, relu, True)
        im2 = _grads(x, w, b, dy, p, relu, False)
        ref = R.conv2d_grad(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                            dy.astype(np.float64), (1, 1), (p, p), (1, 1), 1, relu)
        for name, a, i, r in zip(("dx", "dw", "db"), win, im2, ref):
            # NOTE: relative to the largest reference entry: im2col's float32 sums land near
            # 1e-6, Winograd's transforms (entries up to 8 and 1/24) cost about 10x more;
            # 2e-4 leaves room for that and still fails on any wrong tile or edge.
            rel = np.abs(a - r).max() / np.abs(r).max()
            assert rel < 2e-4, (name, relu, rel)
            assert np.abs(i - r).max() / np.abs(r).max() < 2e-5, (name, relu)
        assert not np.array_equal(win[1], im2[1])  # dw came from the Winograd path
        if p <= 2:
            assert not np.array_equal(win[0], im2[0])  # so did dx
        else:
            assert np.array_equal(win[0], im2[0])  # padding 3: dx from im2col


# Stride-1 shapes of the "wide" im2col layout (shared zero padding between rows and images)
# and its few-tap weight gradient (dots, C/groups*KH*KW <= 32), with the algorithms each must
# select: odd sizes and channel counts, taps and output channels off the dot kernel's 4x2
# blocks, dilation, groups, a rectangular kernel with one-sided padding, blocks of images
# (the last partial), batch 1, and shapes that must fall back (1x1 image, padding > kernel-1).
WIDE = [
    ((5, 1, 28, 28, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1), "fwd=wide dx=wide dw=dots"),
    ((3, 3, 9, 11, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1), "fwd=wide dx=wide dw=dots"),
    ((9, 16, 14, 14, 32, (3, 3), (1, 1), (1, 1), (1, 1), 1), "fwd=wide dx=wide dw=wide"),
    ((1, 5, 7, 7, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1), "fwd=wide dx=wide dw=wide"),
    ((2, 2, 11, 10, 3, (3, 3), (1, 1), (2, 2), (2, 2), 1), "fwd=wide dx=wide dw=dots"),
    ((2, 4, 9, 8, 6, (3, 3), (1, 1), (1, 0), (1, 1), 2), "fwd=wide dx=wide dw=dots"),
    ((3, 2, 6, 9, 4, (1, 3), (1, 1), (0, 1), (1, 1), 1), "fwd=wide dx=wide dw=dots"),
    ((2, 3, 8, 8, 4, (5, 5), (1, 1), (2, 2), (1, 1), 1), "fwd=wide dx=wide dw=wide"),
    ((3, 2, 1, 1, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1), "fwd=im2col dx=im2col dw=im2col"),
    ((2, 3, 6, 6, 2, (3, 3), (1, 1), (3, 3), (1, 1), 1), "fwd=im2col dx=im2col dw=im2col"),
]


@pytest.mark.parametrize("shape,algos", WIDE, ids=[str(i) for i in range(len(WIDE))])
def test_conv2d_wide(shape, algos, rng, isa, threads):
    n, c, h, w_, oc, k, s, p, d, g = shape
    x = np.zeros((n, c, h, w_), np.float32)
    w = np.zeros((oc, c // g) + k, np.float32)
    assert _C.conv2d_algorithms(x, w, *s, *p, *d, g) == algos
    run_conv(rng, shape, relu=True)
    run_conv(rng, shape, bias=False)


def test_conv2d_fd_fastnn(rng):
    """fastnn's gradient vs finite differences of fastnn's own float32 forward."""
    x = fastnn.tensor(rng.standard_normal((2, 2, 5, 6)).astype(np.float32), requires_grad=True)
    w = fastnn.tensor(rng.standard_normal((4, 1, 3, 2)).astype(np.float32), requires_grad=True)
    b = fastnn.tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True)
    # NOTE: float32 central differences with eps=1e-2 are good to ~1e-3 relative; 5e-2 covers
    # the few coordinates whose sum sits near zero.
    assert fastnn.autograd.gradcheck(lambda a, c, d: F.conv2d(a, c, d, 2, 1, 1, 2), [x, w, b],
                                     eps=1e-2, atol=5e-2, rtol=5e-2)


def test_conv2d_unbatched_and_padding_strings(rng):
    x = rng.standard_normal((3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
    y = F.conv2d(fastnn.tensor(x), fastnn.tensor(w), padding="same")
    ref = R.conv2d(x[None].astype(np.float64), w.astype(np.float64), None, (1, 1), (1, 2))[0]
    assert_close(y.numpy(), ref, k=45, scale=45 * 16, c=64)
    y = F.conv2d(fastnn.tensor(x), fastnn.tensor(w), padding="valid")
    assert tuple(y.shape) == (2, 4, 3)


def test_conv2d_only_requested_grads(rng):
    x = fastnn.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = fastnn.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w, None, padding=1).sum().backward()
    assert x.grad is None and w.grad is not None
    x2 = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    dx, dw, db = _C.conv2d_bwd(np.ones((2, 4, 3, 3), np.float32), x2, w.detach().numpy(), None,
                               need_dx=False, need_dw=False, need_db=True)
    assert dx is None and dw is None
    np.testing.assert_array_equal(db, np.full(4, 18.0, np.float32))


def test_conv2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 4, 11, 10)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    r = rng.standard_normal((3, 6, 6, 4)).astype(np.float32)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    fs = [fastnn.tensor(a, requires_grad=True) for a in (x, w, b)]
    ty = torch.relu(torch.nn.functional.conv2d(*ts, stride=(2, 3), padding=2, dilation=(2, 1),
                                               groups=2))
    fy = F.conv2d(*fs, stride=(2, 3), padding=2, dilation=(2, 1), groups=2, act="relu")
    ty.backward(torch.tensor(r))
    fy.backward(fastnn.tensor(r))
    scale = math.sqrt(18) * 4 * 4 * 2
    assert_close(fy.detach().numpy(), ty.detach().numpy(), k=18, scale=scale, c=64, what="y")
    for f, t in zip(fs, ts):
        assert_close(f.grad.numpy(), t.grad.numpy(), k=72, scale=scale * 2, c=64, what="grad")


def test_conv2d_bad_input(rng):
    x = fastnn.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = fastnn.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    expect_error(ValueError, "conv2d", F.conv2d, x, fastnn.tensor(np.ones((4, 1, 3, 3), np.float32)),
                 groups=2, match="divisible by groups")
    expect_error(ValueError, "conv2d", F.conv2d, x,
                 fastnn.tensor(np.ones((3, 2, 3, 3), np.float32)), groups=3, match="weight")
    expect_error(ValueError, "conv2d", F.conv2d, x,
                 fastnn.tensor(np.ones((4, 3, 8, 8), np.float32)), match="larger than the padded")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, dilation=3, match="larger than the padded")
    expect_error(ValueError, "conv2d", F.conv2d, fastnn.tensor(np.ones((3, 5), np.float32)), w,
                 match="4-D")
    expect_error(ValueError, "conv2d", F.conv2d, x, fastnn.tensor(np.ones((4, 3, 3), np.float32)),
                 match="weight")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, fastnn.tensor(np.ones(3, np.float32)),
                 match="bias")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, stride=0, match="stride")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, padding=-1, match="padding")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, groups=0, match="groups")
    expect_error(ValueError, "conv2d", F.conv2d, x, w, padding="full", match="padding")
    expect_error(TypeError, "conv2d", F.conv2d, x, w.numpy(), match="weight")
    expect_error(TypeError, "conv2d", F.conv2d, fastnn.tensor(np.ones((1, 3, 5, 5), np.int64)), w)
    # The _C level checks on its own (dtype, contiguity, negative values, grad shapes).
    xn = x.numpy()
    expect_error(TypeError, "conv2d", _C.conv2d_fwd, xn.astype(np.float64), w.numpy(), None)
    expect_error(ValueError, "conv2d", _C.conv2d_fwd, xn[:, :, :, ::2], w.numpy(), None,
                 match="contiguous")
    expect_error(ValueError, "conv2d", _C.conv2d_fwd, xn, w.numpy(), None, 1, 1, -1, 0,
                 match="padding")
    expect_error(ValueError, "conv2d", _C.conv2d_bwd, np.ones((2, 4, 2, 3), np.float32), xn,
                 w.numpy(), None, match="grad_output")
    expect_error(ValueError, "conv2d", _C.conv2d_bwd, np.ones((2, 4, 3, 3), np.float32), xn,
                 w.numpy(), None, relu=True, match="output")


# ---- modules ------------------------------------------------------------------------------

def test_conv2d_module_defaults_and_init():
    m = fastnn.nn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert tuple(m.weight.shape) == (6, 2, 3, 3) and tuple(m.bias.shape) == (6,)
    assert m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (1, 1)
    assert m.dilation == (1, 1) and m.groups == 2
    # PyTorch: kaiming-uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias
    # from the same bound; fan_in = in/groups * kh * kw = 18.
    bound = 1 / math.sqrt(18)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.8 * bound  # drawn over the whole range, not a tiny one
    assert repr(m) == "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2)"
    m2 = fastnn.nn.Conv2d(1, 2, (3, 5), stride=2, bias=False)
    assert m2.bias is None and [n for n, _ in m2.named_parameters()] == ["weight"]
    y = m2(fastnn.randn(2, 1, 9, 9))
    assert tuple(y.shape) == (2, 2, 4, 3)
    expect_error(ValueError, "Conv2d", fastnn.nn.Conv2d, 3, 4, 3, groups=2, match="divisible")
    expect_error(ValueError, "Conv2d", fastnn.nn.Conv2d, 2, 4, 3, padding_mode="reflect")
    expect_error(ValueError, "Conv2d", fastnn.nn.Conv2d, 2, 4, 0, match="kernel_size")


def test_cnn_loads_pytorch_weights(rng):
    torch = pytest.importorskip("torch")
    tnn, fnn = torch.nn, fastnn.nn

    def net(nn):
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 6, 3, stride=2, padding=2, dilation=2, groups=2),
                             nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(),
                             nn.Linear(6 * 2 * 2, 5))
    torch.manual_seed(0)
    tm, fm = net(tnn), net(fnn)
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((3, 3, 13, 13)).astype(np.float32)
    fx, tx = fastnn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fy, ty = fm(fx), tm(tx)
    assert_close(fy.detach().numpy(), ty.detach().numpy(), k=72, scale=20, c=64, what="y")
    fy.sum().backward()
    ty.sum().backward()
    assert_close(fx.grad.numpy(), tx.grad.numpy(), k=72, scale=20, c=64, what="dx")
    fp, tp = dict(fm.named_parameters()), dict(tm.named_parameters())
    for name in tp:
        assert_close(fp[name].grad.numpy(), tp[name].grad.numpy(), k=3 * 13 * 13, scale=20,
                     c=64, what=name)
