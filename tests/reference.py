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
