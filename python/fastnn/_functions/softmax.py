"""softmax / log_softmax along any dim, argmax.

TEMPORARY: NumPy stand-in; replaced by the C++ kernels (csrc/cpu/softmax.cpp).
Contract: softmax(x, dim), log_softmax(x, dim), argmax(x, dim=None, keepdim=False) -> int64.
"""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor, _aligned_copy, float32, int64


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, log):
        m = np.max(x, axis=dim, keepdims=True)
        e = np.exp(x - m)
        s = np.sum(e, axis=dim, keepdims=True)
        y = (x - m - np.log(s)) if log else e / s
        ctx.y, ctx.dim, ctx.log = y, dim, log
        return _aligned_copy(y, float32)

    @staticmethod
    def backward(ctx, g):
        y, dim = ctx.y, ctx.dim
        if ctx.log:
            return (g - np.exp(y) * np.sum(g, axis=dim, keepdims=True)).astype(np.float32)
        return (y * (g - np.sum(g * y, axis=dim, keepdims=True))).astype(np.float32)


def softmax(x, dim):
    return Softmax.apply(x, dim % max(x.ndim, 1), False)


def log_softmax(x, dim):
    return Softmax.apply(x, dim % max(x.ndim, 1), True)


def argmax(x, dim=None, keepdim=False):
    a = x._data
    if dim is None:
        return Tensor._make(_aligned_copy(np.asarray(np.argmax(a)), int64))
    return Tensor._make(_aligned_copy(np.argmax(a, axis=dim, keepdims=keepdim), int64))
