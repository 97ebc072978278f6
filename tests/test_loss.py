"""cross_entropy (fused log-softmax, ignore_index, unbatched) and mse_loss against
tests/reference.py, plus PyTorch as an extra oracle when installed."""
import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
import reference as R
from fastnn import _C
from harness import BATCHES, assert_close, check_op, expect_error

CLASSES = [1, 2, 3, 10, 17, 21, 33, 48, 63, 64, 1000]
REDUCTIONS = ["mean", "sum", "none"]


def _ce(x, t, reduction, rng, ignore_index=-100):
    n = x.shape[0] if x.ndim == 2 else 1
    c = x.shape[-1]
    # NOTE: each row's loss is (max - x[t]) + log(sum of C exps): a few ulp (c=64, exp/log)
    # of the logits' magnitude, with C terms in the sum. Rows are reduced in double, so
    # "mean" is as accurate as one row and "sum" as N rows. A gradient element is one exp
    # times g, divided by the count (its size is at most 1, hence grad_scale=1).
    mag = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
    scale = mag * (max(n, 1) if reduction == "sum" else 1)
    return check_op(lambda a, b: F.cross_entropy(a, b, reduction=reduction, ignore_index=ignore_index),
                    lambda a, b: R.cross_entropy(a, b, reduction, ignore_index),
                    [x, t], ref_grad=lambda a, b, g: R.cross_entropy_grad(a, b, g, reduction, ignore_index),
                    k=c, scale=scale, grad_k=c, grad_scale=1.0, c=64, rng=rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("classes", CLASSES)
def test_cross_entropy(reduction, n, classes, rng, isa):
    x = rng.standard_normal((n, classes)) * 3
    t = rng.integers(0, classes, size=n)
    _ce(x, t, reduction, rng)


@pytest.mark.parametrize("classes", [1, 2, 7, 8, 9, 10, 15, 16, 17, 24, 25, 31, 32, 33])
def test_cross_entropy_small_classes_bit_identical_to_wide_path(classes, rng, isa):
    # Rows of < 64 classes take a register path on AVX-512, <= 32 on AVX2
    # (cpu/kernels/rowops_<isa>.cpp, ce_*_rows_short); padding the same logits with -inf
    # columns up to 80 classes takes the general row path, whose max, sum and log see exactly
    # the same values (its sums group the same way too: on AVX-512 for <= 16 classes, on AVX2
    # and the generic path for all of them). Loss, and the gradient of the real columns, must
    # agree to the bit, ignored rows included; wider AVX-512 rows group their chunks
    # differently in the two paths, so there the sums may differ in their last bit.
    ulps = 0 if isa != "avx512" or classes <= 16 else 2
    n = 37
    x = (rng.standard_normal((n, classes)) * 3).astype(np.float32)
    x[3, 0] = 60.0  # a dominant logit
    t = rng.integers(0, classes, size=n)
    t[[1, 5]] = -100
    wide = np.full((n, 80), -np.inf, np.float32)
    wide[:, :classes] = x
    for reduction in REDUCTIONS:
        out = []
        for logits in (x, wide):
            xt = fastnn.tensor(logits, requires_grad=True)
            loss = F.cross_entropy(xt, fastnn.tensor(t), reduction=reduction)
            loss.sum().backward()
            out.append((loss.detach().numpy(), xt.grad.numpy()[:, :classes]))
        for k, what in ((0, "loss"), (1, "grad")):
            np.testing.assert_array_max_ulp(out[0][k], out[1][k], maxulp=ulps)
            assert np.array_equal(np.isnan(out[0][k]), np.isnan(out[1][k])), what


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_threads(reduction, threads, rng):
    # 64 x 1000 spans several row chunks, so two threads really split it.
    x = rng.standard_normal((64, 1000)) * 3
    _ce(x, rng.integers(0, 1000, size=64), reduction, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("classes", [1, 5, 33])
def test_cross_entropy_unbatched(reduction, classes, rng):
    x = rng.standard_normal(classes) * 3
    t = np.array(rng.integers(0, classes), dtype=np.int64)
    out = _ce(x, t, reduction, rng)
    assert out.shape == ()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore_index", [-100, 2, -1])
def test_ignore_index(reduction, ignore_index, rng):
    x = rng.standard_normal((17, 5)) * 3
    t = rng.integers(0, 5, size=17)
    t[[0, 3, 4, 16]] = ignore_index
    _ce(x, t, reduction, rng, ignore_index)
    xt = fastnn.tensor(x.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(xt, fastnn.tensor(t), reduction="none", ignore_index=ignore_index)
    loss.sum().backward()
    ignored = t == ignore_index
    assert (loss.detach().numpy()[ignored] == 0).all()
    assert (xt.grad.numpy()[ignored] == 0).all()
    assert (xt.grad.numpy()[~ignored] != 0).any()


def test_all_ignored_and_empty():
    x = fastnn.ones(3, 4, requires_grad=True)
    t = fastnn.tensor([-100, -100, -100])
    loss = F.cross_entropy(x, t)
    assert np.isnan(loss.item())  # 0 / 0 targets, as PyTorch
    loss.backward()
    assert (x.grad.numpy() == 0).all()
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0
    e = fastnn.zeros(0, 4, requires_grad=True)
    te = fastnn.tensor(np.zeros(0, np.int64))
    assert np.isnan(F.cross_entropy(e, te).item())
    assert F.cross_entropy(e, te, reduction="sum").item() == 0.0
    assert F.cross_entropy(e, te, reduction="none").shape == (0,)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_large_logits_are_finite(reduction, rng, isa):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0],
                  [-1e4, -1e4, -1e4, -1e4],
                  [1e4, 1e4, 1e4, 1e4],
                  [-1e4, 1e4, 3.0, -2.0],
                  [-1e4, 1e4, 3.0, -2.0]])
    t = np.array([3, 0, 2, 1, 0])  # the last row's loss is 2e4: large but finite
    xt = fastnn.tensor(x.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(xt, fastnn.tensor(t), reduction=reduction)
    loss.backward(fastnn.tensor(np.ones(loss.shape, np.float32)))
    assert np.isfinite(loss.detach().numpy()).all() and np.isfinite(xt.grad.numpy()).all()
    _ce(x, t, reduction, rng)
    if reduction == "none":
        # Small losses next to logits of 1e4 stay accurate to a few ulp of the loss itself,
        # not of the logits (the max is subtracted before anything is rounded at 1e4).
        assert_close(loss.detach().numpy(), R.cross_entropy(x, t, "none"), k=4, c=64,
                     what="per-row loss")


def test_nan_propagates(isa):
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], np.float32)
    xt = fastnn.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, fastnn.tensor([0, 2]), reduction="none")
    got = loss.detach().numpy()
    assert np.isnan(got[0]) and np.isfinite(got[1])
    loss.sum().backward()
    assert np.isnan(xt.grad.numpy()[0]).all() and np.isfinite(xt.grad.numpy()[1]).all()
    assert np.isnan(F.cross_entropy(fastnn.tensor(x), fastnn.tensor([0, 2])).item())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 5, 3, 4), (1, 3, 1, 1, 2), (3, 1, 7), (0, 4, 2),
                                   (2, 5, 40), (1, 3, 6, 11), (2, 21, 9, 9)])
