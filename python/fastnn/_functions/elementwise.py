"""Elementwise arithmetic with NumPy broadcasting: C++ kernels (csrc/cpu/elementwise.cpp).

Contract used by tensor.py and the rest of the package:
  add, sub, mul, div, pow, maximum, minimum (a, b: Tensor or Python number, broadcasting,
  int64 op float -> float32), neg, abs, exp, log, sqrt (x), clamp(x, min, max),
  compare(a, b, op) with op in eq/ne/lt/le/gt/ge -> bool tensor,
  add_inplace(dst, src): dst += src on same-shape float32 arrays (gradient accumulation),
  inplace(t, other, op, alpha): t.add_/mul_/div_.

Type promotion (as PyTorch, restricted to float32 and int64): int64 op float32 -> float32;
a Python float with an int64 tensor -> float32; a Python int keeps the tensor's dtype.
Division is true division (int64 / int64 -> float32), and pow on int64 is computed in float32
(a documented difference: PyTorch keeps int64 there).
"""
import math
import numbers

import numpy as np

from .. import _C
from ..autograd import Function
from ..tensor import (Tensor, _ND, _aligned, _contig, _device_of, _dtype_of, _host_only, _is_host,
                      _kernels, _same_device,
                      _to_device, bool_, float32, int64, tensor)
from .shape import sum_to_shape
from ._check import check_tensor, named_as

_BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
_BINARY_CODE = {op: i for i, op in enumerate(_BINARY)}  # _C.binary_op's op codes
_INT_OK = ("add", "sub", "mul", "maximum", "minimum")  # int64 kernels; div/pow go via float32


_BOOL = np.dtype(np.bool_)
_F32 = np.dtype(np.float32)
_F32_MAX = float(np.finfo(np.float32).max)
_I64_MIN, _I64_MAX = -2 ** 63, 2 ** 63 - 1


def _broadcasts(sa, sb):
    """Whether shapes sa and sb broadcast (NumPy rules); np.broadcast_shapes costs ~2 us."""
    for x, y in zip(reversed(sa), reversed(sb)):
        if x != y and x != 1 and y != 1:
            return False
    return True


def _is_number(x):
    return isinstance(x, numbers.Number) and not isinstance(x, complex)


