"""NumPy float64 references for every fastnn op: the truth the kernels are checked against.

Each op has a forward `<op>(...)` and a backward `<op>_grad(..., g)` that returns the
gradient of sum(forward * g) with respect to each input (None where there is none).
Sections follow csrc/ops/: activation, dense, softmax, loss, elementwise, reduce, optim.
"""
import numpy as np
from math import erf as _erf

_verf = np.vectorize(_erf, otypes=[np.float64])


# ---- activation -------------------------------------------------------------------------

def relu(x):
    return np.where(x < 0, 0.0, x)


def relu_grad(x, g):
    return [np.where(x > 0, g, 0.0)]  # relu'(0) = 0


def sigmoid(x):
    # NOTE: evaluated on the side where exp cannot overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(x, g):
    s = sigmoid(x)
    return [g * s * (1 - s)]


def tanh(x):
    return np.tanh(x)


def tanh_grad(x, g):
    return [g * (1 - np.tanh(x) ** 2)]


def gelu(x):
    return 0.5 * x * (1 + _verf(x / np.sqrt(2.0)))


def gelu_grad(x, g):
    cdf = 0.5 * (1 + _verf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return [g * (cdf + x * pdf)]


def softplus(x, beta=1.0, threshold=20.0):
    z = beta * x
    # log1p(exp(z)) written as max(z, 0) + log1p(exp(-|z|)) cannot overflow
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
    return np.where(z > threshold, x, soft)


def softplus_grad(x, g, beta=1.0, threshold=20.0):
    z = beta * x
    return [g * np.where(z > threshold, 1.0, sigmoid(z))]


# ---- dense ------------------------------------------------------------------------------


# ---- softmax ----------------------------------------------------------------------------

def _shifted(x, dim):
    """x - max(x) along dim and log(sum(exp(x - max))): the stable log-sum-exp pieces.
    NOTE: the max propagates NaN and an all -inf row gives -inf - -inf = NaN, so such rows
    come out NaN, as in PyTorch."""
    with np.errstate(invalid="ignore"):
        z = x - np.max(x, axis=dim, keepdims=True)
        return z, np.log(np.sum(np.exp(z), axis=dim, keepdims=True))


def softmax(x, dim):
    if x.size == 0:
        return np.array(x, dtype=np.float64)
    z, ls = _shifted(x, dim)
    with np.errstate(invalid="ignore"):
        return np.exp(z - ls)


def softmax_grad(x, dim, g):
    y = softmax(x, dim)
    return [y * (g - np.sum(g * y, axis=dim, keepdims=True))]


def log_softmax(x, dim):
    if x.size == 0:
        return np.array(x, dtype=np.float64)
    z, ls = _shifted(x, dim)
    with np.errstate(invalid="ignore"):
        return z - ls


def log_softmax_grad(x, dim, g):
    return [g - softmax(x, dim) * np.sum(g, axis=dim, keepdims=True)]


def argmax(x, dim=None, keepdim=False):
    # np.argmax: first index on ties, and a NaN counts as the maximum (the first NaN wins).
    if dim is None:
        i = np.argmax(x)
        return np.full((1,) * x.ndim if keepdim else (), i, dtype=np.int64)
    if x.ndim == 0:
        return np.zeros((), np.int64)
    return np.argmax(x, axis=dim, keepdims=keepdim).astype(np.int64)


# ---- loss -------------------------------------------------------------------------------

def _ce_rows(x, t, ignore_index):
    """(logits (N, C), targets (N,), mask of counted rows, unbatched?)"""
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None, :], np.reshape(t, (1,))
    mask = t != ignore_index
    return x, np.where(mask, t, 0), mask, unbatched


def cross_entropy(x, t, reduction="mean", ignore_index=-100):
    x, tt, mask, unbatched = _ce_rows(x, t, ignore_index)
    lsm = log_softmax(x, 1)
    picked = lsm[np.arange(len(tt)), tt] if len(tt) else np.zeros(0)
    losses = np.where(mask, -picked, 0.0)
    if reduction == "none":
        return losses[0] if unbatched else losses
    if reduction == "sum":
        return np.sum(losses)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(losses) / np.sum(mask)  # no counted targets: 0/0 = NaN, as PyTorch


def cross_entropy_grad(x, t, g, reduction="mean", ignore_index=-100):
    shape = x.shape
    x, tt, mask, unbatched = _ce_rows(x, t, ignore_index)
    d = softmax(x, 1)
    d[np.arange(len(tt)), tt] -= 1.0
    d *= mask[:, None]
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        d *= np.reshape(g, (-1, 1))
    else:
        # all rows ignored: every row's gradient is 0 (not 0 * 1/0)
        d *= g / (max(int(np.sum(mask)), 1) if reduction == "mean" else 1.0)
    return [d.reshape(shape), None]


def mse_loss(x, y, reduction="mean"):
    d = (x - y) ** 2
    if reduction == "none":
        return d
    if reduction == "sum":
        return np.sum(d)
    with np.errstate(invalid="ignore"):
        return np.sum(d) / d.size if d.size else np.float64(np.nan)


def mse_loss_grad(x, y, g, reduction="mean"):
    s = 2.0 * (x - y) * g / (x.size if reduction == "mean" else 1.0)
    return [s, -s]


# ---- elementwise ------------------------------------------------------------------------


# ---- reduce -----------------------------------------------------------------------------


# ---- optim ------------------------------------------------------------------------------
