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

_ACT_FWD = {"none": lambda z: z, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "gelu": gelu,
            "softplus": softplus}
_ACT_GRAD = {"none": lambda z, g: [g], "relu": relu_grad, "sigmoid": sigmoid_grad,
             "tanh": tanh_grad, "gelu": gelu_grad, "softplus": softplus_grad}


def linear(x, w, b=None, act="none"):
    z = x @ w.T
    if b is not None:
        z = z + b
    return _ACT_FWD[act](z)


def linear_grad(x, w, b, g, act="none"):
    """[dx, dw, db] of sum(linear(x, w, b, act) * g); x (*, in) with any leading dims."""
    x2 = x.reshape(-1, x.shape[-1])
    z = x2 @ w.T + (0.0 if b is None else b)
    dz = _ACT_GRAD[act](z, g.reshape(z.shape))[0]
    return [(dz @ w).reshape(x.shape), dz.T @ x2, None if b is None else dz.sum(0)]


def matmul(a, b):
    return np.matmul(a, b)


def _unbroadcast(g, shape):
    """Sum g down to `shape` over the dims broadcasting added (leading) or stretched (1s)."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def matmul_grad(a, b, g):
    """[da, db] of sum(matmul(a, b) * g), 1-D operands promoted as np.matmul does."""
    A = a[None, :] if a.ndim == 1 else a
    B = b[:, None] if b.ndim == 1 else b
    G = g.reshape(np.matmul(A, B).shape)  # put back the dims a 1-D operand dropped
    da = _unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape)
    db = _unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape)
    return [da.reshape(a.shape), db.reshape(b.shape)]


# ---- softmax ----------------------------------------------------------------------------


# ---- loss -------------------------------------------------------------------------------


# ---- elementwise ------------------------------------------------------------------------


# ---- reduce -----------------------------------------------------------------------------


# ---- optim ------------------------------------------------------------------------------
