"""The CUDA backend's kernels on a real GPU (issue 6, item 4): every op of the CUDA contract
through the common harness on device "cuda", against the NumPy float64 reference and against
fastnn's CPU backend on the same inputs (tests/cuda_harness.py).

Without a GPU (or without the compiled fastnn._C_cuda) every test here is SKIPPED, with the
reason fastnn.cuda reports. The Python device model is tested without a GPU in
tests/test_device.py (fake backend). FASTNN_TEST_CUDA_FAKE=1 runs this file on that fake to
check the tests' own logic; it verifies nothing about the CUDA kernels.
"""
import importlib
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
import reference as R
from cuda_harness import FAKE, check_cuda_op, cuda_device  # noqa: F401 - the fixture
from harness import BATCHES, EPS32, FEATURES, assert_close
from test_dense import linear_tols
from test_elementwise import BINARY, SHAPES, _broadcast_k, _operands

pytestmark = pytest.mark.usefixtures("cuda_device")

ACTS = {"relu": (F.relu, R.relu, R.relu_grad), "sigmoid": (F.sigmoid, R.sigmoid, R.sigmoid_grad),
        "tanh": (F.tanh, R.tanh, R.tanh_grad), "gelu": (F.gelu, R.gelu, R.gelu_grad),
        "softplus": (F.softplus, R.softplus, R.softplus_grad)}


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("f", FEATURES)
def test_activation(name, n, f, rng):
    fn, ref, ref_grad = ACTS[name]
    x = rng.standard_normal((n, f)) * 3
    if name == "relu":  # away from the kink (see test_activation)
        x = np.where(np.abs(x) < 1e-3, 1.0, x)
    # NOTE: c=64 as the CPU activation tests: exp/erf/tanh add a few ulp of their own.
    check_cuda_op(fn, ref, [x], ref_grad=ref_grad, c=64, rng=rng)


LINEAR_SHAPES = [(0, 5, 3), (1, 1, 1), (3, 17, 5), (17, 33, 16), (64, 8, 10), (129, 257, 65)]


@pytest.mark.parametrize("act", ["none", "relu", "sigmoid", "tanh", "gelu", "softplus"])
@pytest.mark.parametrize("n,fin,fout", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(act, n, fin, fout, bias, rng):
    while True:
        x, w = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin))
        b = rng.standard_normal(fout) if bias else None
        z = x @ w.T + (b if bias else 0.0)
        if act != "relu" or z.size == 0 or np.min(np.abs(z)) > 1e-3:
            break
    k, scale, gk, gscale = linear_tols(x, w, b)
    inputs = [x, w] + ([b] if bias else [])

    def ref_grad(*a):
        g = R.linear_grad(a[0], a[1], a[2] if bias else None, a[-1], act)
        return g if bias else g[:2]
    check_cuda_op(lambda *t: F.linear(t[0], t[1], t[2] if bias else None, act=act),
                  lambda *a: R.linear(a[0], a[1], a[2] if bias else None, act), inputs,
                  ref_grad=ref_grad, k=k, scale=scale, grad_k=gk, grad_scale=gscale, c=64,
                  rng=rng)


MATMUL_SHAPES = [((3, 5), (5, 4)), ((5,), (5, 4)), ((3, 5), (5,)), ((7,), (7,)),
                 ((2, 3, 5), (5, 4)), ((2, 1, 3, 5), (3, 5, 4)), ((0, 5), (5, 4)),
                 ((1, 1), (1, 1)), ((65, 129), (129, 33)), ((4, 3, 17), (4, 17, 9)),
                 ((256, 384), (384, 320))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul(sa, sb, rng):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    k = sa[-1]
    # NOTE: a k-term dot product of standard normals: terms of size ~1, sums of size sqrt(k);
    # gradients sum over the other operand's free dim (and any broadcast batch).
    gk = max(int(np.prod(np.broadcast_shapes(sa[:-2], sb[:-2]) or (1,))) *
             max(sa[-2] if len(sa) > 1 else 1, sb[-1] if len(sb) > 1 else 1), 1)
    check_cuda_op(fastnn.matmul, R.matmul, [a, b], ref_grad=R.matmul_grad, k=k,
                  scale=4 * math.sqrt(k), grad_k=gk, grad_scale=4 * math.sqrt(gk) * 5, rng=rng)


@pytest.mark.parametrize("precision,u", [("highest", EPS32 / 2), ("high", 2.0 ** -11),
                                         ("medium", 2.0 ** -8)])
def test_matmul_precision_modes(precision, u, rng):
    """fp32, TF32 (10 explicit mantissa bits) and BF16 (7) GEMMs with fp32 accumulation.

    NOTE (tolerance): rounding each input to the mode's unit roundoff u (2u if the hardware
    truncates) perturbs output (i, j) by sum_l (da_il b_lj + a_il db_lj), random in sign, of
    standard deviation about u * sqrt(2 * sum_l a_il^2 b_lj^2); 16x that (8 sigma for
    truncation) plus the float32 accumulation bound bounds the error, element by element."""
    a, b = rng.standard_normal((129, 200)), rng.standard_normal((200, 67))
    prev = fastnn.cuda.get_matmul_precision()
    fastnn.cuda.set_matmul_precision(precision)
    try:
        assert fastnn.cuda.get_matmul_precision() == precision
        got = (fastnn.tensor(a, device="cuda") @ fastnn.tensor(b, device="cuda")).cpu().numpy()
    finally:
        fastnn.cuda.set_matmul_precision(prev)
    a32, b32 = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    want = a32 @ b32
    spread = np.sqrt((a32 ** 2) @ (b32 ** 2))
    bound = 16 * u * math.sqrt(2) * spread + 16 * EPS32 * math.sqrt(200) * spread
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), (f"{precision}: worst error {err.max():.3g}, bound there "
                                  f"{bound.flat[np.argmax(err - bound)]:.3g}")


