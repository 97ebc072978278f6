"""Optimizers: the multi-tensor kernels (_C.sgd_step / _C.adam_step) and fastnn.optim,
against the float64 references in tests/reference.py and, when installed, torch.optim."""
import itertools
import math

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import _C
from fastnn.optim import SGD, Adam, Optimizer
from harness import expect_error
from harness import EPS32, assert_close, expect_error

# Odd sizes, one empty tensor, a 0-d one, and (in BIG) a total large enough that two threads
# split it in the middle of a tensor.
# The SIMD paths take 8 (avx2) or 16 (avx512) floats at a time: sizes below, at and past
# those widths, with tails.
SIZES = [(1,), (5,), (8,), (17,), (3, 11), (1000,), (0,), ()]
BIG = SIZES + [(30000,), (200, 200)]


def make_params(rng, shapes):
    return [fastnn.tensor(np.asarray(rng.standard_normal(s), np.float32), requires_grad=True)
            for s in shapes]


def set_grads(rng, params, none_every=None, step=0):
    """Fresh random grads; params[i] with (i + step) % none_every == 0 get no gradient."""
    for i, p in enumerate(params):
        if none_every and (i + step) % none_every == 0:
            p.grad = None
        else:
            p.grad = fastnn.tensor(np.asarray(rng.standard_normal(tuple(p.shape)), np.float32))


def f64(t):
    return None if t is None else np.array(t.detach().numpy(), dtype=np.float64)


def term_scale(*arrays):
    """The magnitude of the terms an update adds up: per-step results are compared with
    atol = rtol * this (cancellation can leave the result far smaller than its terms)."""
    return max([1.0] + [float(np.max(np.abs(a))) for a in arrays if a is not None and a.size])


# ---- SGD --------------------------------------------------------------------------------
SGD_OPTIONS = [dict(momentum=m, dampening=d, weight_decay=wd, nesterov=n, maximize=mx)
               for m, d, wd, n, mx in itertools.product([0.0, 0.9], [0.0, 0.3], [0.0, 0.05],
                                                        [False, True], [False, True])
               if not (n and (m == 0 or d != 0))]


@pytest.mark.parametrize("opts", SGD_OPTIONS, ids=lambda o: "-".join(
    f"{k}={v}" for k, v in o.items() if v))
def test_sgd_matches_reference(opts, rng, isa):
    lr = 0.1
    params = make_params(rng, SIZES)
    opt = SGD(params, lr=lr, **opts)
    for step in range(4):
        set_grads(rng, params, none_every=3, step=step)
        before = [f64(p) for p in params]
        bufs = [f64(opt.state.get(p, {}).get("momentum_buffer")) for p in params]
        opt.step()
        for i, p in enumerate(params):
            if p.grad is None:
                # A parameter without a gradient is left alone, bit for bit, and gets no state.
                np.testing.assert_array_equal(p.detach().numpy(), before[i])
                assert bufs[i] is not None or p not in opt.state
                continue
            g = f64(p.grad)
            want_p, want_buf = R.sgd_step(before[i], g, bufs[i], lr, **opts)
            # NOTE: each step is a handful of float32 roundings of terms no larger than the
            # scale of p, g and the buffer (the coefficients are <= 1 + momentum).
            s = term_scale(before[i], g, bufs[i])
            assert_close(p.detach().numpy(), want_p, scale=2 * s, what=f"param {i} step {step}")
            if opts["momentum"]:
                assert_close(opt.state[p]["momentum_buffer"].numpy(), want_buf, scale=2 * s,
                             what=f"buffer {i} step {step}")
            else:
                assert p not in opt.state or "momentum_buffer" not in opt.state[p]


def test_sgd_first_buffer_is_a_copy_of_the_gradient(rng):
    # PyTorch: no dampening on the first step, whatever `dampening` is.
    p = fastnn.tensor(rng.standard_normal(7).astype(np.float32), requires_grad=True)
    opt = SGD([p], lr=0.5, momentum=0.9, dampening=0.5)
    g = rng.standard_normal(7).astype(np.float32)
    p.grad = fastnn.tensor(g)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"].numpy(), g)


# ---- Adam -------------------------------------------------------------------------------
ADAM_OPTIONS = [dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False),
                dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True),
                dict(betas=(0.3, 0.5), eps=1e-3, weight_decay=0.0, maximize=False),
                dict(betas=(0.0, 0.0), eps=1e-8, weight_decay=0.01, maximize=False)]