def _as_pair(a, b, op="elementwise"):
    """Both operands as Tensors of one dtype, promoting as PyTorch does."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        da, db = a._data.dtype, b._data.dtype
        if da is db and da is not _BOOL:  # the common case: nothing to promote
            return a, b
    ta = a if isinstance(a, Tensor) else None
    tb = b if isinstance(b, Tensor) else None
    if ta is None and tb is None:
        raise TypeError(f"[{op}] at least one argument must be a Tensor")
    ref = ta if ta is not None else tb

    def wrap(x):
        if isinstance(x, bool):
            x = int(x)
        # A Python float (or anything next to a float32 tensor) becomes float32; a Python int
        # next to an int64 tensor stays int64. Arrays and lists follow tensor()'s rules.
        to_float = isinstance(x, float) or ref.dtype is float32
        if type(ref._data) is _ND:
            # The common case, a finite Python number that fits the dtype next to a host
            # tensor: a 0-d array directly (tensor()'s general conversion costs ~1.5 us more).
            # Anything else (inf, NaN, out of range) takes tensor()'s way and its messages.
            if to_float:
                if (type(x) is float or type(x) is int) and -_F32_MAX <= x <= _F32_MAX:
                    return Tensor._make(np.array(_f32(x)))
            elif type(x) is int and _I64_MIN <= x <= _I64_MAX:
                return Tensor._make(np.array(x, dtype=np.int64))
        # NOTE: a number next to a CUDA tensor becomes a 0-d CUDA tensor (one small host to
        # device copy): the kernels take two arrays on one device.
        dev = None if type(ref._data) is _ND else ref.device
        try:
            return tensor(x, dtype=float32 if to_float else None, device=dev)
        except (TypeError, ValueError) as e:
            raise TypeError(f"[{op}] other must be a Tensor or a number, got "
                            f"{type(x).__name__}: {e}") from None

    if ta is None:
        a = wrap(a)
    if tb is None:
        b = wrap(b)
    # Bool masks (from comparisons) count as integers: mask * x works as in PyTorch.
    if a.dtype is bool_:
        a = a.long()
    if b.dtype is bool_:
        b = b.long()
    if a.dtype is not b.dtype:
        a, b = a.float(), b.float()
    return a, b


_LINEAR_OPS = ("add", "sub")


class Binary(Function):
    @staticmethod
    def forward(ctx, a, b, op):
        a, b = _contig(a), _contig(b)
        ctx.op = op
        # Only what backward reads is kept, as PyTorch saves it (an input changed in place
        # afterwards raises in backward only if its gradient needed it): add and sub need the
        # shapes alone; a * b needs b for a's gradient and a for b's; a / b needs b, and a
        # for b's gradient.
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.shapes = (a.shape, b.shape)
        if op in _LINEAR_OPS:
            ctx.save_for_backward()
        elif op == "mul":
            ctx.save_for_backward(a if need_b else None, b if need_a else None)
        elif op == "div":
            ctx.save_for_backward(a if need_b else None, b)
        else:
            ctx.save_for_backward(a, b)
        if type(a) is _ND:
            return _C.binary_op(a, b, _BINARY_CODE[op])
        return _kernels(a).binary(a, b, op)

    @staticmethod
    def backward(ctx, g):
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        op = ctx.op
        g = _contig(g)
        K = (_C if type(g) is _ND else _kernels(g))
        sa, sb = ctx.shapes
        if op in _LINEAR_OPS:
            if op == "add":  # the gradient passes through unchanged: no kernel, no copy
                ga, gb = g, g
            else:
                ga, gb = g, (K.unary(g, "neg") if need_b else None)
        else:
            a, b = ctx.saved_tensors
            if a is None:  # mul or div, a's gradient only: g * b or g / b
                ga, gb = K.binary(g, _contig(b), op), None
            elif b is None:  # mul, b's gradient only: g * a
                ga, gb = None, K.binary(g, _contig(a), op)
            else:
                ga, gb = K.binary_bwd(g, a, b, op, need_a, need_b)
        return (sum_to_shape(ga, sa) if need_a else None,
                sum_to_shape(gb, sb) if need_b else None, None)


def _binary(a, b, op):
    a, b = _as_pair(a, b, op)
    if type(a._data) is not _ND or type(b._data) is not _ND:
        _same_device(op, a, b)
    if a.dtype is int64 and op not in _INT_OK:
        a, b = a.float(), b.float()  # true division; pow in float32
    # Checked here too (the kernel checks again) so the error names the op before any cast.
    sa, sb = a._data.shape, b._data.shape
    if sa != sb and not _broadcasts(sa, sb):
        raise ValueError(f"[{op}] shapes {tuple(sa)} and {tuple(sb)} do not broadcast")
    return Binary.apply(a, b, op)


def add(a, b): return _binary(a, b, "add")
def sub(a, b): return _binary(a, b, "sub")
def mul(a, b): return _binary(a, b, "mul")
def div(a, b): return _binary(a, b, "div")
def pow(a, b): return _binary(a, b, "pow")


# The general routes of Tensor's arithmetic operators (self, other) as Python calls them:
# Tensor.__add__ is _C.tensor_add_method, which does the common call (float32 host tensors,
# or a tensor and a Python number, nothing to record) in C and hands every other call here.
_add_py, _sub_py, _mul_py, _div_py, _pow_py = add, sub, mul, div, pow
def _radd_py(a, b): return _binary(b, a, "add")
def _rsub_py(a, b): return _binary(b, a, "sub")
def _rmul_py(a, b): return _binary(b, a, "mul")
def _rdiv_py(a, b): return _binary(b, a, "div")
def maximum(a, b): return _binary(a, b, "maximum")
def minimum(a, b): return _binary(a, b, "minimum")


class Unary(Function):
    @staticmethod
    def forward(ctx, x, op):
        x = _contig(x)
        y = (_C if type(x) is _ND else _kernels(x)).unary(x, op)
        ctx.op = op
        # exp and sqrt differentiate through their output, abs and log through the input.
        ctx.save_for_backward(x if op in ("abs", "log") else None,
                              y if op in ("exp", "sqrt") else None)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return (_C if type(g) is _ND else _kernels(g)).unary_bwd(_contig(g), x, y, ctx.op), None


def _check_tensor(x, op):
    return check_tensor(x, op, dtypes=(float32, int64))


# The general routes of neg, abs, exp, log and sqrt: each of those is a C entry
# (_C.tensor_neg, ...) that does the common call (a C-contiguous float32 host tensor with
# nothing to record) itself and hands every other call here unchanged.
@named_as("neg")
def _neg_py(x):
    return Unary.apply(_check_tensor(x, "neg"), "neg")


@named_as("abs")
def _abs_py(x):
    return Unary.apply(_check_tensor(x, "abs"), "abs")


# exp/log/sqrt of int64 give float32, as PyTorch.
@named_as("exp")
def _exp_py(x):
    return Unary.apply(_check_tensor(x, "exp").float(), "exp")


@named_as("log")
def _log_py(x):
    return Unary.apply(_check_tensor(x, "log").float(), "log")


@named_as("sqrt")
def _sqrt_py(x):
    return Unary.apply(_check_tensor(x, "sqrt").float(), "sqrt")


neg = _C.tensor_neg
abs = _C.tensor_abs
exp = _C.tensor_exp
log = _C.tensor_log
sqrt = _C.tensor_sqrt


class Clamp(Function):
    """min(max(x, lo), hi) with number bounds (either may be None), PyTorch's order: with
    lo > hi every element is hi. NaN stays NaN. The gradient passes where lo <= x <= hi,
    the bounds included, as PyTorch's clamp backward (0 elsewhere, and at NaN).
    On a CUDA tensor the forward runs the backend's maximum/minimum kernels (NOTE: which
    return the bound, not x, when x is a zero of the other sign: clamp(-0.0, min=0.0) is +0
    there, -0 on the CPU and in PyTorch) and the backward builds that mask on the host (one
    copy of x each way; the backend has no comparison kernel), then multiplies on the
    device."""
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        if type(x) is not _ND:
            K, dev = _kernels(x), _device_of(x)
            out = x
            for v, op in ((lo, "maximum"), (hi, "minimum")):
                if v is not None:
                    out = K.binary(out, _to_device(np.asarray(v, np.float32), dev), op)
            return out
        if x.dtype == _F32:
            return _clamp_f32(x, lo, hi)
        out = _aligned(x.shape, _dtype_of(x.dtype))
        if lo is not None:
            np.maximum(x, lo, out=out)
            if hi is not None:
                np.minimum(out, hi, out=out)
        else:
            np.minimum(x, hi, out=out)
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.lo, ctx.hi
        xh = x if type(x) is _ND else x.numpy()
        keep = xh >= lo if lo is not None else xh <= hi
        if lo is not None and hi is not None:
            keep &= xh <= hi
        if type(g) is _ND:
            return np.where(keep, g, np.float32(0)), None, None
        m = _to_device(keep.astype(np.float32), _device_of(g))
        return _kernels(g).binary(_contig(g), m, "mul"), None, None


def _f32(v):
    """A Python number as the float32 PyTorch makes of it next to a float32 tensor, rounded
    once: an int within int64 through int64 (float(v) would round it to double first:
    2**60 + 2**36 + 1 became 2**60, PyTorch's is 2**60 + 2**37), anything else through float.
    The C routes round the same way (number_as_f32)."""
    if type(v) is int and _I64_MIN <= v <= _I64_MAX:
        return np.float32(np.int64(v))
    return np.float32(v)


def _clamp_f32(x, lo, hi):
    """Clamp's forward for a float32 host array: one kernel (cpu/elementwise.cpp's clamp_f32,
    PyTorch's rule at the bounds: -0 stays -0). NumPy's maximum/minimum took ~0.9 us each
    converting a Python number, and return the bound, not x, on a tie of zeros."""
    return _C.clamp(_contig(x), None if lo is None else float(_f32(lo)),
                    None if hi is None else float(_f32(hi)))


def _bound(v):
    """A clamp bound as a Python int or float, or None when it is not a plain number."""
    if type(v) in (int, float):
        return v
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)  # (np.longdouble's .item() stays a NumPy scalar)
    return None


def _plain_bound(v):
    """Whether v is None or a Python int or float inside float32's finite range."""
    return v is None or ((type(v) is float or type(v) is int) and -_F32_MAX <= v <= _F32_MAX)


@named_as("clamp")
def _clamp_py(input, min=None, max=None):  # noqa: A002 (PyTorch's names)
    """input limited to [min, max] (either bound may be None), as torch.clamp. fastnn.clamp and
    Tensor.clamp are _C.tensor_clamp, which does the common call (a float32 host tensor that
    records nothing, number bounds in float32's finite range) in C and hands the rest here.
    Number bounds run as one op with PyTorch's gradient (Clamp). Tensor bounds are
    maximum/minimum composed; NOTE: there, at x == min (or max) exactly, the gradient is split
    half/half with the bound (maximum's tie rule), where PyTorch passes all of it to x."""
    x = input
    # NOTE (speed): a strided float32 host tensor that records nothing, number bounds, past the
    # checks below.
    if type(x) is Tensor and _plain_bound(min) and _plain_bound(max) and not (
            min is None and max is None):
        d = x._plain()
        if d is not None and d.dtype == _F32:
            return Tensor._make(_clamp_f32(d, min, max))
    if min is None and max is None:
        raise ValueError("[clamp] at least one of min and max must be given")
    lo, hi = _bound(min), _bound(max)
    if (isinstance(x, Tensor) and (type(x._data) is _ND or x.dtype is float32)
            and (min is None or lo is not None) and (max is None or hi is not None)):
        if x._data.dtype == _BOOL:
            x = x.long()  # bool counts as int64 (0/1), as PyTorch's clamp gives
        x = _check_tensor(x, "clamp")
        if x.dtype is int64 and (type(lo) is float or type(hi) is float):
            x = x.float()  # an int64 tensor with a float bound gives float32, as PyTorch
        # A bound the tensor's dtype cannot hold is an error, as in PyTorch (+-inf and NaN
        # are float32 values).
        bounds = (_I64_MIN, _I64_MAX) if x.dtype is int64 else (-_F32_MAX, _F32_MAX)
        for name, v in (("min", lo), ("max", hi)):
            if v is not None and not bounds[0] <= v <= bounds[1] and not (
                    x.dtype is float32 and (math.isnan(v) or math.isinf(v))):
                raise ValueError(f"[clamp] {name} must be representable in the tensor's dtype "
                                 f"({x.dtype.name}), got {v}")
        d = x._plain()
        if d is not None and d.dtype == _F32:
            return Tensor._make(_clamp_f32(d, lo, hi))  # nothing to record
        return Clamp.apply(x, lo, hi)
    out = x
    if min is not None:
        out = maximum(out, min)
    if max is not None:
        out = minimum(out, max)
    return out


# _C.tensor_clamp (csrc/bindings/bind_autograd.cpp) for its common call.
clamp = _C.tensor_clamp


_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}


