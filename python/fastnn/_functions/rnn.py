"""One recurrent layer (LSTM, or Elman RNN with tanh/relu) over a whole sequence, forward and
backward through time in C++ (csrc/cpu/rnn.cpp): Python makes one _C call per layer.

lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_first) -> (y, h_n, c_n)
rnn_layer(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity, batch_first) -> (y, h_n)

x is (T, N, I), or (N, T, I) with batch_first; y is laid out like x with H features.
h0 / c0 are None (zeros) or any shape holding N*H values, typically (1, N, H) or (N, H);
h_n / c_n come back in that shape ((1, N, H) when h0 is None).
"""
import numpy as np

from .. import _C
from ..autograd import Function
from ..tensor import _contig
from ._check import check_tensor

LSTM, RNN_TANH, RNN_RELU = 0, 1, 2
# NOTE (speed): dtype checks compare the NumPy dtype object directly; Tensor.dtype goes
# through the dtype's name and cost ~5 us a call, a third of a StatQuest-size training step.
_F32 = np.dtype(np.float32)


def _time_major(a, batch_first):
    # NOTE: batch_first is a layout change only: one contiguous copy in and out, so the
    # kernel always sees each step's N rows contiguous (the per-step GEMM needs that).
    return np.ascontiguousarray(a.transpose(1, 0, 2)) if batch_first else _contig(a)


def _state(a, n, h):
    return None if a is None else _contig(a).reshape(n, h)


class RecurrentLayer(Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode, batch_first, unbatched=False):
        x_shape = x.shape
        if unbatched:  # (T, I): a batch of one, as a view
            x, batch_first = x.reshape(x.shape[0], 1, x.shape[1]), False
        xt = _time_major(x, batch_first)
        n, h = xt.shape[1], w_hh.shape[1]
        state_shape = (h0.shape if h0 is not None else
                       c0.shape if c0 is not None else (1, h) if unbatched else (1, n, h))
        h0s, c0s = _state(h0, n, h), _state(c0, n, h)
        y, c, gates = _C.rnn_fwd(mode, xt, h0s, c0s, _contig(w_ih), _contig(w_hh),
                                 None if b_ih is None else _contig(b_ih),
                                 None if b_hh is None else _contig(b_hh))
        ctx.save_for_backward(xt, h0s, c0s, w_ih, w_hh, y, c, gates)
        ctx.args = (mode, batch_first, state_shape, h0 is not None and h0.shape,
                    c0 is not None and c0.shape, x_shape)
        out = y.transpose(1, 0, 2).copy() if batch_first else y
        if unbatched:
            out = out.reshape(x_shape[0], h)
        # h_n / c_n are copies: y and c stay untouched if the caller edits them in place.
        # out is y itself when time-major (no copy of the whole sequence): a change of it in
        # place makes backward raise (Tensor._changed), where PyTorch's own copy would not.
        hn = y[-1].reshape(state_shape).copy()
        if mode == LSTM:
            return out, hn, c[-1].reshape(state_shape).copy()
        return out, hn

    @staticmethod
    def backward(ctx, dy, dhn, dcn=None):
        xt, h0s, c0s, w_ih, w_hh, y, c, gates = ctx.saved_tensors
        mode, batch_first, state_shape, h0_shape, c0_shape, x_shape = ctx.args
        need = ctx.needs_input_grad
        n, h = xt.shape[1], w_hh.shape[1]
        dyt = _time_major(dy.reshape(y.shape) if len(x_shape) == 2 else dy, batch_first)
        dx, dh0, dc0, dw_ih, dw_hh, db = _C.rnn_bwd(
            mode, xt, h0s, c0s, w_ih, w_hh, y, c, gates, dyt, _contig(dhn).reshape(n, h),
            None if dcn is None else _contig(dcn).reshape(n, h),
            bool(need[0]), bool(need[3] or need[4]), bool(need[5] or need[6]))
        if dx is not None and batch_first:
            dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        if dx is not None:
            dx = dx.reshape(x_shape)
        gh0 = dh0.reshape(h0_shape) if need[1] else None
        gc0 = dc0.reshape(c0_shape) if need[2] and dc0 is not None else None
        return (dx if need[0] else None, gh0, gc0,
                dw_ih if need[3] else None, dw_hh if need[4] else None,
                db if need[5] else None,
                # the second bias gets its own array: gradients may be accumulated in place
                (db.copy() if need[5] else db) if need[6] else None,
                None, None, None)


def _check(t, op, name, optional=False):
    check_tensor(t, op, name, optional=optional)


def _check_state(t, op, name, x, w_hh, batch_first, unbatched=False):
    if t is None:
        return
    _check(t, op, name)
    n = 1 if unbatched else x.shape[0 if batch_first else 1]
    if t._data.size != n * w_hh.shape[1] or t.shape[-1] != w_hh.shape[1]:
        raise ValueError(f"[{op}] {name} must hold (batch, hidden_size)=({n}, {w_hh.shape[1]}) "
                         f"values, got shape {tuple(t.shape)}")


def _check_layer_args(op, x, w_ih, w_hh, b_ih, b_hh, unbatched):
    """The tensor and rank checks the LSTM and RNN layers share."""
    for t, name, opt in ((x, "input", False), (w_ih, "weight_ih", False),
                         (w_hh, "weight_hh", False), (b_ih, "bias_ih", True),
                         (b_hh, "bias_hh", True)):
        _check(t, op, name, opt)
    if x.ndim != (2 if unbatched else 3):
        raise ValueError(f"[{op}] input must be {2 if unbatched else 3}-D, got shape "
                         f"{tuple(x.shape)}")


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, batch_first=False,
               unbatched=False):
    """unbatched: x is (T, I), y (T, H), states hold H values ((1, H) by default)."""
    _check_layer_args("lstm", x, w_ih, w_hh, b_ih, b_hh, unbatched)
    _check_state(h0, "lstm", "h0", x, w_hh, batch_first, unbatched)
    _check_state(c0, "lstm", "c0", x, w_hh, batch_first, unbatched)
    return RecurrentLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, LSTM, bool(batch_first),
                                bool(unbatched))


def rnn_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", batch_first=False,
              unbatched=False):
    modes = {"tanh": RNN_TANH, "relu": RNN_RELU}
    if nonlinearity not in modes:
        raise ValueError(f"[rnn] nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    _check_layer_args("rnn", x, w_ih, w_hh, b_ih, b_hh, unbatched)
    _check_state(h0, "rnn", "h0", x, w_hh, batch_first, unbatched)
    return RecurrentLayer.apply(x, h0, None, w_ih, w_hh, b_ih, b_hh, modes[nonlinearity],
                                bool(batch_first), bool(unbatched))