@pytest.mark.parametrize("opts", ADAM_OPTIONS, ids=str)
def test_adam_matches_reference(opts, rng, isa):
    lr = 0.01
    params = make_params(rng, SIZES)
    opt = Adam(params, lr=lr, **opts)
    for step in range(5):
        set_grads(rng, params, none_every=4, step=step)
        before = [f64(p) for p in params]
        # Snapshots: the optimizer updates its state tensors in place.
        st = [{k: (f64(v) if isinstance(v, fastnn.Tensor) else v)
               for k, v in opt.state.get(p, {}).items()} for p in params]
        opt.step()
        for i, p in enumerate(params):
            if p.grad is None:
                np.testing.assert_array_equal(p.detach().numpy(), before[i])
                assert opt.state.get(p, {}).get("step", 0) == st[i].get("step", 0)
                continue
            g = f64(p.grad)
            m0 = st[i]["exp_avg"] if st[i] else np.zeros_like(g)
            v0 = st[i]["exp_avg_sq"] if st[i] else np.zeros_like(g)
            t = st[i].get("step", 0) + 1
            assert opt.state[p]["step"] == t
            (b1, b2), rest = opts["betas"], {k: v for k, v in opts.items() if k != "betas"}
            want_p, want_m, want_v = R.adam_step(before[i], g, m0, v0, t, lr, b1, b2, **rest)
            s = term_scale(before[i], g, m0)
            assert_close(opt.state[p]["exp_avg"].numpy(), want_m, scale=s, what=f"m {i}")
            assert_close(opt.state[p]["exp_avg_sq"].numpy(), want_v, scale=s * s, what=f"v {i}")
            # NOTE: the update m/(sqrt(v)+eps) loses relative accuracy where m cancels, but its
            # size is bounded by about lr*(1-b1)/sqrt(1-b2) <= 3.2 lr for these betas (Kingma &
            # Ba, sec. 2.1): allow a few ulp of p plus a few ulp of 10 lr. A wrong rule (bias
            # correction, eps placement) moves p by ~lr, 1e4 times more.
            assert_close(p.detach().numpy(), want_p, scale=term_scale(before[i]) + 10 * lr,
                         c=64, what=f"param {i} step {step}")


# ---- threads: one call over many tensors, split across tensor boundaries -------------------
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_multi_tensor_split_is_exact(kind, rng, isa):
    """Elementwise updates must not depend on how the pool splits the work."""
    ps = [rng.standard_normal(s).astype(np.float32) for s in BIG]
    gs = [rng.standard_normal(s).astype(np.float32) for s in BIG]
    results = []
    prev = _C.get_num_threads()
    try:
        for nt in (1, 2):
            _C.set_num_threads(nt)
            p = [_C.empty(a.shape) for a in ps]
            for d, a in zip(p, ps):
                d[...] = a
            st = [[_C.zeros(a.shape) for a in ps] for _ in range(2)]
            for step in range(1, 3):
                if kind == "sgd":
                    _C.sgd_step(p, gs, st[0], 0.1, 0.9, 0.1, 0.01, False, False, step == 1)
                else:
                    _C.adam_step(p, gs, st[0], st[1], [step] * len(p), 0.01)
            results.append(p)
    finally:
        _C.set_num_threads(prev)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # ... and both are right: the last tensor against the reference after two steps.
    p64, g64 = ps[-1].astype(np.float64), gs[-1].astype(np.float64)
    if kind == "sgd":
        p1, b1 = R.sgd_step(p64, g64, None, 0.1, 0.9, 0.1, 0.01)
        want, _ = R.sgd_step(p1, g64, b1, 0.1, 0.9, 0.1, 0.01)
    else:
        p1, m1, v1 = R.adam_step(p64, g64, 0 * g64, 0 * g64, 1, 0.01)
        want, _, _ = R.adam_step(p1, g64, m1, v1, 2, 0.01)
    assert_close(results[0][-1], want, scale=term_scale(p64, g64), c=64)


