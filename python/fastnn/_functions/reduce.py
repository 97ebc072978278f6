"""sum / mean / max / min over all elements or along dims: C++ kernels (csrc/cpu/reduce.cpp).

Contract: sum(x, dim=None, keepdim=False), mean(...), max(x, dim=None, keepdim=False) ->
Tensor, or a (values, indices) named tuple when dim is given (as PyTorch); min likewise;
var/std(x, dim=None, unbiased=True, keepdim=False, *, correction=None), argmin(x, dim=None,
keepdim=False), any/all(x, dim=None, keepdim=False) as PyTorch's;
sum_axes(arr, axes) -> float32 array summed over `axes` (no keepdims), used by broadcasting.

NOTE on accuracy: float32 sums along the innermost dim use pairwise (cascade) float32
summation; sums along other dims accumulate in double. Either way a sum of 1e6 elements is
accurate to a few float32 ulps, not the ~n*eps of a running float32 sum.
"""
import builtins
import collections
import math
import numbers

import numpy as np

from .. import _C
from ..autograd import Function
from ..autograd import no_grad
from ..tensor import (_ND, Tensor, _as_index, _contig, _host_only, _is_host, _kernels,
                      _resolve_dtype, float32)
from ._check import check_tensor, named_as, wrap_dim

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
_I64 = np.dtype(np.int64)

values_indices = collections.namedtuple("values_indices", ["values", "indices"])


def _dims(dim, ndim, op):
    """dim argument -> None (all dims) or a list of dims wrapped into [0, ndim) (IndexError
    out of range, RuntimeError for a dim given twice, as PyTorch, naming op)."""
    if dim is None:
        return None
    if not isinstance(dim, (tuple, list)):
        return [wrap_dim(dim, ndim, op)]
    out = []
    for d in dim:
        try:
            d = _as_index(d)
        except TypeError:
            raise TypeError(f"[{op}] dim must be an int or a tuple of ints, got {dim!r}") from None
        w = wrap_dim(d, ndim, op)
        if w in out:
            raise RuntimeError(f"[{op}] dim {w} appears multiple times in the list of dims "
                             f"{tuple(dim)}")
        out.append(w)
    return out or None  # dim=() reduces everything, as PyTorch


def _keep_shape(shape, dims):
    """The output shape with keepdim=True: reduced dims (None: all) set to 1."""
    nd = len(shape)
    if dims is None:
        return (1,) * nd
    red = {d % nd for d in dims} if nd else set()
    return tuple(1 if i in red else s for i, s in enumerate(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, mean):
        x = _contig(x)
        ctx.shape, ctx.dims, ctx.mean = x.shape, dims, mean
        return (_C if type(x) is _ND else _kernels(x)).sum(x, dims, keepdim, mean)

    @staticmethod
    def backward(ctx, g):
        shape = ctx.shape
        kept = _keep_shape(shape, ctx.dims)
        # (this module's sum/max/min shadow the builtins: math.prod only below)
        n, n_out = math.prod(shape), math.prod(kept)
        count = n // n_out if n_out else 0  # elements behind each output
        scale = 1.0 / count if (ctx.mean and count) else 1.0
        # g has the output's shape; viewing it with the reduced dims as 1 lets the kernel
        # broadcast it back over them.
        return (_C if type(g) is _ND else _kernels(g)).expand(_contig(g).reshape(kept), list(shape), scale)


def _check(x, op):
    check_tensor(x, op, dtypes=None)


def _keepdim(keepdim, op):
    """keepdim must be a bool (True or False), as PyTorch's argument parser has it."""
    if type(keepdim) is not bool:
        t = type(keepdim)
        name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"
        raise TypeError(f"[{op}] keepdim must be a bool, got {name}")
    return keepdim


@named_as("sum")
def _sum_py(input, dim=None, keepdim=False, dtype=None):  # noqa: A002 (PyTorch's name)
    """sum's general route. fastnn.sum and Tensor.sum are _C.tensor_sum, which does the common
    call (a float32 host tensor with nothing to record, dim None or an int, keepdim a bool)
    in C and hands every other call here as it was made. dtype casts the input before the
    sum, as PyTorch (sum([0.6, 0.6], dtype=int64) is 0)."""
    _check(input, "sum")
    if dtype is not None:
        input = input.type(dtype)
    if input._data.dtype == _BOOL:
        input = input.long()
    return Sum.apply(input, _dims(dim, input.ndim, "sum"), _keepdim(keepdim, "sum"), False)


@named_as("mean")
def _mean_py(input, dim=None, keepdim=False, dtype=None):  # noqa: A002
    """mean's general route (fastnn.mean and Tensor.mean are _C.tensor_mean; see _sum_py)."""
    _check(input, "mean")
    if dtype is not None:
        dtype = _resolve_dtype(dtype, "mean")
        if dtype is not float32:
            raise TypeError(f"[mean] dtype must be float32, got {dtype.name}")
        input = input.type(dtype)
    if input._data.dtype != _F32:
        raise TypeError(f"[mean] input must be float32 (PyTorch refuses the mean of integer "
                        f"tensors: use x.float().mean() or dtype=fastnn.float32), got "
                        f"{input.dtype}")
    return Sum.apply(input, _dims(dim, input.ndim, "mean"), _keepdim(keepdim, "mean"), True)


# _C.tensor_sum / tensor_mean (csrc/bindings/bind_autograd.cpp) for their common calls.
sum = _C.tensor_sum
mean = _C.tensor_mean


class ExtremeAll(Function):
    @staticmethod
    def forward(ctx, x, is_max):
        x = _contig(x)
        v = (_C if type(x) is _ND else _kernels(x)).extreme(x, None, False, is_max)
        ctx.save_for_backward(x, v)
        ctx.is_max = is_max
        return v

    @staticmethod
    def backward(ctx, g):
        x, v = ctx.saved_tensors
        return (_C if type(x) is _ND else _kernels(x)).extreme_all_bwd(x, v, _contig(g), ctx.is_max), None


class ExtremeDim(Function):
    @staticmethod
    def forward(ctx, x, dim, keepdim, is_max):
        x = _contig(x)
        vals, idx = (_C if type(x) is _ND else _kernels(x)).extreme(x, dim, keepdim, is_max)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.is_max = x.shape, dim, keepdim, is_max
        ctx.save_for_backward(idx)
        return vals, idx

    @staticmethod
    def backward(ctx, g, gi):
        (idx,) = ctx.saved_tensors
        return ((_C if type(g) is _ND else _kernels(g)).extreme_dim_bwd(_contig(g), idx, list(ctx.shape), ctx.dim, ctx.keepdim,
                                   ctx.is_max), None, None, None)


def _extreme(x, dim, keepdim, is_max):
    op = "max" if is_max else "min"
    _check(x, op)
    dt = x._data.dtype
    if dt != _F32 and dt != _I64:
        raise TypeError(f"[{op}] input must be float32 or int64, got {x.dtype}")
    if dim is None:
        return ExtremeAll.apply(x, is_max)
    if type(dim) is not int:
        dim = wrap_dim(dim, x.ndim, op)  # (the type check and its message; C++ wraps again)
    return values_indices(*ExtremeDim.apply(x, int(dim), _keepdim(keepdim, op), is_max))


def max(x, dim=None, keepdim=False):
    """Largest element (0-d), or (values, indices) along dim. NaN counts as the largest and
    the first index wins ties, as PyTorch."""
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, False)


