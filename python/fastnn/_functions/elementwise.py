"""Elementwise arithmetic with NumPy broadcasting.

TEMPORARY: NumPy stand-in; replaced by the C++ kernels (csrc/cpu/elementwise.cpp).
Contract used by tensor.py and the rest of the package:
  add, sub, mul, div, pow, maximum, minimum (a, b: Tensor or Python number, broadcasting,
  int64 op float -> float32), neg, abs, exp, log, sqrt (x), clamp(x, min, max),
  compare(a, b, op) with op in eq/ne/lt/le/gt/ge -> bool tensor,
  add_inplace(dst, src): dst += src on same-shape float32 arrays (gradient accumulation),
  inplace(t, other, op, alpha): t.add_/mul_/div_.
"""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor, _aligned_copy, _dtype_of, tensor, float32
from .shape import sum_to_shape


def _as_pair(a, b):
    ta = a if isinstance(a, Tensor) else None
    tb = b if isinstance(b, Tensor) else None
    if ta is None and tb is None:
        raise TypeError("[elementwise] at least one argument must be a Tensor")
    ref = ta if ta is not None else tb
    if ta is None:
        a = tensor(a, dtype=float32 if (isinstance(a, float) or ref.dtype is float32) else None)
    if tb is None:
        b = tensor(b, dtype=float32 if (isinstance(b, float) or ref.dtype is float32) else None)
    if a.dtype is not b.dtype:
        a, b = a.float(), b.float()
    return a, b


class Binary(Function):
    @staticmethod
    def forward(ctx, a, b, op):
        ctx.op, ctx.a, ctx.b = op, a, b
        out = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
               "pow": np.power, "maximum": np.maximum, "minimum": np.minimum}[op](a, b)
        return _aligned_copy(out, _dtype_of(out.dtype if out.dtype != np.float64 else np.float32))

    @staticmethod
    def backward(ctx, g):
        a, b, op = ctx.a, ctx.b, ctx.op
        if op == "add":
            ga, gb = g, g
        elif op == "sub":
            ga, gb = g, -g
        elif op == "mul":
            ga, gb = g * b, g * a
        elif op == "div":
            ga, gb = g / b, -g * a / (b * b)
        elif op == "pow":
            ga = g * b * np.power(a, b - 1)
            gb = g * np.power(a, b) * np.log(np.where(a > 0, a, 1))
        else:
            m = (a >= b) if op == "maximum" else (a <= b)
            ga, gb = g * m, g * ~m
        return (sum_to_shape(np.asarray(ga, np.float32), a.shape),
                sum_to_shape(np.asarray(gb, np.float32), b.shape), None)


def _binary(a, b, op):
    a, b = _as_pair(a, b)
    if op == "div" and a.dtype is not float32:
        a, b = a.float(), b.float()
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"[{op}] shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None
    return Binary.apply(a, b, op)


def add(a, b): return _binary(a, b, "add")
def sub(a, b): return _binary(a, b, "sub")
def mul(a, b): return _binary(a, b, "mul")
def div(a, b): return _binary(a, b, "div")
def pow(a, b): return _binary(a, b, "pow")
def maximum(a, b): return _binary(a, b, "maximum")
def minimum(a, b): return _binary(a, b, "minimum")


class Unary(Function):
    @staticmethod
    def forward(ctx, x, op):
        ctx.x, ctx.op = x, op
        out = {"neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt}[op](x)
        ctx.y = out
        return _aligned_copy(out, _dtype_of(x.dtype))

    @staticmethod
    def backward(ctx, g):
        x, y, op = ctx.x, ctx.y, ctx.op
        d = {"neg": lambda: -g, "abs": lambda: g * np.sign(x), "exp": lambda: g * y,
             "log": lambda: g / x, "sqrt": lambda: g / (2 * y)}[op]()
        return np.asarray(d, np.float32), None


def neg(x): return Unary.apply(x, "neg")
def abs(x): return Unary.apply(x, "abs")
def exp(x): return Unary.apply(x.float(), "exp")
def log(x): return Unary.apply(x.float(), "log")
def sqrt(x): return Unary.apply(x.float(), "sqrt")


def clamp(x, min=None, max=None):
    out = x
    if min is not None:
        out = maximum(out, min)
    if max is not None:
        out = minimum(out, max)
    return out


def compare(a, b, op):
    if not isinstance(b, (Tensor, int, float, np.ndarray, np.number)):
        return NotImplemented
    a, b = _as_pair(a, b)
    f = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
         "gt": np.greater, "ge": np.greater_equal}[op]
    return Tensor._make(f(a._data, b._data))


def add_inplace(dst, src):
    dst += src


def inplace(t, other, op, alpha):
    o = other._data if isinstance(other, Tensor) else other
    if op == "add":
        t._data += alpha * o if alpha != 1 else o
    elif op == "mul":
        t._data *= o
    else:
        t._data /= o