def compare(a, b, op):
    """a op b -> bool mask, with broadcasting; no gradient. The comparisons' general route:
    Tensor.__gt__ etc. do a float32 tensor against a number or a tensor of its shape in C
    (compare_plain), and hand the rest here, where NumPy compares."""
    # Same-dtype, same-shape host tensors and float32 against a number (a recorded tensor, an
    # int64 or bool one) first: NumPy alone. It gives what the general path below gives.
    ad = a._data if type(a) is Tensor else None
    if type(ad) is _ND:
        tb = type(b)
        if ((tb is float or tb is int) and ad.dtype == _F32 and -_F32_MAX <= b <= _F32_MAX) or (
                tb is Tensor and type(b._data) is _ND and b._data.dtype == ad.dtype
                and b._data.shape == ad.shape):
            r = _COMPARE[op](ad, b._data if tb is Tensor else _f32(b))
            return Tensor._make(r if type(r) is _ND else np.asarray(r))  # (0-d: a NumPy bool)
    if not isinstance(b, (Tensor, numbers.Number, np.ndarray, np.number)) or isinstance(b, complex):
        return NotImplemented
    for t in (a, b):
        if isinstance(t, Tensor):
            _host_only(t, op)
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype is b.dtype:
        pass  # same dtype (bool masks included): compare as they are
    else:
        with np.errstate(over="ignore"):  # (a number beyond float32 compares as +-inf)
            a, b = _as_pair(a, b, op)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"[{op}] shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                         f"broadcast") from None
    out = _COMPARE[op](a._data, b._data)
    return Tensor._make(np.asarray(out, dtype=np.bool_).reshape(shape))