def test_first_step_flags_per_parameter(rng, isa):
    # One call where params[0]'s buffer starts and params[1]'s continues.
    p = [rng.standard_normal(4).astype(np.float32) for _ in range(2)]
    g = [rng.standard_normal(4).astype(np.float32) for _ in range(2)]
    b = [np.full(4, 7, np.float32), rng.standard_normal(4).astype(np.float32)]
    b1_old = b[1].astype(np.float64)
    _C.sgd_step(p, g, b, 0.1, 0.5, 0.0, 0.0, False, False, [True, False])
    np.testing.assert_array_equal(b[0], g[0])
    assert_close(b[1], 0.5 * b1_old + g[1], scale=8)


# ---- agreement with torch.optim over whole trajectories --------------------------------------


@pytest.mark.parametrize("kind,opts", [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.2, maximize=True)),
    ("SGD", dict(lr=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05, maximize=True)),
])
def test_trajectory_matches_torch(kind, opts, rng, isa):
    torch = pytest.importorskip("torch")
    shapes = [(1,), (5,), (17,), (33,), (1000,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    fp = [fastnn.tensor(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    fo = getattr(fastnn.optim, kind)(fp, **opts)
    to = getattr(torch.optim, kind)(tp, **opts)
    for step in range(100):
        for i, (a, b) in enumerate(zip(fp, tp)):
            if (i + step) % 7 == 0:  # some steps without a gradient for some params
                a.grad, b.grad = None, None
                continue
            # A smooth loss (so the trajectory is not chaotic): grad = p - target + noise.
            g = (a.detach().numpy() - 0.5 + 0.1 * rng.standard_normal(a.shape)).astype(np.float32)
            a.grad, b.grad = fastnn.tensor(g), torch.tensor(g)
        fo.step()
        to.step()
    exact = kind == "SGD" and isa != "generic" and _torch_vectorised(torch)
    for i, (a, b) in enumerate(zip(fp, tp)):
        if exact:
            # The AVX2/AVX-512 SGD loop does PyTorch's vectorised kernels' operations in their
            # order (an add with alpha is one FMA), so 100 steps agree bit for bit.
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(),
                                          err_msg=f"SGD param {i} after 100 steps")
            continue
        # NOTE: the generic path rounds a multiply-add twice where torch's vectorised kernels
        # use one FMA, and torch's float32 sqrt is not correctly rounded (about 1 in 6 results
        # differ from IEEE sqrt by an ulp, measured), which Adam's denominator passes on: a
        # few ulp per step, over 100 steps of a contracting map below 1e-5 relative to the
        # parameters' scale.
        assert_close(a.detach().numpy(), b.detach().numpy(), scale=1.0, c=1e-5 / EPS32,
                     what=f"{kind} param {i} after 100 steps")


def _torch_vectorised(torch):
    """Whether torch runs its AVX2/AVX-512 CPU kernels here (not its scalar default ones)."""
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "")()
    return cap in ("AVX2", "AVX512")


def test_load_torch_state_dict_and_continue(rng):
    torch = pytest.importorskip("torch")
    init = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,)]]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    to = torch.optim.Adam(tp, lr=0.01)
    for _ in range(3):
        for p in tp:
            p.grad = torch.randn(p.shape)
        to.step()
    sd = to.state_dict()
    fp = [fastnn.tensor(p.detach().numpy().copy(), requires_grad=True) for p in tp]
    fo = Adam(fp, lr=0.5)
    fo.load_state_dict({"state": {k: {n: v.numpy() for n, v in s.items()}
                                  for k, s in sd["state"].items()},
                        "param_groups": sd["param_groups"]})
    assert fo.param_groups[0]["lr"] == 0.01 and fo.state[fp[0]]["step"] == 3
    for p, q in zip(fp, tp):
        g = rng.standard_normal(tuple(p.shape)).astype(np.float32)
        p.grad, q.grad = fastnn.tensor(g), torch.tensor(g)
    fo.step()
    to.step()
    for p, q in zip(fp, tp):
        assert_close(p.detach().numpy(), q.detach().numpy(), scale=4, c=64)


