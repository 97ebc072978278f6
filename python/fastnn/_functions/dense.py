"""linear (x @ W^T + b with a fused activation) and matmul.

TEMPORARY: NumPy stand-in; replaced by the C++ GEMM (csrc/cpu/gemm.cpp, csrc/ops/dense.cpp).
Contract: linear(x (*, in), weight (out, in), bias (out,) or None, act="none"|"relu"|
"sigmoid"|"tanh"|"gelu"|"softplus") -> (*, out); matmul(a, b) with NumPy/PyTorch matmul
semantics (1-D, 2-D, batched with broadcasting).
"""
import numpy as np

from ..autograd import Function
from ..tensor import _aligned_copy, float32
from . import activation as _act


class Linear(Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.x, ctx.w = x, w
        y = x @ w.T
        if b is not None:
            y = y + b
        return _aligned_copy(y, float32)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.x, ctx.w
        g2 = g.reshape(-1, g.shape[-1])
        return ((g @ w).astype(np.float32), (g2.T @ x.reshape(-1, x.shape[-1])).astype(np.float32),
                g2.sum(0).astype(np.float32))


def linear(x, weight, bias=None, act="none", beta=1.0, threshold=20.0):
    y = Linear.apply(x, weight, bias)
    return y if act in ("none", "identity") else _act._apply(y, act, beta, threshold)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return _aligned_copy(np.asarray(a @ b), float32)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = gb = None
        if a.ndim >= 2 and b.ndim >= 2:
            ga = (g @ np.swapaxes(b, -1, -2)).astype(np.float32)
            gb = (np.swapaxes(a, -1, -2) @ g).astype(np.float32)
        return ga, gb


def matmul(a, b):
    return MatMul.apply(a, b)