# The comparisons' general routes: Tensor.__eq__ etc. are _C.tensor_eq_method, ... (csrc/
# bindings/bind_autograd.cpp), which compare a float32 host tensor with a number or a tensor
# of its shape in C and hand every other call here.
def _compare_route(op):
    def route(a, b):
        return compare(a, b, op)
    route.__name__ = route.__qualname__ = f"_{op}_py"
    return route


_eq_py, _ne_py, _lt_py, _le_py, _gt_py, _ge_py = map(_compare_route, _COMPARE)


def add_inplace(dst, src):
    """dst += src for same-shape float32 arrays (gradient accumulation): one kernel pass."""
    (_C if type(dst) is _ND else _kernels(dst)).binary_inplace(dst, _contig(src), "add", 1.0, "add_")


def inplace(t, other, op, alpha):
    """t.add_(other, alpha) / t.mul_(other) / t.div_(other): other (a Tensor or a number)
    broadcasts onto t's shape, never the reverse; t keeps its dtype, so a float operand on an
    int64 tensor (or div_ on one) is a TypeError, as PyTorch."""
    name = op + "_"
    if isinstance(other, Tensor):
        _same_device(name, t, other)
        o = other._data
    elif _is_number(other) or isinstance(other, np.number):
        o = np.asarray(other)
    else:
        raise TypeError(f"[{name}] other must be a Tensor or a number, got {type(other).__name__}")
    data = t._data
    if not _is_host(data):
        return _inplace_device(data, o, t.dtype, op, alpha, name)
    dt = t.dtype
    if dt is int64 and (o.dtype.kind == "f" or (op == "add" and isinstance(alpha, float)
                                                 and alpha != int(alpha))):
        raise TypeError(f"[{name}] result type float32 can't be cast to the desired output "
                        f"type int64")
    if o.dtype.kind == "b":
        o = o.astype(dt.np)
    if o.dtype != dt.np:
        o = o.astype(dt.np)  # int operand on a float32 tensor (lossless for |x| < 2^24)
    o = _contig(o)
    if data.flags.c_contiguous:
        _C.binary_inplace(data, o, op, float(alpha), name)
    else:
        # The kernel takes contiguous arrays: update a contiguous copy and write it back
        # through the view (a copy, no arithmetic on the NumPy side).
        tmp = np.ascontiguousarray(data)
        _C.binary_inplace(tmp, o, op, float(alpha), name)
        np.copyto(data, tmp)