def test_cross_entropy_k_dimensional(reduction, shape, rng, isa):
    # (N, C, d1, ..., dk) logits and (N, d1, ..., dk) targets, as PyTorch's: the same as the
    # 2-D loss on the class dim moved last, positions as rows; 'none' keeps the positions.
    # (The kernel walks the class dim with positions in SIMD lanes, 64-position strips:
    # 40, 66 and 81 positions cover whole registers, tails and a second strip.)
    x = rng.standard_normal(shape) * 3
    t = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    if t.size > 2:
        t.reshape(-1)[rng.integers(0, t.size)] = -100  # an ignored position
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    rows = np.transpose(x, perm).reshape(-1, shape[1])
    xt = fastnn.tensor(x.astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(xt, fastnn.tensor(t), reduction=reduction)
    want = R.cross_entropy(rows, t.reshape(-1), reduction)
    want = np.reshape(want, t.shape) if reduction == "none" else want
    assert tuple(loss.shape) == np.shape(want)
    np.testing.assert_allclose(loss.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(np.shape(want))
    loss.backward(fastnn.tensor(g.astype(np.float32)))
    grow = R.cross_entropy_grad(rows, t.reshape(-1), g.reshape(-1) if reduction == "none" else g,
                                reduction)[0]
    want_grad = np.transpose(grow.reshape(np.transpose(x, perm).shape), np.argsort(perm))
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-5, atol=1e-6)
    expect_error(ValueError, "cross_entropy", F.cross_entropy, xt,
                 fastnn.tensor(np.zeros(shape[:1] + shape[2:] + (1,), np.int64)), match="target")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_torch(reduction, rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((33, 17)) * 4).astype(np.float32)
    x[5, :] += 1e4
    t = rng.integers(0, 17, size=33)
    t[[1, 7]] = -100
    xt = fastnn.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, fastnn.tensor(t), reduction=reduction)
    g = rng.standard_normal(loss.shape).astype(np.float32)
    loss.backward(fastnn.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.from_numpy(t), reduction=reduction)
    tl.backward(torch.from_numpy(g))
    # NOTE: two float32 implementations; losses of up to ~1e4 in row 5 -> relative 1e-5.
    np.testing.assert_allclose(loss.detach().numpy(), tl.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_cross_entropy_bad_input():
    x = fastnn.ones(4, 5)
    t = fastnn.tensor([0, 1, 2, 3])
    expect_error(IndexError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([0, 7, 2, 3]),
                 match="[cross_entropy] target 7 is out of range for 5 classes")
    expect_error(IndexError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([0, -1, 2, 3]),
                 match="target -1")
    expect_error(IndexError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([0, 1, 2, -100]),
                 ignore_index=1, match="target -100")
    expect_error(TypeError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([0.0, 1.0, 2.0, 3.0]))
    expect_error(TypeError, "cross_entropy", F.cross_entropy, fastnn.tensor([[1, 2]]), fastnn.tensor([0]))
    expect_error(TypeError, "cross_entropy", F.cross_entropy, np.ones((4, 5), np.float32), t)
    expect_error(TypeError, "cross_entropy", F.cross_entropy, x, [0, 1, 2, 3])
    expect_error(TypeError, "cross_entropy", F.cross_entropy, x, t, ignore_index=1.5)
    expect_error(ValueError, "cross_entropy", F.cross_entropy, x, t, reduction="avg",
                 match="[cross_entropy] reduction must be 'mean', 'sum' or 'none', got 'avg'")
    expect_error(ValueError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([0, 1, 2]),
                 match="(3,)")
    expect_error(ValueError, "cross_entropy", F.cross_entropy, x, fastnn.tensor([[0, 1, 2, 3]]))
    expect_error(ValueError, "cross_entropy", F.cross_entropy, fastnn.ones(2, 3, 4),
                 fastnn.tensor([0, 1]), match="3-D")
    expect_error(ValueError, "cross_entropy", F.cross_entropy, fastnn.ones(5), fastnn.tensor([1]))
    expect_error(ValueError, "cross_entropy", F.cross_entropy, fastnn.ones(()), fastnn.tensor(0))


def test_cross_entropy_bad_input_c_level():
    x = np.ones((4, 5), np.float32)
    t = np.arange(4, dtype=np.int64)
    expect_error(TypeError, "cross_entropy", _C.cross_entropy_fwd, x.astype(np.float64), t, "mean", -100)
    expect_error(TypeError, "cross_entropy", _C.cross_entropy_fwd, x, t.astype(np.float32), "mean", -100)
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_fwd, np.ones((5, 4), np.float32).T, t,
                 "mean", -100, match="contiguous")
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_fwd, x[None], t, "mean", -100)
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_fwd, x, t, "avg", -100)
    expect_error(IndexError, "cross_entropy", _C.cross_entropy_fwd, x, t + 3, "sum", -100,
                 match="target 5 is out of range for 5 classes")
    loss, stats = _C.cross_entropy_fwd(x, t, "none", -100)
    assert stats.shape == (4, 2)
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_bwd, np.ones((), np.float32), x, t,
                 stats, "none", -100, match="grad_output")
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_bwd, np.ones(4, np.float32), x, t,
                 stats[:3].copy(), "none", -100, match="stats")
    expect_error(ValueError, "cross_entropy", _C.cross_entropy_bwd, np.ones(4, np.float32), x, t,
                 stats, "mean", -100, match="grad_output")


