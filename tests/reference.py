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


# ---- loss -------------------------------------------------------------------------------


# ---- elementwise ------------------------------------------------------------------------


# ---- reduce -----------------------------------------------------------------------------


# ---- optim ------------------------------------------------------------------------------


def sgd_step(p, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False):
    """One SGD step of PyTorch's rule on float64 arrays. buf=None means "no buffer yet" (the
    first step with momentum). Returns (new_p, new_buf or None)."""
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    new_buf = None
    if momentum != 0:
        new_buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        g = g + momentum * new_buf if nesterov else new_buf
    return p - lr * g, new_buf


def adam_step(p, g, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              maximize=False):
    """One Adam step (Kingma & Ba with PyTorch's eps placement) on float64 arrays; t counts
    this step (1 on the first). Returns (new_p, new_m, new_v)."""
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
    return p - (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps), m, v