SOFTMAX_CASES = [((17, 33), 1), ((17, 33), 0), ((3, 1, 5), 2), ((3, 1, 5), 1), ((0, 7), 1),
                 ((1, 1000), 1), ((5,), 0), ((64, 10), -1)]


@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
def test_softmax(kind, shape, dim, rng):
    fn, ref, ref_grad = {"softmax": (F.softmax, R.softmax, R.softmax_grad),
                         "log_softmax": (F.log_softmax, R.log_softmax, R.log_softmax_grad)}[kind]
    x = rng.standard_normal(shape) * 4
    k = shape[dim]
    mag = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
    check_cuda_op(lambda t: fn(t, dim), lambda a: ref(a, dim), [x],
                  ref_grad=lambda a, g: ref_grad(a, dim, g), k=k,
                  scale=mag if kind == "log_softmax" else 1.0, grad_scale=mag * 4, c=64, rng=rng)


@pytest.mark.parametrize("shape,dim,keepdim", [((17, 33), 1, False), ((17, 33), 0, True),
                                               ((3, 1, 5), None, False), ((1000,), 0, False)])
def test_argmax(shape, dim, keepdim, rng):
    x = rng.standard_normal(shape)
    check_cuda_op(lambda t: fastnn.argmax(t, dim, keepdim), lambda a: R.argmax(a, dim, keepdim),
                  [x], rng=rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,classes", [(0, 3), (1, 1), (3, 10), (64, 17), (33, 1000), (5, 4096),
                                       (4, 5003)])
def test_cross_entropy(reduction, n, classes, rng):
    x = rng.standard_normal((n, classes)) * 3
    t = rng.integers(0, classes, n)
    if n > 2:
        t[1] = -100  # ignored
    mag = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
    check_cuda_op(lambda a, b: F.cross_entropy(a, b, reduction=reduction),
                  lambda a, b: R.cross_entropy(a, b, reduction),
                  [x, t], ref_grad=lambda a, b, g: R.cross_entropy_grad(a, b, g, reduction),
                  k=classes, scale=mag * (max(n, 1) if reduction == "sum" else 1),
                  grad_k=classes, grad_scale=1.0, c=64, rng=rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(0, 3), (1,), (17, 33), (3, 1, 5)])
def test_mse(reduction, shape, rng):
    x, y = rng.standard_normal(shape), rng.standard_normal(shape)
    n = max(int(np.prod(shape)), 1)
    check_cuda_op(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                  lambda a, b: R.mse_loss(a, b, reduction), [x, y],
                  ref_grad=lambda a, b, g: R.mse_loss_grad(a, b, g, reduction),
                  k=n if reduction != "none" else 1, scale=16.0, grad_scale=8.0, rng=rng)


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary(name, sa, sb, rng):
    fn, ref, ref_grad = BINARY[name]
    a, b = _operands(name, sa, sb, rng)
    # NOTE: as test_elementwise: pow adds exp/log rounding (c=64).
    check_cuda_op(fn, ref, [a, b], ref_grad=ref_grad, c=64 if name == "pow" else 16,
                  grad_k=_broadcast_k(sa, sb), grad_scale=4.0, rng=rng)


UNARY = {"neg": (lambda t: -t, R.neg, R.neg_grad), "abs": (abs, R.absolute, R.absolute_grad),
         "exp": (fastnn.exp, R.exp, R.exp_grad), "log": (fastnn.log, R.log, R.log_grad),
         "sqrt": (fastnn.sqrt, R.sqrt, R.sqrt_grad)}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(), (0,), (1,), (17, 33), (70001,)])
