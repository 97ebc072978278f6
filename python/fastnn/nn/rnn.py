"""nn.RNN and nn.LSTM with PyTorch's interface, parameter names and initialisation; each
layer is one C++ call over the whole sequence (fastnn._functions.rnn)."""
import math

import numpy as np

from ..tensor import Tensor, empty
from .._functions.rnn import lstm_layer, rnn_layer
from .._functions.shape import cat
from . import init
from .functional import dropout as _dropout
from .module import Module, Parameter

__all__ = ["RNN", "LSTM"]

_F32 = np.dtype(np.float32)  # compared with `is`: Tensor.dtype is slow on this hot path


class _RNNBase(Module):
    _gates = 1
    _name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__()
        op = self._name
        for name, v, lo in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                            ("num_layers", num_layers, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"[{op}] {name} must be an int >= {lo}, got {v!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout <= 1):
            raise ValueError(f"[{op}] dropout must be a number in [0, 1], got {dropout!r}")
        if bidirectional:
            raise ValueError(f"[{op}] bidirectional=True is not supported (one direction only)")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = False
        gh = self._gates * hidden_size
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", Parameter(empty(gh, fan_in)))
            setattr(self, f"weight_hh_l{k}", Parameter(empty(gh, hidden_size)))
            if self.bias:
                setattr(self, f"bias_ih_l{k}", Parameter(empty(gh)))
                setattr(self, f"bias_hh_l{k}", Parameter(empty(gh)))
        self.reset_parameters()

    def reset_parameters(self):
        # PyTorch's rule: every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _layer_params(self, k):
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                getattr(self, f"bias_ih_l{k}") if self.bias else None,
                getattr(self, f"bias_hh_l{k}") if self.bias else None)

    def _check_input(self, x):
        op = self._name
        if not isinstance(x, Tensor):
            raise TypeError(f"[{op}] input must be a fastnn.Tensor, got {type(x).__name__}")
        if x._data.dtype is not _F32:
            raise TypeError(f"[{op}] input must be float32, got {x.dtype}")
        if x.ndim not in (2, 3):
            raise ValueError(f"[{op}] input must be 2-D (unbatched: seq_len, input_size) or 3-D, "
                             f"got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"[{op}] input.size(-1) must equal input_size={self.input_size}, "
                             f"got input of shape {tuple(x.shape)}")
        if x.shape[1 if (self.batch_first and x.ndim == 3) else 0] == 0:
            raise ValueError(f"[{op}] input sequence length must be >= 1, got shape "
                             f"{tuple(x.shape)}")

    def _check_state(self, h, name, batched, n):
        op = self._name
        want = (self.num_layers, n, self.hidden_size) if batched else (self.num_layers,
                                                                        self.hidden_size)
        if not isinstance(h, Tensor):
            raise TypeError(f"[{op}] {name} must be a fastnn.Tensor, got {type(h).__name__}")
        if h._data.dtype is not _F32:
            raise TypeError(f"[{op}] {name} must be float32, got {h.dtype}")
        if tuple(h.shape) != want:
            raise ValueError(f"[{op}] {name} must have shape (num_layers, batch, hidden_size)="
                             f"{want}, got {tuple(h.shape)}")

    def _run(self, x, states):
        """states: tuple of (num_layers, N, H) tensors or Nones; returns (y, [final states])."""
        self._check_input(x)
        batched = x.ndim == 3
        n = x.shape[0 if self.batch_first else 1] if batched else 1
        names = ("h0", "c0")
        for s, name in zip(states, names):
            if s is not None:
                self._check_state(s, name, batched, n)
        bf = self.batch_first
        finals = [[] for _ in states]
        for k in range(self.num_layers):
            # A single layer passes the (1, N, H) state whole: no slicing or stacking.
            st = tuple(None if s is None else (s if self.num_layers == 1 else s[k:k + 1])
                       for s in states)
            out = self._layer(x, st, self._layer_params(k), bf, not batched)
            x = out[0]
            for lst, s in zip(finals, out[1:]):
                lst.append(s)
            if self.dropout and self.training and k < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        finals = [f[0] if len(f) == 1 else cat(f, 0) for f in finals]
        return x, finals

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(_RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.
    forward(input, h0=None) -> (output, h_n)."""

    _name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"[RNN] nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)
        self.nonlinearity = nonlinearity

    def _layer(self, x, st, params, bf, unbatched):
        return rnn_layer(x, st[0], *params, nonlinearity=self.nonlinearity, batch_first=bf,
                         unbatched=unbatched)

    def forward(self, input, hx=None):
        y, (hn,) = self._run(input, (hx,))
        return y, hn

    def extra_repr(self):
        s = super().extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(_RNNBase):
    """LSTM with gate order i, f, g, o:
    i = σ(W_ii x + b_ii + W_hi h + b_hi), f = σ(...), g = tanh(...), o = σ(...),
    c' = f c + i g, h' = o tanh(c'). forward(input, (h0, c0)=None) -> (output, (h_n, c_n))."""

    _gates = 4
    _name = "LSTM"

    def _layer(self, x, st, params, bf, unbatched):
        return lstm_layer(x, st[0], st[1], *params, batch_first=bf, unbatched=unbatched)

    def forward(self, input, hx=None):
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"[LSTM] hx must be a tuple (h0, c0), got {type(hx).__name__}")
        y, (hn, cn) = self._run(input, tuple(hx))
        return y, (hn, cn)
