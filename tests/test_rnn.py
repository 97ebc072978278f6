"""nn.LSTM / nn.RNN and the one-layer recurrent kernels against the float64 unrolled cells in
tests/reference.py (forward, every gradient, finite differences), PyTorch as an extra oracle,
and bad input."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import reference as R
from fastnn import _C
from fastnn._functions.rnn import lstm_layer, rnn_layer
from harness import assert_close, check_op, expect_error

# (T, N, I, H): sequence length 1, batch 1, empty batch, hidden sizes off the 8/16 SIMD widths.
SHAPES = [(1, 1, 1, 1), (4, 1, 1, 1), (1, 3, 5, 7), (5, 3, 4, 17), (3, 0, 2, 5),
          (6, 2, 3, 9), (2, 17, 33, 16)]


def _inputs(rng, T, N, I, H, G):
    s = 1 / math.sqrt(H)
    return [rng.standard_normal((T, N, I)), rng.standard_normal((N, H)),
            rng.standard_normal((N, H)), rng.uniform(-s, s, (G * H, I)),
            rng.uniform(-s, s, (G * H, H)), rng.uniform(-s, s, G * H),
            rng.uniform(-s, s, G * H)]


def _tols(T, I, H):
    # NOTE: each pre-activation is a dot product of length I + H (+2 biases); the error then
    # runs through T steps of the recurrence, whose gain is below 1 for these weights
    # (|W| <= 1/sqrt(H), saturating gates), so it adds up at most T-fold. Gradients sum over
    # T steps and N rows (the weight GEMMs) with seeds |r| < 5.
    k = (I + H + 2) * T
    return k, 4.0 * max(1.0, math.sqrt(I + H)), k * 4, 20.0 * max(1.0, math.sqrt(I + H))


@pytest.mark.parametrize("T,N,I,H", SHAPES)
def test_lstm_layer_vs_unrolled(rng, threads, T, N, I, H):
    inputs = _inputs(rng, T, N, I, H, 4)

    def fn(x, h0, c0, wi, wh, bi, bh):
        y, hn, cn = lstm_layer(x, h0, c0, wi, wh, bi, bh)
        return fastnn.cat([y.reshape(-1), hn.reshape(-1), cn.reshape(-1)])

    k, sc, gk, gsc = _tols(T, I, H)
    check_op(fn, R.lstm, inputs, ref_grad=R.lstm_grad, k=k, scale=sc, grad_k=gk,
             grad_scale=gsc, rng=rng)


# Every kernel path (cell loops per ISA, W_hh packed once per call for that ISA's GEMM), with
# a batch past one 8/14-row tile and H off the 16/32-column panels.
@pytest.mark.parametrize("T,N,I,H", [(3, 1, 2, 3), (4, 17, 5, 33)])
def test_lstm_rnn_every_isa(rng, isa, T, N, I, H):
    inputs = _inputs(rng, T, N, I, H, 4)

    def fn(x, h0, c0, wi, wh, bi, bh):
        y, hn, cn = lstm_layer(x, h0, c0, wi, wh, bi, bh)
        return fastnn.cat([y.reshape(-1), hn.reshape(-1), cn.reshape(-1)])

    k, sc, gk, gsc = _tols(T, I, H)
    check_op(fn, R.lstm, inputs, ref_grad=R.lstm_grad, k=k, scale=sc, grad_k=gk,
             grad_scale=gsc, rng=rng)
    x, h0, _, wi, wh, bi, bh = _inputs(rng, T, N, I, H, 1)

    def fr(x, h0, wi, wh, bi, bh):
        y, hn = rnn_layer(x, h0, wi, wh, bi, bh, nonlinearity="tanh")
        return fastnn.cat([y.reshape(-1), hn.reshape(-1)])

    check_op(fr, lambda *a: R.rnn(*a, nonlinearity="tanh"), [x, h0, wi, wh, bi, bh],
             ref_grad=lambda *a: R.rnn_grad(*a, nonlinearity="tanh"), k=k, scale=sc,
             grad_k=gk, grad_scale=gsc, rng=rng)


@pytest.mark.parametrize("nl", ["tanh", "relu"])
@pytest.mark.parametrize("T,N,I,H", SHAPES)
def test_rnn_layer_vs_unrolled(rng, threads, T, N, I, H, nl):
    x, h0, _, wi, wh, bi, bh = _inputs(rng, T, N, I, H, 1)

    def fn(x, h0, wi, wh, bi, bh):
        y, hn = rnn_layer(x, h0, wi, wh, bi, bh, nonlinearity=nl)
        return fastnn.cat([y.reshape(-1), hn.reshape(-1)])

    k, sc, gk, gsc = _tols(T, I, H)
    # NOTE: relu's kink: an FD step across z = 0 is wrong, but at these random values no
    # pre-activation comes within 1e-6 of 0 (probability ~1e-6 per element).
    check_op(fn, lambda *a: R.rnn(*a, nonlinearity=nl), [x, h0, wi, wh, bi, bh],
             ref_grad=lambda *a: R.rnn_grad(*a, nonlinearity=nl), k=k, scale=sc, grad_k=gk,
             grad_scale=gsc, rng=rng)


def test_lstm_no_state_no_bias_last_output_only(rng):
    """h0 = c0 = None means zeros; no biases; the loss uses only the last step's output (the
    StatQuest pattern), so every earlier dy is zero."""
    T, N, I, H = 4, 2, 3, 5
    x, h0, c0, wi, wh, bi, bh = _inputs(rng, T, N, I, H, 4)
    z = np.zeros((N, H))
    zb = np.zeros(4 * H)
    ts = [fastnn.tensor(a.astype(np.float32), requires_grad=True) for a in (x, wi, wh)]
    y, hn, cn = lstm_layer(ts[0], None, None, ts[1], ts[2])
    y[-1].sum().backward()
    x64, wi64, wh64 = (t.detach().numpy().astype(np.float64) for t in ts)
    want = R.lstm(x64, z, z, wi64, wh64, zb, zb)
    assert_close(y.detach().numpy().reshape(-1), want[:T * N * H], k=(I + H) * T)
    r = np.zeros_like(want)
    r[(T - 1) * N * H:T * N * H] = 1.0
    g = R.lstm_grad(x64, z, z, wi64, wh64, zb, zb, r)
    for t, gi in zip(ts, (g[0], g[3], g[4])):
        assert_close(t.grad.numpy(), gi, k=(I + H) * T * 4, scale=10)


def test_fastnn_gradcheck_float32(rng):
    """fastnn's own gradient vs float32 finite differences of fastnn's forward."""
    x, h0, c0, wi, wh, bi, bh = _inputs(rng, 3, 2, 2, 3, 4)
    ts = [fastnn.tensor(a.astype(np.float32), requires_grad=True)
          for a in (x, h0, c0, wi, wh, bi, bh)]

    def f(*a):
        y, hn, cn = lstm_layer(*a)
        return fastnn.cat([y.reshape(-1), cn.reshape(-1)])
    assert fastnn.autograd.gradcheck(f, ts, eps=1e-2, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("bf", [False, True])
@pytest.mark.parametrize("layers", [1, 3])
def test_lstm_module_vs_unrolled_layers(rng, bf, layers):
    """nn.LSTM with num_layers stacks layers: each layer's output is the next one's input."""
    T, N, I, H = 3, 2, 4, 5
    m = nn.LSTM(I, H, num_layers=layers, batch_first=bf)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    h0 = rng.standard_normal((layers, N, H)).astype(np.float32)
    c0 = rng.standard_normal((layers, N, H)).astype(np.float32)
    xin = x.transpose(1, 0, 2).copy() if bf else x
    y, (hn, cn) = m(fastnn.tensor(xin), (fastnn.tensor(h0), fastnn.tensor(c0)))
    inp = x.astype(np.float64)
    for k in range(layers):
        p = [getattr(m, f"{n}_l{k}").detach().numpy().astype(np.float64)
             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        ys, cs, _ = R.lstm_unrolled(inp, h0[k], c0[k], *p)
        assert_close(hn.detach().numpy()[k], ys[-1], k=(I + H) * T * layers, scale=4)
        assert_close(cn.detach().numpy()[k], cs[-1], k=(I + H) * T * layers, scale=4)
        inp = ys
    got = y.detach().numpy()
    assert_close(got.transpose(1, 0, 2) if bf else got, inp, k=(I + H) * T * layers, scale=4)
    assert tuple(y.shape) == ((N, T, H) if bf else (T, N, H))
    assert tuple(hn.shape) == (layers, N, H)


def test_module_parameters_and_init():
    m = nn.LSTM(3, 6, num_layers=2)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                     "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert tuple(m.weight_ih_l0.shape) == (24, 3) and tuple(m.weight_ih_l1.shape) == (24, 6)
    # PyTorch's init: U(-1/sqrt(H), 1/sqrt(H)) for everything.
    bound = 1 / math.sqrt(6)
    allv = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert np.all(np.abs(allv) <= bound) and allv.std() > bound / 3
    r = nn.RNN(3, 4, bias=False, nonlinearity="relu")
    assert [n for n, _ in r.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


def test_unbatched_and_default_state():
    m = nn.LSTM(2, 3)
    x = fastnn.tensor(np.ones((5, 2), np.float32))
    y, (hn, cn) = m(x)
    assert tuple(y.shape) == (5, 3) and tuple(hn.shape) == (1, 3) and tuple(cn.shape) == (1, 3)
    yb, (hb, _) = m(x.unsqueeze(1))
    np.testing.assert_array_equal(yb.detach().numpy()[:, 0], y.detach().numpy())
    np.testing.assert_array_equal(hb.detach().numpy()[:, 0], hn.detach().numpy())


@pytest.mark.parametrize("kind", ["LSTM", "RNN_tanh", "RNN_relu"])
@pytest.mark.parametrize("bf", [False, True])
def test_pytorch_weights_give_pytorch_outputs(rng, kind, bf):
    torch = pytest.importorskip("torch")
    T, N, I, H, L = 4, 3, 5, 7, 2
    kw = dict(num_layers=L, batch_first=bf)
    if kind == "LSTM":
        tm, fm = torch.nn.LSTM(I, H, **kw), nn.LSTM(I, H, **kw)
    else:
        nl = kind[4:]
        tm, fm = torch.nn.RNN(I, H, nonlinearity=nl, **kw), nn.RNN(I, H, nonlinearity=nl, **kw)
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((N, T, I) if bf else (T, N, I)).astype(np.float32)
    h0 = rng.standard_normal((L, N, H)).astype(np.float32)
    c0 = rng.standard_normal((L, N, H)).astype(np.float32)
    tt = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    ft = [fastnn.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    if kind == "LSTM":
        ty, (thn, tcn) = tm(tt[0], (tt[1], tt[2]))
        fy, (fhn, fcn) = fm(ft[0], (ft[1], ft[2]))
        (ty.sum() + (thn * thn).sum() + 2 * tcn.sum()).backward()
        (fy.sum() + (fhn * fhn).sum() + 2 * fcn.sum()).backward()
        pairs = [(ty, fy), (thn, fhn), (tcn, fcn)] + [(a.grad, b.grad) for a, b in zip(tt, ft)]
    else:
        ty, thn = tm(tt[0], tt[1])
        fy, fhn = fm(ft[0], ft[1])
        (ty.sum() + (thn * thn).sum()).backward()
        (fy.sum() + (fhn * fhn).sum()).backward()
        pairs = [(ty, fy), (thn, fhn)] + [(a.grad, b.grad) for a, b in zip(tt[:2], ft[:2])]
    fp = dict(fm.named_parameters())
    pairs += [(p.grad, fp[n].grad) for n, p in tm.named_parameters()]
    # NOTE: two float32 implementations of the same sums: each off the exact value by the
    # derived bound, so their difference by twice that.
    for a, b in pairs:
        assert_close(b.detach().numpy(), a.detach().numpy(), k=(I + H) * T * L * N, scale=8,
                     c=32)


def test_bad_input():
    m = nn.LSTM(3, 4)
    x = fastnn.tensor(np.zeros((5, 2, 3), np.float32))
    expect_error(ValueError, "LSTM", m, fastnn.tensor(np.zeros((5, 2, 6), np.float32)),
                 match="input_size=3")
    h = fastnn.tensor(np.zeros((1, 3, 4), np.float32))
    c = fastnn.tensor(np.zeros((1, 2, 4), np.float32))
    expect_error(ValueError, "LSTM", m, x, (h, c), match="h0")
    expect_error(ValueError, "LSTM", m, x, (c, fastnn.tensor(np.zeros((1, 2, 5), np.float32))),
                 match="c0")
    expect_error(TypeError, "LSTM", m, x, h)
    expect_error(ValueError, "LSTM", m, fastnn.tensor(np.zeros((5, 2, 3, 1), np.float32)))
    expect_error(ValueError, "LSTM", m, fastnn.tensor(np.zeros((0, 2, 3), np.float32)))
    expect_error(TypeError, "LSTM", m, fastnn.tensor(np.zeros((5, 2, 3), np.int64)))
    expect_error(ValueError, "RNN", nn.RNN, 3, 4, nonlinearity="sigmoid")
    expect_error(ValueError, "LSTM", nn.LSTM, 3, 4, bidirectional=True)
    expect_error(ValueError, "LSTM", nn.LSTM, 0, 4)
    r = nn.RNN(3, 4, num_layers=2)
    expect_error(ValueError, "RNN", r, x, fastnn.tensor(np.zeros((1, 2, 4), np.float32)),
                 match="num_layers")


def test_bad_input_c_level():
    f = np.zeros
    x, w_ih, w_hh = f((2, 3, 4), np.float32), f((20, 4), np.float32), f((20, 5), np.float32)
    expect_error(ValueError, "lstm", _C.rnn_fwd, 0, x, None, None, f((20, 3), np.float32), w_hh,
                 None, None, match="weight_ih")
    expect_error(ValueError, "lstm", _C.rnn_fwd, 0, x, None, None, w_ih, f((20, 4), np.float32),
                 None, None, match="weight_hh")
    expect_error(ValueError, "lstm", _C.rnn_fwd, 0, x, f((2, 5), np.float32), None, w_ih, w_hh,
                 None, None, match="h0")
    expect_error(ValueError, "lstm", _C.rnn_fwd, 0, x, None, None, w_ih, w_hh,
                 f(19, np.float32), None, match="bias_ih")
    expect_error(TypeError, "lstm", _C.rnn_fwd, 0, x.astype(np.int64), None, None, w_ih, w_hh,
                 None, None)
    expect_error(ValueError, "lstm", _C.rnn_fwd, 0, np.zeros((3, 2, 4), np.float32)[:, ::-1],
                 None, None, w_ih, w_hh, None, None)
    expect_error(ValueError, "rnn", _C.rnn_fwd, 1, x, None, f((3, 5), np.float32),
                 f((5, 4), np.float32), f((5, 5), np.float32), None, None, match="c0")
    expect_error(ValueError, "rnn", _C.rnn_fwd, 7, x, None, None, w_ih, w_hh, None, None)
    y, c, g = _C.rnn_fwd(0, x, None, None, w_ih, w_hh, None, None)
    expect_error(ValueError, "lstm", _C.rnn_bwd, 0, x, None, None, w_ih, w_hh, y, c, None,
                 None, None, None)
    expect_error(ValueError, "lstm", _C.rnn_bwd, 0, x, None, None, w_ih, w_hh, y, c, g,
                 f((2, 3, 4), np.float32), None, None, match="grad_output")


def test_unbatched_gradients_match_batch_of_one(rng):
    m = nn.LSTM(2, 3)
    x = rng.standard_normal((5, 2)).astype(np.float32)
    h0 = rng.standard_normal((1, 3)).astype(np.float32)
    xa, ha = fastnn.tensor(x, requires_grad=True), fastnn.tensor(h0, requires_grad=True)
    y, (hn, _) = m(xa, (ha, fastnn.tensor(h0)))
    (y.sum() + hn.sum()).backward()
    ga = [xa.grad.numpy(), ha.grad.numpy()] + [p.grad.numpy().copy() for p in m.parameters()]
    m.zero_grad()
    xb = fastnn.tensor(x[:, None], requires_grad=True)
    hb = fastnn.tensor(h0[:, None], requires_grad=True)
    y, (hn, _) = m(xb, (hb, fastnn.tensor(h0[:, None])))
    (y.sum() + hn.sum()).backward()
    gb = [xb.grad.numpy()[:, 0], hb.grad.numpy()[:, 0]] + [p.grad.numpy() for p in m.parameters()]
    for a, b in zip(ga, gb):
        np.testing.assert_array_equal(a, b)