def argmin(x, dim=None, keepdim=False):
    """Index of the first minimum (NaN counts as the minimum), int64; over all elements
    (flattened) when dim is None, where keepdim gives every dim size 1, as PyTorch. Not
    differentiable."""
    _check(x, "argmin")
    if x._data.dtype != _F32 and x._data.dtype != _I64:
        raise TypeError(f"[argmin] input must be float32 or int64, got {x.dtype}")
    keepdim = _keepdim(keepdim, "argmin")
    with no_grad():
        # (ValueError for an empty reduction, as fastnn's argmax; PyTorch's is an IndexError)
        if dim is None:
            if x.numel() == 0:
                raise ValueError("[argmin] input is empty: an empty tensor has no minimum "
                                 "(pass dim to reduce a non-empty dim)")
            idx = _extreme(x.reshape(-1), 0, False, False).indices
            return idx.reshape((1,) * x.ndim) if keepdim else idx
        dim = wrap_dim(dim, x.ndim, "argmin")
        if x.ndim and x.shape[dim] == 0:
            raise ValueError(f"[argmin] dim {dim} of the input (shape {tuple(x.shape)}) is "
                             f"empty: it has no minimum")
        return _extreme(x, dim, keepdim, False).indices


def _any_all(x, dim, keepdim, op):
    """any / all: whether some / every element is non-zero (NaN counts as non-zero), bool.
    dim=() reduces nothing (PyTorch 2's any/all, unlike its sum): each element's truth."""
    _check(x, op)
    _host_only(x, op)  # (the comparisons it is built from are host-only for now)
    empty_dims = isinstance(dim, (tuple, list)) and len(dim) == 0
    dims = _dims(dim, x.ndim, op)
    keepdim = _keepdim(keepdim, op)
    with no_grad():
        if empty_dims:
            return x != 0
        # Counted as int64 so every device's sum kernel applies; counts cannot overflow.
        hits = (x != 0) if op == "any" else (x == 0)
        n = Sum.apply(hits.long(), dims, keepdim, False)
        return n > 0 if op == "any" else n == 0


def any(x, dim=None, keepdim=False):  # noqa: A001 (PyTorch's name)
    return _any_all(x, dim, keepdim, "any")


def all(x, dim=None, keepdim=False):  # noqa: A001
    return _any_all(x, dim, keepdim, "all")


_TINY = float(np.finfo(np.float32).tiny)
_F32_MAX = float(np.finfo(np.float32).max)


