"""sum / mean / max / min over all elements or along dims.

TEMPORARY: NumPy stand-in; replaced by the C++ kernels (csrc/cpu/reduce.cpp).
Contract: sum(x, dim=None, keepdim=False), mean(...), max(x, dim=None, keepdim=False) ->
Tensor, or a (values, indices) named tuple when dim is given (as PyTorch); min likewise;
sum_axes(arr, axes) -> float32 array summed over `axes` (no keepdims), used by broadcasting.
"""
import builtins
import collections

import numpy as np

from ..autograd import Function
from ..tensor import _aligned_copy, _dtype_of, float32, int64

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(d % builtins.max(ndim, 1) for d in dims)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, scale):
        ctx.shape, ctx.axes, ctx.keepdim, ctx.scale = x.shape, axes, keepdim, scale
        out = np.sum(x, axis=axes, keepdims=keepdim) * scale
        return _aligned_copy(np.asarray(out), _dtype_of(x.dtype))

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.axes)
        return np.ascontiguousarray(np.broadcast_to(g * np.float32(ctx.scale), ctx.shape), np.float32)


def sum(x, dim=None, keepdim=False):
    if x.dtype.name == "bool":
        x = x.long()
    return Sum.apply(x, _axes(dim, x.ndim), keepdim, 1)


def mean(x, dim=None, keepdim=False):
    axes = _axes(dim, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    return Sum.apply(x.float(), axes, keepdim, (1.0 / n) if n else float("nan"))


class Max(Function):
    @staticmethod
    def forward(ctx, x, dim, keepdim, sign):
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        idx = np.argmax(x * sign if sign < 0 else x, axis=dim)
        vals = np.take_along_axis(x, np.expand_dims(idx, dim), dim)
        ctx.idx = idx
        if not keepdim:
            vals = np.squeeze(vals, dim)
        return _aligned_copy(vals, _dtype_of(x.dtype)), _aligned_copy(
            idx if not keepdim else np.expand_dims(idx, dim), int64)

    @staticmethod
    def backward(ctx, g, gi):
        gx = np.zeros(ctx.shape, np.float32)
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        np.put_along_axis(gx, np.expand_dims(ctx.idx, ctx.dim), g, ctx.dim)
        return gx


def _extreme(x, dim, keepdim, sign):
    if dim is None:
        flat = x.reshape(-1)
        v, _ = Max.apply(flat, 0, False, sign)
        return v
    return values_indices(*Max.apply(x, dim % builtins.max(x.ndim, 1), keepdim, sign))


def max(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, 1)


def min(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, -1)


def sum_axes(a, axes):
    return np.sum(a, axis=axes).astype(np.float32)