# ---- mse_loss -----------------------------------------------------------------------------

def _mse(shape, reduction, rng):
    x, y = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    n = int(np.prod(shape))
    # NOTE: squared differences of values ~|4| (scale 16), each rounded once; the sum is
    # accumulated in double, so "sum" is as accurate as its n terms' scale and "mean" as one
    # term. The gradient 2*(x-y)*g/n is a few roundings of a value of size ~8/n.
    sc = 16.0 * (max(n, 1) if reduction == "sum" else 1)
    gsc = 8.0 / (max(n, 1) if reduction == "mean" else 1)
    return check_op(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                    lambda a, b: R.mse_loss(a, b, reduction),
                    [x, y], ref_grad=lambda a, b, g: R.mse_loss_grad(a, b, g, reduction),
                    scale=sc, grad_scale=gsc, rng=rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (17, 33), (0, 4), (3, 5, 2)] +
                         [(n, 5) for n in BATCHES])
def test_mse(reduction, shape, rng):
    _mse(shape, reduction, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_threads(reduction, threads, rng):
    _mse((100_003,), reduction, rng)


def test_mse_sum_independent_of_threads(rng):
    x = rng.standard_normal(200_001).astype(np.float32)
    y = rng.standard_normal(200_001).astype(np.float32)
    got = []
    for n in (1, 2):
        prev = _C.get_num_threads()
        _C.set_num_threads(n)
        try:
            got.append(F.mse_loss(fastnn.tensor(x), fastnn.tensor(y), reduction="sum").item())
        finally:
            _C.set_num_threads(prev)
    assert got[0] == got[1]


def test_mse_only_target_requires_grad(rng):
    x = fastnn.tensor(rng.standard_normal(5).astype(np.float32))
    y = fastnn.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    F.mse_loss(x, y, reduction="sum").backward()
    np.testing.assert_allclose(y.grad.numpy(), -2 * (x.numpy() - y.detach().numpy()), rtol=1e-6)
    assert x.grad is None


def test_mse_special_values():
    x = fastnn.tensor([np.nan, 1.0, np.inf])
    y = fastnn.tensor([0.0, 1.0, np.inf])
    out = F.mse_loss(x, y, reduction="none").numpy()
    assert np.isnan(out[0]) and out[1] == 0 and np.isnan(out[2])  # inf - inf = NaN
    assert np.isnan(F.mse_loss(x, y).item())
    assert np.isnan(F.mse_loss(fastnn.zeros(0), fastnn.zeros(0)).item())  # as PyTorch
    assert F.mse_loss(fastnn.zeros(0), fastnn.zeros(0), reduction="sum").item() == 0.0


def test_mse_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((17, 3)).astype(np.float32)
    y = rng.standard_normal((17, 3)).astype(np.float32)
    for reduction in REDUCTIONS:
        got = F.mse_loss(fastnn.tensor(x), fastnn.tensor(y), reduction=reduction).numpy()
        want = torch.nn.functional.mse_loss(torch.from_numpy(x), torch.from_numpy(y),
                                            reduction=reduction).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_mse_bad_input():
    a = fastnn.ones(4, 1)
    expect_error(ValueError, "mse_loss", F.mse_loss, a, fastnn.ones(4),
                 match="got input (4, 1) and target (4,)")
    expect_error(ValueError, "mse_loss", F.mse_loss, a, a, reduction="avg",
                 match="[mse_loss] reduction must be 'mean', 'sum' or 'none', got 'avg'")
    expect_error(TypeError, "mse_loss", F.mse_loss, a, fastnn.tensor([[1], [2], [3], [4]]))
    expect_error(TypeError, "mse_loss", F.mse_loss, a, np.ones((4, 1), np.float32))
    expect_error(TypeError, "mse_loss", F.mse_loss, [1.0], a)
    g = np.ones((), np.float32)
    x = np.ones((3, 4), np.float32)
    expect_error(TypeError, "mse_loss", _C.mse_fwd, x.astype(np.float64), x, "mean")
    expect_error(ValueError, "mse_loss", _C.mse_fwd, x, np.ones((4, 3), np.float32).T, "mean",
                 match="contiguous")
    expect_error(ValueError, "mse_loss", _C.mse_fwd, x, x[:, :2].copy(), "sum", match="(3, 2)")
    expect_error(ValueError, "mse_loss", _C.mse_fwd, x, x, "avg")
    expect_error(ValueError, "mse_loss", _C.mse_bwd, np.ones(3, np.float32), x, x, "mean",
                 match="grad_output")
    expect_error(ValueError, "mse_loss", _C.mse_bwd, g, x, x, "none", match="grad_output")


def test_mse_module_call_respects_overridden_forward():
    """MSELoss.__call__ goes straight to mse_loss, except for a subclass's or an instance's
    own forward, which must run as written."""
    import fastnn.nn as nn
    x = fastnn.tensor(np.array([[1.0], [2.0]], np.float32), requires_grad=True)
    y = fastnn.tensor(np.array([[0.0], [0.0]], np.float32))
    base = nn.MSELoss(reduction="sum")
    assert base(x, y).item() == 5.0 and base(input=x, target=y).item() == 5.0

    class Half(nn.MSELoss):
        def forward(self, input, target):
            return super().forward(input, target) * 0.5
    assert Half(reduction="sum")(x, y).item() == 2.5
    inst = nn.MSELoss(reduction="sum")
    inst.forward = lambda a, b: fastnn.nn.functional.mse_loss(a, b, "mean")
    assert inst(x, y).item() == 2.5
    loss = base(x, y)
    loss.backward()
    assert x.grad.tolist() == [[2.0], [4.0]]
    expect_error(ValueError, "mse_loss", fastnn.nn.functional.mse_loss, x, y, "avg")
    expect_error(TypeError, "mse_loss", fastnn.nn.functional.mse_loss, x, y.numpy())


def test_cross_entropy_module_call_respects_overridden_forward(rng):
    """CrossEntropyLoss.__call__ goes straight to cross_entropy (whose fast path skips the
    Python checks for float32 logits and int64 classes), except for a subclass's or an
    instance's own forward; arguments off the fast path still get the checked path's errors."""
    import fastnn.nn as nn
    x = rng.standard_normal((5, 3)).astype(np.float32)
    t = np.array([0, 2, 1, 1, 2], np.int64)
    want = R.cross_entropy(x.astype(np.float64), t, "sum", -100)
    xt, tt = fastnn.tensor(x, requires_grad=True), fastnn.tensor(t)
    assert_close(nn.CrossEntropyLoss(reduction="sum")(xt, tt).item(), want, scale=8)
    assert_close(nn.CrossEntropyLoss(reduction="sum")(input=xt, target=tt).item(), want, scale=8)

    class Double(nn.CrossEntropyLoss):
        def forward(self, input, target):
            return super().forward(input, target) * 2.0
    assert_close(Double(reduction="sum")(xt, tt).item(), 2 * want, scale=16)
    inst = nn.CrossEntropyLoss(reduction="sum")
    inst.forward = lambda a, b: F.cross_entropy(a, b, reduction="mean")
    assert_close(inst(xt, tt).item(), want / 5, scale=8)
    # ignore_index given as a NumPy integer or a bool, an unknown reduction, float targets:
    # the checked path, with its messages.
    ok = F.cross_entropy(xt, tt, reduction="sum", ignore_index=np.int64(2))
    assert_close(ok.item(), R.cross_entropy(x.astype(np.float64), t, "sum", 2), scale=8)
    expect_error(TypeError, "cross_entropy", F.cross_entropy, xt, tt, "sum", True)
    expect_error(ValueError, "cross_entropy", F.cross_entropy, xt, tt, "avg")
    expect_error(TypeError, "cross_entropy", F.cross_entropy, xt, fastnn.tensor(t.astype(np.float32)))