def _count(shape, dims):
    """How many elements each output of a reduction over dims (None: all) sums."""
    if dims is None:
        return math.prod(shape)
    nd = len(shape)
    return math.prod(shape[d % nd] for d in set(dims)) if nd else 1


class VarStd(Function):
    """var (or std, take_sqrt) over dims: sum((x - mean)^2) / (n - correction), n the count
    of elements reduced, as PyTorch (n - correction <= 0 divides by 0: inf, or NaN for 0/0).
    Two passes from the mean, with the float32 mean's rounding taken back out of the
    deviations (dev = x - mean - sum(x - mean) / n, the corrected two-pass form), with the
    library's ops. Backward: dx = g dev 2 / (n - correction) for var,
    g dev / ((n - correction) std) for std, and 0 where std is 0 (PyTorch's std backward);
    where n - correction <= 0 it is inf or NaN, as the forward (PyTorch's backward differs
    from its own forward there)."""

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim, take_sqrt):
        X = Tensor._make(x)
        denom = builtins.max(_count(x.shape, dims) - correction, 0.0)
        with no_grad():
            dev = X - X.mean(dims, keepdim=True)
            # The mean's float32 rounding taken back out of the deviations (clamped so that
            # an overflowed mean's inf leaves the deviations inf, as PyTorch's, not NaN).
            corr = (dev.sum(dims, keepdim=True) / float(_count(x.shape, dims))).clamp(
                -_F32_MAX, _F32_MAX)
            dev = dev - corr
            r = (dev * dev).sum(dims, keepdim=keepdim) / float(denom)
            if take_sqrt:
                r = r.sqrt()
        ctx.dims, ctx.keepdim, ctx.take_sqrt, ctx.denom = dims, keepdim, take_sqrt, denom
        # (var's backward needs only dev; std's its result too)
        ctx.save_for_backward(dev._data, r._data if take_sqrt else None)
        return r._data

    @staticmethod
    def backward(ctx, g):
        dev = Tensor._make(ctx.saved_tensors[0])
        G = Tensor._make(_contig(g))
        with no_grad():
            kept = _keep_shape(dev.shape, ctx.dims)
            if not ctx.keepdim:
                G = G.reshape(kept)
            if ctx.take_sqrt:
                # 0 where std is 0 (its deviations are all 0), with ops every device has:
                # m = r / (r + tiny) is exactly 0 there and exactly 1 for every other finite
                # std (the smallest nonzero one is ~3.7e-23, the root of the smallest
                # subnormal variance); r capped below inf keeps m 1 where std overflowed
                # (and the scale g / inf = 0, as PyTorch's); the floor keeps the division
                # finite.
                r = Tensor._make(ctx.saved_tensors[1]).reshape(kept)
                rc = r.clamp(max=1e30)
                scale = (G * (rc / (rc + _TINY))) / (r.clamp(min=_TINY) * float(ctx.denom))
            else:
                scale = G / (float(ctx.denom) / 2.0)
            return (dev * scale)._data, None, None, None, None


def _var_std(op, input, dim, unbiased, keepdim, correction):  # noqa: A002
    _check(input, op)
    if input._data.dtype != _F32:
        raise TypeError(f"[{op}] input must be float32 (PyTorch's {op} takes floating point "
                        f"only), got {input.dtype}")
    if isinstance(dim, bool):  # var(x, False): the legacy (input, unbiased) form
        if unbiased is not None:
            raise TypeError(f"[{op}] got unbiased twice (by position as dim, and by name)")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"[{op}] give unbiased or correction, not both")
    if unbiased is not None:
        if not isinstance(unbiased, bool):
            raise TypeError(f"[{op}] unbiased must be a bool, got {type(unbiased).__name__}")
        correction = 1 if unbiased else 0
    elif correction is None:
        correction = 1
    elif not isinstance(correction, numbers.Real):
        raise TypeError(f"[{op}] correction must be a number, got {type(correction).__name__}")
    return VarStd.apply(input, _dims(dim, input.ndim, op), float(correction),
                        _keepdim(keepdim, op), op == "std")


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):  # noqa: A002
    """Variance over dim (None: all elements), dividing by n - correction (1 by default, or
    unbiased=False for 0), as PyTorch's var."""
    return _var_std("var", input, dim, unbiased, keepdim, correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):  # noqa: A002
    """Standard deviation: var's square root, with var's arguments."""
    return _var_std("std", input, dim, unbiased, keepdim, correction)


def sum_axes(a, axes):
    """float32 array summed over `axes` (no keepdims): the backward of broadcasting."""
    if not _is_host(a):  # gradients on a device are float32 device arrays already
        if len(axes) == 0:
            return a.clone()
        return _kernels(a).sum(a, [int(d) for d in axes], False, False)
    if type(a) is not _ND or a.dtype is not _F32:
        a = np.asarray(a, dtype=np.float32)
    a = _contig(a)
    if len(axes) == 0:  # the kernel reads an empty dim list as "all dims"
        return a.copy()
    return _C.sum(a, list(axes), False, False)