# ---- Optimizer API --------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kw", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.01))])
def test_state_dict_round_trip(cls, kw, rng):
    shapes = [(2, 3), (3,), (1,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    a = [fastnn.tensor(x, requires_grad=True) for x in init]
    opt_a = cls([{"params": a[:2]}, {"params": a[2:], "lr": 0.5}], **kw)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]

    def step(params, opt, gs):
        for p, g in zip(params, gs):
            p.grad = fastnn.tensor(g)
        opt.step()

    for gs in grads[:3]:
        step(a, opt_a, gs)
    sd = opt_a.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.5
    b = [fastnn.tensor(p.detach().numpy().copy(), requires_grad=True) for p in a]
    opt_b = cls(b, **kw)  # one group: load_state_dict must reject the layout mismatch
    with pytest.raises(ValueError, match="parameter groups"):
        opt_b.load_state_dict(sd)
    opt_b = cls([{"params": b[:2]}, {"params": b[2:]}], **kw)
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[1]["lr"] == 0.5
    for gs in grads[3:]:
        step(a, opt_a, gs)
        step(b, opt_b, gs)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    # load_state_dict copied the state: the two optimizers share no memory.
    for p, q in zip(a, b):
        for k, v in opt_a.state[p].items():
            if isinstance(v, fastnn.Tensor):
                assert not np.shares_memory(v.numpy(), opt_b.state[q][k].numpy())


def test_state_dict_shape_mismatch(rng):
    p = fastnn.zeros(3, requires_grad=True)
    opt = Adam([p])
    p.grad = fastnn.ones(3)
    opt.step()
    sd = opt.state_dict()
    q = fastnn.zeros(4, requires_grad=True)
    with pytest.raises(ValueError, match="shape"):
        Adam([q]).load_state_dict(sd)


def test_zero_grad_and_closure():
    p = fastnn.tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 5.0
    np.testing.assert_allclose(p.detach().numpy(), [0.8, -1.6], rtol=1e-6)
    assert p.grad is not None and p.is_leaf and p.grad_fn is None
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradients: nothing happens
    np.testing.assert_allclose(p.detach().numpy(), [0.8, -1.6], rtol=1e-6)


def test_param_groups_options():
    a, b = fastnn.ones(2, requires_grad=True), fastnn.ones(3, requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": b, "lr": 1.0, "momentum": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[1]["momentum"] == 0.5
    a.grad, b.grad = fastnn.ones(2), fastnn.ones(3)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), 0.9, rtol=1e-7)
    np.testing.assert_allclose(b.detach().numpy(), 0.0, atol=1e-7)
    assert "SGD" in repr(opt) and "Parameter Group 1" in repr(opt)
    assert isinstance(opt, Optimizer)


# ---- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    (dict(lr=-1), "[SGD] invalid learning rate: -1"),
    (dict(lr=float("nan")), "[SGD] invalid learning rate: nan"),
    (dict(momentum=-0.5), "[SGD] invalid momentum value: -0.5"),
    (dict(weight_decay=-1e-3), "[SGD] invalid weight_decay value: -0.001"),
    (dict(nesterov=True), "[SGD] nesterov momentum requires a momentum and zero dampening"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "[SGD] nesterov"),
])
def test_sgd_invalid_hyperparameters(kw, msg):
    with pytest.raises(ValueError) as e:
        SGD([fastnn.zeros(2, requires_grad=True)], **{"lr": 0.1, **kw})
    assert str(e.value).startswith(msg)