def _inplace_device(data, o, dt, op, alpha, name):
    """inplace() on a CUDA tensor: o (a device array, or a host number) as t's dtype on t's
    device, then the backend's binary_inplace (CUDA arrays are always contiguous)."""
    if dt is int64 and (o.dtype.kind == "f" or (op == "add" and isinstance(alpha, float)
                                                 and alpha != int(alpha))):
        raise TypeError(f"[{name}] result type float32 can't be cast to the desired output "
                        f"type int64")
    if o.dtype is not dt.np:
        o = o.astype(dt.np) if _is_host(o) else o.astype(dt.name)
    if _is_host(o):  # a Python number: a 0-d array on the device
        o = _to_device(_contig(o), _device_of(data))
    _kernels(data).binary_inplace(data, o, op, float(alpha), name)


# ---- floor division and remainder (a // b, a % b), on the host --------------------------------
class FloorMod(Function):
    """a // b (floor_divide) or a % b (remainder, the divisor's sign, as Python and PyTorch),
    NumPy's float32 / int64 arithmetic. remainder's gradient: g for a, -g floor(a / b) for b;
    floor_divide's is not defined (PyTorch's raises in backward, and so does this one)."""

    @staticmethod
    def forward(ctx, a, b, op):
        ctx.op, ctx.shapes = op, (a.shape, b.shape)
        if op == "remainder" and ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        fn = np.floor_divide if op == "floor_divide" else np.remainder
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.asarray(fn(a, b))
        return r if r.flags.c_contiguous else np.ascontiguousarray(r)

    @staticmethod
    def backward(ctx, g):
        if ctx.op == "floor_divide":
            raise RuntimeError("[floor_divide] the derivative of floor_divide is not "
                               "implemented (as in PyTorch; it is 0 almost everywhere): "
                               "divide detached tensors, a.detach() // b.detach()")
        sa, sb = ctx.shapes
        need_a, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g = np.asarray(g)
        ga = sum_to_shape(g, sa) if need_a else None
        gb = None
        if need_b:
            a, b = ctx.saved_tensors
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                q = np.floor_divide(a, b).astype(np.float32)
            gb = sum_to_shape(np.ascontiguousarray(-g * q, dtype=np.float32), sb)
        return ga, gb, None


def _floor_mod(a, b, op):
    a, b = _as_pair(a, b, op)
    _host_only(a, op)
    _host_only(b, op)
    sa, sb = a._data.shape, b._data.shape
    if sa != sb and not _broadcasts(sa, sb):
        raise ValueError(f"[{op}] shapes {tuple(sa)} and {tuple(sb)} do not broadcast")
    if a.dtype is int64 and (b._data == 0).any():
        raise RuntimeError(f"[{op}] integer division by zero (ZeroDivisionError, as PyTorch)")
    return FloorMod.apply(a, b, op)


def floor_divide(input, other):  # noqa: A002 (PyTorch's names)
    """input // other, rounded toward minus infinity (PyTorch's floor_divide)."""
    return _floor_mod(input, other, "floor_divide")


def remainder(input, other):  # noqa: A002
    """input % other with the divisor's sign (Python's and PyTorch's remainder)."""
    return _floor_mod(input, other, "remainder")