def test_unary(name, shape, rng):
    fn, ref, ref_grad = UNARY[name]
    x = rng.standard_normal(shape)
    if name in ("log", "sqrt"):
        x = np.abs(x) + 0.5
    if name == "abs":
        x = np.where(np.abs(x) < 1e-3, 1.0, x)
    check_cuda_op(fn, ref, [x], ref_grad=ref_grad, c=64, rng=rng)


REDUCE_DIMS = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("dim", REDUCE_DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("shape", [(4, 33, 17), (1, 1, 1), (0, 3, 5)])
def test_sum_mean(dim, keepdim, shape, rng):
    x = rng.standard_normal(shape)
    dims = range(3) if dim is None else ([dim] if isinstance(dim, int) else dim)
    k = max(int(np.prod([shape[d] for d in dims])), 1)
    check_cuda_op(lambda t: t.sum(dim, keepdim=keepdim), lambda a: R.reduce_sum(a, dim, keepdim),
                  [x], ref_grad=lambda a, g: R.reduce_sum_grad(a, g, dim, keepdim), k=k,
                  scale=3.0, rng=rng)
    if x.size:  # the mean of nothing is NaN on both sides, and not differentiable
        check_cuda_op(lambda t: t.mean(dim, keepdim=keepdim),
                      lambda a: R.reduce_mean(a, dim, keepdim), [x],
                      ref_grad=lambda a, g: R.reduce_mean_grad(a, g, dim, keepdim), k=k,
                      scale=3.0, rng=rng)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), (-1, False)])
def test_max_min(is_max, dim, keepdim, rng):
    x = rng.standard_normal((17, 33))
    if dim is None:
        check_cuda_op(lambda t: t.max() if is_max else t.min(),
                      R.max_all if is_max else R.min_all, [x],
                      ref_grad=R.max_all_grad if is_max else R.min_all_grad, rng=rng)
        return
    ref = R.max_dim if is_max else R.min_dim
    f = (lambda t: t.max(dim, keepdim)) if is_max else (lambda t: t.min(dim, keepdim))
    check_cuda_op(lambda t: f(t).values, lambda a: ref(a, dim, keepdim)[0], [x],
                  ref_grad=lambda a, g: R.extreme_dim_grad(a, g, dim, keepdim, is_max), rng=rng)
    check_cuda_op(lambda t: f(t).indices, lambda a: ref(a, dim, keepdim)[1], [x], rng=rng)


@pytest.mark.parametrize("make_opt", [
    lambda ps: fastnn.optim.SGD(ps, lr=0.1),
    lambda ps: fastnn.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    lambda ps: fastnn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, maximize=True),
    lambda ps: fastnn.optim.Adam(ps, lr=0.01),
    lambda ps: fastnn.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
], ids=["sgd", "sgd_momentum", "sgd_nesterov", "adam", "adam_wd"])
def test_optimizer_steps(make_opt, rng):
    """Four updates of parameters of awkward sizes on the device against the CPU backend
    (each update is a few elementwise float32 operations per element: c=64, k=1)."""
    shapes = [(1,), (17,), (33, 5), (0,), (1000, 3)]
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]
    final = {}
    for dev in ("cpu", "cuda"):
        ps = [nn.Parameter(fastnn.tensor(a, device=dev)) for a in init]
        opt = make_opt(ps)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = fastnn.tensor(g, device=dev)
            opt.step()
        assert all(p.device == fastnn.device(dev if dev == "cpu" else "cuda:0") for p in ps)
        final[dev] = [p.detach().cpu().numpy() for p in ps]
    for a, b in zip(final["cuda"], final["cpu"]):
        assert_close(a, b, scale=4.0, c=64, what="parameter after 4 steps")


