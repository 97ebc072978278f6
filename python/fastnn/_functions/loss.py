"""Cross-entropy (fused with log-softmax) and MSE/SSR.

TEMPORARY: NumPy stand-in; replaced by the C++ kernels (csrc/cpu/loss.cpp).
Contract: cross_entropy(input (N, C), target int64 (N,), reduction="mean"|"sum"|"none"),
mse_loss(input, target, reduction="mean"|"sum"|"none").
"""
import numpy as np

from ..autograd import Function
from ..tensor import _aligned_copy, float32


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, t, reduction):
        m = np.max(x, axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(x - m), axis=1, keepdims=True)) + m
        losses = (lse[:, 0] - x[np.arange(len(t)), t])
        ctx.p = np.exp(x - lse)
        ctx.t, ctx.red = t, reduction
        out = {"mean": lambda: losses.mean(), "sum": lambda: losses.sum(), "none": lambda: losses}[reduction]()
        return _aligned_copy(np.asarray(out), float32)

    @staticmethod
    def backward(ctx, g):
        d = ctx.p.copy()
        d[np.arange(len(ctx.t)), ctx.t] -= 1
        if ctx.red == "mean":
            d *= g / max(len(ctx.t), 1)
        elif ctx.red == "sum":
            d *= g
        else:
            d *= g[:, None]
        return d.astype(np.float32), None, None


def cross_entropy(input, target, reduction="mean", ignore_index=-100):
    return CrossEntropy.apply(input, target, reduction)


class MSE(Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        d = x - y
        ctx.d, ctx.red = d, reduction
        out = {"mean": lambda: np.mean(d * d), "sum": lambda: np.sum(d * d), "none": lambda: d * d}[reduction]()
        return _aligned_copy(np.asarray(out), float32)

    @staticmethod
    def backward(ctx, g):
        scale = 2.0 / max(ctx.d.size, 1) if ctx.red == "mean" else 2.0
        gx = (ctx.d * g * scale).astype(np.float32)
        return gx, -gx, None


def mse_loss(input, target, reduction="mean"):
    return MSE.apply(input, target, reduction)