@pytest.mark.parametrize("kw,msg", [
    (dict(lr=-0.1), "[Adam] invalid learning rate: -0.1"),
    (dict(eps=-1.0), "[Adam] invalid epsilon value: -1.0"),
    (dict(betas=(1.0, 0.999)), "[Adam] invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, -0.1)), "[Adam] invalid beta parameter at index 1: -0.1"),
    (dict(betas=(0.9,)), "[Adam] betas must be a pair"),
    (dict(weight_decay=-1), "[Adam] invalid weight_decay value: -1"),
])
def test_adam_invalid_hyperparameters(kw, msg):
    with pytest.raises(ValueError) as e:
        Adam([fastnn.zeros(2, requires_grad=True)], **kw)
    assert str(e.value).startswith(msg)


def test_invalid_params():
    p = fastnn.zeros(2, requires_grad=True)
    expect_error(ValueError, "SGD", SGD, [], lr=0.1, match="empty parameter list")
    expect_error(TypeError, "SGD", SGD, p, lr=0.1, match="iterable")
    expect_error(TypeError, "SGD", SGD, [p, 3.0], lr=0.1, match="params[1]")
    expect_error(TypeError, "Adam", Adam, {p}, match="ordered")
    expect_error(ValueError, "Adam", Adam, [p, p], match="more than once")
    expect_error(TypeError, "Adam", Adam, [fastnn.arange(3)], match="float32")
    expect_error(ValueError, "Adam", Adam, [p * 2], match="non-leaf")


def _arrays(*shapes):
    return [np.zeros(s, np.float32) for s in shapes]


def test_kernel_bad_input():
    P = _arrays((10, 4), (3,), (10, 4))
    expect_error(ValueError, "sgd", _C.sgd_step, P, _arrays((10, 4), (3,), (4, 10)), None, 0.1,
                 match="grads[2] must have shape (10, 4) like params[2], got (4, 10)")
    expect_error(ValueError, "sgd", _C.sgd_step, P, _arrays((10, 4), (3,)), None, 0.1,
                 match="grads has 2 arrays but params has 3")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, None, 0.1, 0.9,
                 match="momentum_buffers must be a list")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, _arrays((10, 4), (4,), (10, 4)), 0.1, 0.9,
                 match="momentum_buffers[1] must have shape (3,) like params[1], got (4,)")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, P[:2], 0.1, 0.9,
                 match="momentum_buffers has 2 arrays")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, P, 0.1, 0.9, 0.0, 0.0, False, False,
                 [True], match="first_step has 1 flags")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, None, -1.0, match="invalid learning rate")
    expect_error(ValueError, "sgd", _C.sgd_step, P, P, None, 0.1, 0.0, 0.0, 0.0, True,
                 match="nesterov")
    expect_error(TypeError, "sgd", _C.sgd_step, P[0], P, None, 0.1, match="list of arrays")
    expect_error(TypeError, "sgd", _C.sgd_step, [P[0], [1.0]], P[:2], None, 0.1,
                 match="params[1] must be an array")
    expect_error(TypeError, "sgd", _C.sgd_step, P, [P[0], P[1], P[2].astype(np.float64)], None,
                 0.1, match="grads[2] must be float32")
    strided = np.zeros((10, 8), np.float32)[:, ::2]
    expect_error(ValueError, "sgd", _C.sgd_step, [P[0]], [strided], None, 0.1,
                 match="grads[0] must be C-contiguous")
    ro = np.zeros(3, np.float32)
    ro.flags.writeable = False
    expect_error(ValueError, "sgd", _C.sgd_step, [ro], [ro], None, 0.1,
                 match="params[0] must be writable")
    expect_error(ValueError, "adam", _C.adam_step, P, P, P, _arrays((10, 4), (3,), (10, 5)),
                 [1, 1, 1], 0.1, match="exp_avg_sqs[2] must have shape (10, 4) like params[2]")
    expect_error(ValueError, "adam", _C.adam_step, P, P, P, P, [1, 1], 0.1,
                 match="steps has 2 counts")
    expect_error(ValueError, "adam", _C.adam_step, P, P, P, P, [1, 0, 1], 0.1,
                 match="steps[1] must be >= 1")
    expect_error(ValueError, "adam", _C.adam_step, P, P, P, P, [1, 1, 1], 0.1, 1.0,
                 match="beta parameter at index 0")
    expect_error(ValueError, "adam", _C.adam_step, [ro], [ro], [ro.copy()], [ro.copy()], [1],
                 0.1, match="params[0] must be writable")
    # Nothing was touched by the rejected calls.
    for a in P:
        assert not a.any()
    _C.sgd_step([], [], None, 0.1)  # an empty group is a no-op
    _C.adam_step([], [], [], [], [], 0.1)


def test_rejected_step_keeps_state():
    p = fastnn.zeros(3, requires_grad=True)
    opt = Adam([p])
    p.grad = fastnn.ones(4)
    with pytest.raises(ValueError, match="shape"):
        opt.step()
    p.grad = fastnn.ones(3)
    opt.step()
    assert opt.state[p]["step"] == 1
    assert math.isclose(float(p.detach().numpy()[0]), -1e-3, rel_tol=1e-5)


def test_non_contiguous_params_are_handled():
    # A Parameter made from a strided view owns contiguous memory and trains normally.
    v = fastnn.nn.Parameter(fastnn.ones(2, 4).T)
    assert v.is_contiguous() and tuple(v.shape) == (4, 2)
    w = fastnn.nn.Parameter(fastnn.ones(2))
    opt = fastnn.optim.SGD([w, v], lr=1.0, momentum=0.9, dampening=0.5)
    w.grad, v.grad = fastnn.ones(2), fastnn.ones(4, 2)
    opt.step()
    assert w.tolist() == [0.0, 0.0]  # first step: buffer = grad, no dampening (PyTorch)
    # A plain strided leaf is refused up front, before any state exists.
    t = fastnn.ones(2, 4).T.requires_grad_()
    expect_error(ValueError, "SGD", fastnn.optim.SGD, [t], lr=0.1)


