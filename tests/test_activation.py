"""ReLU, sigmoid, tanh, GELU, softplus: forward and backward against tests/reference.py."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from harness import BATCHES, FEATURES, assert_close, check_op, expect_error

ACTS = {
    "relu": (F.relu, R.relu, R.relu_grad),
    "sigmoid": (F.sigmoid, R.sigmoid, R.sigmoid_grad),
    "tanh": (F.tanh, R.tanh, R.tanh_grad),
    "gelu": (F.gelu, R.gelu, R.gelu_grad),
    "softplus": (F.softplus, R.softplus, R.softplus_grad),
}


@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("f", FEATURES)
def test_forward_backward(name, n, f, rng, isa):
    fn, ref, ref_grad = ACTS[name]
    x = rng.standard_normal((n, f)) * 3
    # NOTE: exp/erf/tanh in float32 are accurate to a few ulp; c=64 allows 4 ulp of the
    # result plus the derivative's own rounding.
    check_op(fn, ref, [x], ref_grad=lambda x, g: ref_grad(x, g), c=64, rng=rng)


def _wide_inputs(rng):
    """float32 inputs over the ranges that matter: around 0 (tanh's series/exp switch at
    0.5), the bulk, far out (saturation, subnormal results of sigmoid and softplus), tiny."""
    parts = [rng.uniform(-1, 1, 20000), rng.uniform(-12, 12, 20000),
             rng.uniform(-110, 110, 10000), np.linspace(-0.6, 0.6, 4001),
             10.0 ** rng.uniform(-30, 1.6, 10000) * rng.choice([-1, 1], 10000)]
    return np.concatenate(parts).astype(np.float32)


def _ulps(got, ref):
    """|got - ref| in units of the float32 spacing at ref (the subnormal spacing near 0)."""
    ref32 = np.abs(ref).astype(np.float32)
    sp = np.maximum(np.spacing(ref32), np.spacing(np.float32(0))).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / sp


# The branch-free float32 math (csrc/cpu/fastmath.h) against float64 references: a few ulp
# everywhere, including subnormal results, on every ISA.
ULP_CASES = {
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), 3),
    "tanh": (lambda t: t.tanh(), np.tanh, 3),
    "softplus": (F.softplus, lambda x: np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))), 3),
    "softplus beta=2": (lambda t: F.softplus(t, beta=2.0),
                        lambda x: np.where(2 * x > 20, x, np.log1p(np.exp(np.minimum(2 * x, 20))) / 2), 3),
    "exp": (lambda t: t.exp(), np.exp, 2),
    # x Phi(x) with Phi from erfc in the lower tail: relative accuracy kept where libm's
    # 1 + erf(x / sqrt(2)) cancels (subnormal results, below x = -13, are checked apart).
    # 7 ulp: over every float in [-13, -1] the most was 6.2 (at -7.779716, which the test
    # adds, with 100k inputs from [-13, 6], to its usual ones); see normal_cdf_f32.
    "gelu": (F.gelu, lambda x: 0.5 * x * np.array([math.erfc(-v / math.sqrt(2)) for v in x]), 7),
}


@pytest.mark.parametrize("name", list(ULP_CASES))
def test_accuracy_in_ulps(name, rng, isa):
    fn, ref, max_ulps = ULP_CASES[name]
    x = _wide_inputs(rng)
    if name == "exp":
        x = x[x < 88.5]  # (exp overflows past 88.72; checked in test_extremes_are_stable)
    if name == "gelu":
        x = np.concatenate([x, rng.uniform(-13, 6, 100000).astype(np.float32),
                            np.float32([-7.779716, -7.779716])])
        tail = x[x < -13]
        got = fn(fastnn.tensor(tail)).numpy().astype(np.float64)
        want = ref(tail.astype(np.float64))
        assert np.all(np.abs(got - want) <= 16 * np.spacing(np.float32(0))), "gelu far tail"
        x = x[x >= -13]
    with np.errstate(over="ignore"):
        want = ref(x.astype(np.float64))
    got = fn(fastnn.tensor(x)).numpy()
    err = _ulps(got, want)
    i = int(np.argmax(err))
    assert err[i] <= max_ulps, f"{name}: {err[i]:.2f} ulp at x={x[i]!r}: got {got[i]!r}, want {want[i]!r}"


@pytest.mark.parametrize("name", list(ACTS))
def test_same_bits_on_every_fma_isa(name, rng):
    # The activation loops are compiled once per ISA from one source (kernels/act_fwd_impl.h)
    # with explicit FMAs and no other contraction: forward and backward give the same bits on
    # AVX2 and AVX-512. (The generic path rounds each multiply and add apart; it is held to
    # the same ulp bounds by test_accuracy_in_ulps.)
    fn = ACTS[name][0]
    isas = [i for i in fastnn._C.supported_isas() if i != "generic"]
    if len(isas) < 2:
        pytest.skip(f"one FMA kernel path on this CPU ({isas}): nothing to compare")
    # NaNs of both signs and infinities too, in the SIMD body and in the scalar tail (the
    # last 67 % 16 and % 8 elements), compared as bit patterns: NaN's sign included.
    sp = np.float32([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0])
    x = np.concatenate([_wide_inputs(rng), np.resize(sp, 64), rng.permutation(np.resize(sp, 67))])
    g = rng.standard_normal(x.shape).astype(np.float32)
    outs = []
    prev = fastnn._C.get_isa()
    try:
        for isa in isas:
            fastnn._C.set_isa(isa)
            t = fastnn.tensor(x, requires_grad=True)
            y = fn(t)
            y.backward(fastnn.tensor(g))
            outs.append((isa, y.detach().numpy(), t.grad.numpy()))
    finally:
        fastnn._C.set_isa(prev)
    for isa, y, dx in outs[1:]:
        np.testing.assert_array_equal(y.view(np.uint32), outs[0][1].view(np.uint32),
                                      err_msg=f"{name} forward, {isa} vs {outs[0][0]}")
        np.testing.assert_array_equal(dx.view(np.uint32), outs[0][2].view(np.uint32),
                                      err_msg=f"{name} backward, {isa} vs {outs[0][0]}")


@pytest.mark.parametrize("n", [1, 7, 19, 67])  # in the SIMD body and in the scalar tail
def test_special_values(n, isa):
    # Infinities, NaN, signed zeros and subnormals, as IEEE (and PyTorch) give them.
    sp = np.array([-np.inf, np.inf, np.nan, -0.0, 0.0, 1e-40, -1e-40, -104.5, 89.0],
                  np.float32)
    x = np.resize(sp, n)
    with np.errstate(over="ignore"):
        for f, ref in ((lambda t: t.exp(), np.exp), (lambda t: t.tanh(), np.tanh),
                       (lambda t: t.sigmoid(), lambda v: 1 / (1 + np.exp(-v)))):
            got = f(fastnn.tensor(x)).numpy()
            want = ref(x.astype(np.float64)).astype(np.float32)
            np.testing.assert_array_equal(got, want)  # (NaN matches NaN)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("n", [11, 67])  # in the SIMD body and in the scalar tail
def test_gelu_and_softplus_special_values(n, isa):
    # PyTorch's: gelu(-inf) = -inf * 0 and gelu'(+-inf) are NaN, gelu(inf) = inf; softplus'
    # is 1 above the threshold (inf included) and sigmoid(-inf) = 0 below; NaN stays NaN. The
    # finite values, tiny and far out included, as the float64 reference.
    sp = np.array([-np.inf, np.inf, np.nan, -0.0, 0.0, 1e-40, -1e-40, -104.5, 89.0, -13.0,
                   -20.0, 20.0, 20.5], np.float32)
    x = np.resize(sp, n)
    fin = np.isfinite(x)
    with np.errstate(invalid="ignore", over="ignore"):
        for name, want_nan_y, want_nan_g in (
                ("gelu", np.isnan(x) | (x == -np.inf), ~fin),
                ("softplus", np.isnan(x), np.isnan(x))):
            fn, ref, ref_grad = ACTS[name]
            t = fastnn.tensor(x, requires_grad=True)
            y = fn(t)
            y.backward(fastnn.ones(n))
            yv, gv = y.detach().numpy(), t.grad.numpy()
            np.testing.assert_array_equal(np.isnan(yv), want_nan_y, err_msg=name)
            np.testing.assert_array_equal(np.isnan(gv), want_nan_g, err_msg=name)
            assert (yv[x == np.inf] == np.inf).all(), name
            xf = x[fin].astype(np.float64)
            assert_close(yv[fin], ref(xf), c=64, what=name)
            assert_close(gv[fin], ref_grad(xf, np.ones_like(xf))[0], c=64, what=name)
            if name == "softplus":
                np.testing.assert_array_equal(gv[np.isinf(x)], (x[np.isinf(x)] > 0) * 1.0)


@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 1.0)])
def test_softplus_beta_threshold(beta, threshold, rng):
    x = rng.standard_normal(257) * 8
    check_op(lambda t: F.softplus(t, beta=beta, threshold=threshold),
             lambda a: R.softplus(a, beta, threshold),
             [x], ref_grad=lambda a, g: R.softplus_grad(a, g, beta, threshold), c=64, rng=rng)


@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 5), (4, 0, 3)])
def test_any_shape(shape, rng):
    x = rng.standard_normal(shape)
    check_op(F.tanh, R.tanh, [x], ref_grad=R.tanh_grad, c=64, rng=rng)


@pytest.mark.parametrize("n", [4, 37])  # in the SIMD body and in the scalar tail
def test_relu_grad_at_nan_passes_as_pytorch(n, rng, isa):
    # PyTorch's threshold_backward: 0 where the output is <= 0, else the gradient, so a NaN
    # output passes it. Through relu itself, a fused Linear + ReLU layer and a ReLU RNN.
    x = np.resize(np.array([np.nan, 1.0, -1.0, 0.0, -0.0], np.float32), n)
    t = fastnn.tensor(x, requires_grad=True)
    g = rng.standard_normal(n).astype(np.float32)
    F.relu(t).backward(fastnn.tensor(g))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(np.isnan(x) | (x > 0), g, 0.0))
    lin = fastnn.nn.Linear(3, n)
    with fastnn.no_grad():
        lin.bias[0] = float("nan")  # column 0 of the output is NaN
    net = fastnn.nn.Sequential(lin, fastnn.nn.ReLU())
    xb = fastnn.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    y = net(xb)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(fastnn.tensor(gy))
    pre = xb.numpy() @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    want_db = np.where(np.isnan(pre) | (pre > 0), gy, 0.0).sum(0)
    assert_close(lin.bias.grad.numpy(), want_db, c=64, what="fused linear+relu bias grad")
    assert np.isfinite(lin.bias.grad.numpy()[0])
    # Conv2d + ReLU (one fused call in Sequential) with a NaN bias on channel 0.
    conv = fastnn.nn.Conv2d(2, 3, 3, padding=1)
    with fastnn.no_grad():
        conv.bias[0] = float("nan")
    xc = fastnn.tensor(rng.standard_normal((2, 2, 5, 5)).astype(np.float32))
    yc = fastnn.nn.Sequential(conv, fastnn.nn.ReLU())(xc)
    gc = rng.standard_normal(yc.shape).astype(np.float32)
    yc.backward(fastnn.tensor(gc))
    yv = yc.detach().numpy()
    want_cb = np.where(np.isnan(yv) | (yv > 0), gc, 0.0).sum((0, 2, 3))
    assert_close(conv.bias.grad.numpy(), want_cb, c=64, what="fused conv+relu bias grad")
    assert np.isfinite(conv.bias.grad.numpy()[0])
    # A ReLU RNN whose hidden unit 0 is NaN from the first step on (a NaN bias), one step:
    # the gradient of b_ih is the output gradient where h > 0 or h is NaN.
    rnn = fastnn.nn.RNN(3, 4, nonlinearity="relu")
    with fastnn.no_grad():
        rnn.bias_ih_l0[0] = float("nan")
    xr = fastnn.tensor(rng.standard_normal((1, 2, 3)).astype(np.float32))
    out, _ = rnn(xr)
    gr = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(fastnn.tensor(gr))
    ov = out.detach().numpy()[0]
    want_rb = np.where(np.isnan(ov) | (ov > 0), gr[0], 0.0).sum(0)
    assert_close(rnn.bias_ih_l0.grad.numpy(), want_rb, c=64, what="relu rnn bias grad")
    assert np.isfinite(rnn.bias_ih_l0.grad.numpy()[0])


def test_relu_grad_at_zero_is_zero():
    x = fastnn.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "tanh", "gelu", "relu"])
def test_extremes_are_stable(name, isa):
    fn, ref, ref_grad = ACTS[name]
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], np.float32)
    t = fastnn.tensor(x, requires_grad=True)
    y = fn(t)
    assert np.isfinite(y.detach().numpy()).all()
    assert_close(y.detach().numpy(), ref(x.astype(np.float64)), c=64, what=name)
    y.backward(fastnn.ones(7))
    assert np.isfinite(t.grad.numpy()).all()
    assert_close(t.grad.numpy(), ref_grad(x.astype(np.float64), np.ones(7))[0], c=64, what=name)


@pytest.mark.parametrize("name", list(ACTS))
def test_nan_propagates(name):
    fn = ACTS[name][0]
    y = fn(fastnn.tensor([np.nan, 1.0])).numpy()
    assert np.isnan(y[0]) and not np.isnan(y[1])
    if name != "relu":  # (the smooth ones: a NaN input's gradient is NaN, as in PyTorch)
        t = fastnn.tensor([np.nan, 1.0], requires_grad=True)
        fn(t).sum().backward()
        g = t.grad.numpy()
        assert np.isnan(g[0]) and not np.isnan(g[1])


def test_large_input_uses_threads(threads, rng):
    x = rng.standard_normal(300_001)
    check_op(F.sigmoid, R.sigmoid, [x], ref_grad=R.sigmoid_grad, c=64, rng=rng)


def test_bad_input():
    expect_error(TypeError, "relu", F.relu, fastnn.tensor([1, 2, 3]))
    expect_error(TypeError, "relu", F.relu, np.ones(3, np.float32))
    expect_error(ValueError, "softplus", F.softplus, fastnn.ones(3), beta=0)
    from fastnn import _C
    expect_error(TypeError, "sigmoid", _C.activation_fwd, np.ones(3), 2)
    expect_error(ValueError, "tanh", _C.activation_fwd, np.ones((3, 4), np.float32).T, 3)
    expect_error(ValueError, "gelu", _C.activation_bwd, np.ones(3, np.float32), None,
                 np.ones(3, np.float32), 4)
    expect_error(ValueError, "relu", _C.activation_bwd, np.ones(3, np.float32), None,
                 np.ones(4, np.float32), 1)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (1000,), (7, 33), (2, 3, 17), (300_001,)])
def test_relu_fast_call(shape, rng, threads):
    # _C.relu: the METH_FASTCALL entry F.relu uses for a plain float32 array; the same values
    # as the elementwise definition (NaN passes, -0 stays -0), on any shape, threaded when large.
    from fastnn import _C
    x = rng.standard_normal(shape).astype(np.float32)
    if x.size >= 3:
        x.reshape(-1)[:3] = [np.nan, -0.0, 0.0]
    y = _C.relu(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.where(x < 0, np.float32(0), x))
    assert np.array_equal(np.signbit(y), np.signbit(np.where(x < 0, np.float32(0), x)))


def test_relu_fast_call_bad_input():
    from fastnn import _C
    expect_error(TypeError, "relu", _C.relu, np.ones(3))                        # float64
    expect_error(ValueError, "relu", _C.relu, np.ones((4, 4), np.float32)[:, ::2])  # strided
    expect_error(TypeError, "relu", _C.relu, [1.0, 2.0])
    expect_error(TypeError, "relu", _C.relu)
    expect_error(TypeError, "relu", _C.relu, np.ones(3, np.float32), 2)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (1000,), (7, 33), (2, 3, 17)])
def test_relu_tensor_route(shape, rng, isa):
    # fastnn.relu and Tensor.relu are _C.tensor_relu: a plain float32 tensor with nothing to
    # record goes straight to _C.relu's kernel in C; everything else to the Python route. Both
    # give the same tensors.
    import sys
    x = rng.standard_normal(shape).astype(np.float32)
    if x.size >= 3:
        x.reshape(-1)[:3] = [np.nan, -0.0, 0.0]
    want = np.where(x < 0, np.float32(0), x)
    t = fastnn.tensor(x)
    before = sys.getrefcount(t._data)
    for y in (fastnn.relu(t), t.relu(), F.relu(t), fastnn.relu(x=t)):
        assert type(y) is fastnn.Tensor and y.dtype is fastnn.float32
        assert not y.requires_grad and y.grad_fn is None and tuple(y.shape) == shape
        np.testing.assert_array_equal(y.numpy(), want)
        assert np.array_equal(np.signbit(y.numpy()), np.signbit(want))
    after = sys.getrefcount(t._data)
    assert after == before and t._version == 0
    # Requires grad: recorded with grad mode on, not under no_grad.
    p = fastnn.nn.Parameter(fastnn.tensor(x))
    with fastnn.no_grad():
        y = p.relu()
    assert type(y) is fastnn.Tensor and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), want)
    y = fastnn.relu(p)
    assert y.requires_grad and y.grad_fn is not None
    r = rng.standard_normal(shape).astype(np.float32)
    y.backward(fastnn.tensor(r))
    # (0 where the output is <= 0, else r: the NaN passes it, as PyTorch's threshold_backward)
    np.testing.assert_array_equal(p.grad.numpy(), np.where(x <= 0, np.float32(0), r))


def test_relu_tensor_route_general_cases(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    got = fastnn.tensor(x).T.relu()  # a strided view
    np.testing.assert_array_equal(got.numpy(), np.maximum(x.T, 0))
    expect_error(TypeError, "relu", fastnn.relu, fastnn.tensor([1, 2, 3]))
    expect_error(TypeError, "relu", fastnn.relu, x)
    with pytest.raises(TypeError):
        fastnn.relu()
    with pytest.raises(TypeError):
        fastnn.relu(fastnn.ones(2), fastnn.ones(2))