def test_mlp_training_matches_cpu():
    """A few steps of the digits-sized MLP: CUDA and CPU losses stay close (float32 GEMMs
    of length 784 summed in a different order: the bound of one step, loosely, c=256)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 64, 784)).astype(np.float32)
    y = rng.integers(0, 10, (5, 64))
    losses = {}
    for dev in ("cpu", "cuda"):
        fastnn.manual_seed(0)
        m = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10)).to(dev)
        opt = fastnn.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        out = []
        for xb, yb in zip(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(fastnn.tensor(xb, device=dev)), fastnn.tensor(yb, device=dev))
            loss.backward()
            opt.step()
            out.append(loss.item())
        losses[dev] = np.array(out)
    assert_close(losses["cuda"], losses["cpu"], k=784, scale=4.0, c=256, what="losses")


def test_memory_is_cached_and_released():
    fastnn.cuda.synchronize()
    base = fastnn.cuda.memory_allocated()
    t = fastnn.empty(1 << 20, device="cuda")
    assert fastnn.cuda.memory_allocated() >= base + 4 * (1 << 20)
    del t
    assert fastnn.cuda.memory_allocated() == base
    assert fastnn.cuda.memory_reserved() >= base + 4 * (1 << 20)  # cached, not freed
    fastnn.cuda.empty_cache()
    assert fastnn.cuda.memory_reserved() < base + 4 * (1 << 20)


def test_dlpack_with_torch_cuda():
    """Zero-copy exchange with PyTorch CUDA tensors in both directions (when PyTorch has
    CUDA: the CPU-only PyTorch of the dev machine skips this)."""
    torch = pytest.importorskip("torch")
    if FAKE or not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    tt = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    ft = fastnn.from_dlpack(tt)
    assert ft.is_cuda and ft.data_ptr() == tt.data_ptr()
    tt.mul_(2)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(ft.cpu().numpy(), np.arange(12).reshape(3, 4) * 2)
    back = torch.from_dlpack(ft * 1.0)
    assert back.is_cuda
    np.testing.assert_array_equal(back.cpu().numpy(), np.arange(12).reshape(3, 4) * 2)


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 0, 2), (5, 7), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_host_device_round_trip(shape, dtype, rng):
    """Every shape, 0-d and empty included, survives host -> device -> host (from_numpy and
    copy_ from a host array; a 0-d array once came back as a shape error: NumPy's
    ascontiguousarray makes it 1-d)."""
    G = fastnn.cuda._require("test")
    a = np.asarray(rng.standard_normal(shape) * 10).astype(dtype)  # (a 0-d array, no scalar)
    d = G.CudaArray.from_numpy(a, 0)
    assert d.shape == shape and d.dtype == a.dtype
    np.testing.assert_array_equal(d.numpy(), a)
    b = np.asarray(rng.standard_normal(shape) * 10).astype(dtype)
    d.copy_(b)
    np.testing.assert_array_equal(d.numpy(), b)
    if dtype is not np.bool_:
        t = fastnn.tensor(a, device="cuda")
        assert t.is_cuda and tuple(t.shape) == shape
        np.testing.assert_array_equal(t.cpu().numpy(), a)


def test_errors_with_a_device_present():
    """C++ errors of _C_cuda reach Python as exceptions while a device is in use (a toolchain
    that links libstdc++ statically once turned every one of them into a crash)."""
    if FAKE:
        pytest.skip("CudaArray is the real backend's class")
    G = fastnn.cuda._require("test")
    d = G.CudaArray.from_numpy(np.zeros((2, 3), np.float32), 0)
    with pytest.raises(TypeError, match=r"^\[from_numpy\] array dtype must be float32"):
        G.CudaArray.from_numpy(np.zeros(3), 0)
    with pytest.raises(ValueError, match=r"^\[copy_\] src must have shape \(2, 3\)"):
        d.copy_(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"^\[linear\] unknown activation code 9"):
        G.linear_fwd(d, d, None, 9)
    x = fastnn.ones((2, 3), device="cuda")
    with pytest.raises(RuntimeError, match=r"expected all tensors on the same device"):
        x + fastnn.ones((2, 3))
    np.testing.assert_array_equal((x + x).cpu().numpy(), np.full((2, 3), 2.0, np.float32))


def test_leaf_gradient_adopted_only_when_unshared(monkeypatch, rng):
    """A leaf's first gradient on the device is kept without a copy when nothing else holds
    it (as on the host), and copied when the backward hands one array to two inputs."""
    if FAKE:
        pytest.skip("the fake backend does not track block sharing (it copies every gradient)")
    T = importlib.import_module("fastnn.tensor")  # (fastnn.tensor is also the function)
    copies = []
    real = T._copy_as
    monkeypatch.setattr(T, "_copy_as", lambda a, dt: copies.append(a) or real(a, dt))
    a = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6)
    x = fastnn.tensor(a, device="cuda", requires_grad=True)
    F.cross_entropy(x, fastnn.tensor(t, device="cuda")).backward()
    assert copies == [], "a fresh, unshared gradient was copied"
    xc = fastnn.tensor(a, requires_grad=True)
    F.cross_entropy(xc, fastnn.tensor(t)).backward()
    assert_close(x.grad.cpu().numpy(), xc.grad.numpy(), k=5, c=32, what="adopted gradient")
    first = x.grad
    F.cross_entropy(x, fastnn.tensor(t, device="cuda")).backward()   # accumulates in place
    assert x.grad is first
    assert_close(x.grad.cpu().numpy(), 2 * xc.grad.numpy(), k=5, c=32, what="accumulated")
    y = fastnn.tensor(a, device="cuda", requires_grad=True)
    (y + y).sum().backward()   # add's backward gives the same array to both inputs
    assert len(copies) == 1
    np.testing.assert_array_equal(y.grad.cpu().numpy(), np.full((6, 5), 2.0, np.float32))