def test_rejected_step_leaves_no_momentum_state():
    w = fastnn.nn.Parameter(fastnn.ones(3))
    opt = fastnn.optim.SGD([w], lr=1.0, momentum=0.9, dampening=0.5)
    w.grad = fastnn.ones(4)  # wrong shape: the kernel rejects the step
    with pytest.raises(ValueError, match=r"^\[(sgd|optimizer)\]"):
        opt.step()
    assert w not in opt.state or "momentum_buffer" not in opt.state[w]
    w.grad = fastnn.ones(3)
    opt.step()
    assert w.tolist() == [0.0, 0.0, 0.0]  # still treated as the first step


# ---- SGD without momentum: the one-call path (_C.sgd_step_params) -------------------------
def test_sgd_fast_path_matches_general_path(rng):
    """Gradients the one-call path refuses (strided, float64) take the general path; both
    give the same update (the same kernel underneath)."""
    shapes = [(3, 4), (5,), ()]
    a, b = make_params(rng, shapes), make_params(rng, shapes)
    for pa, pb in zip(a, b):
        pb._data[...] = pa._data
    oa = SGD(a, lr=0.3, weight_decay=0.1, maximize=True)
    ob = SGD(b, lr=0.3, weight_decay=0.1, maximize=True)
    for step in range(3):
        for i, (pa, pb) in enumerate(zip(a, b)):
            g = rng.standard_normal(pa._data.shape).astype(np.float32)
            pa.grad = fastnn.tensor(g)
            if i == 0:
                pb.grad = fastnn.tensor(np.ascontiguousarray(g.T)).T  # a strided view
                assert not pb.grad.is_contiguous()
            else:
                pb.grad = fastnn.Tensor._make(g.astype(np.float64))  # another dtype
        assert _C.sgd_step_params(b, 0.3, 0.1, True) is False  # b: the general path
        oa.step()
        ob.step()
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


def test_sgd_fast_path_reads_group_edits(rng):
    p = fastnn.tensor(np.ones(3, np.float32), requires_grad=True)
    q = fastnn.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = SGD([p, q], lr=0.5)
    p.grad = fastnn.ones(3)
    opt.step()  # q has no gradient: skipped
    assert p.tolist() == [0.5] * 3 and q.tolist() == [1.0, 1.0]
    for g in opt.param_groups:
        g["lr"] = 0.25
    opt.step()
    assert p.tolist() == [0.25] * 3
    opt.param_groups[0]["lr"] = -1.0  # never validated on edit (as PyTorch); the kernel refuses
    expect_error(ValueError, "sgd", opt.step, match="learning rate")
    assert p.tolist() == [0.25] * 3
    opt.param_groups[0]["lr"] = np.float32(0.25)  # not a Python number: the general path
    opt.step()
    assert p.tolist() == [0.0] * 3
    p.grad = fastnn.ones(4)
    expect_error(ValueError, "optimizer", opt.step, match="shape")
    assert p.tolist() == [0.0] * 3


def test_sgd_step_params_declines_unusual_input(rng):
    p = fastnn.tensor(np.ones(3, np.float32), requires_grad=True)
    p.grad = fastnn.ones(3)
    for args in [((p,), 0.1, 0.0, False), ([p], "0.1", 0.0, False), ([p], 0.1, None, False),
                 ([p], True, 0.0, False), ([object()], 0.1, 0.0, False)]:
        assert _C.sgd_step_params(*args) is False
    ro = fastnn.tensor(np.ones(3, np.float32), requires_grad=True)
    ro._data.flags.writeable = False
    ro.grad = fastnn.ones(3)
    assert _C.sgd_step_params([p, ro], 0.1, 0.0, False) is False
    assert p.tolist() == [1.0] * 3  # declined: nothing changed
    assert _C.sgd_step_params([], 0.1, 0.0, False) is True
    with pytest.raises(TypeError):
        _C.sgd_step_params([p], 0.1)
