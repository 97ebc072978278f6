"""softmax / log_softmax along any dim, and argmax: C++ kernels (csrc/cpu/softmax.cpp).

Contract: softmax(x, dim), log_softmax(x, dim), argmax(x, dim=None, keepdim=False) -> int64.
"""
from .. import _C
from ..autograd import Function
from ..tensor import Tensor, _ND, _contig, _kernels, float32, int64
from ._check import check_tensor, named_as, wrap_dim as _wrap_dim


_check_tensor = check_tensor  # (x, op, name=, dtypes=)


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, log):
        y = (_C if type(x) is _ND else _kernels(x)).softmax_fwd(_contig(x), dim, log)
        ctx.dim, ctx.log = dim, log
        # Both backward formulas need only the output (probabilities or log-probabilities).
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return (_C if type(y) is _ND else _kernels(y)).softmax_bwd(_contig(dy), y, ctx.dim, ctx.log), None, None


def _softmax(x, dim, log, op):
    _check_tensor(x, op)
    d = _wrap_dim(dim, x.ndim, op)
    a = x._plain()
    if a is not None:
        return Tensor._make(_C.softmax_fwd(_contig(a), d, log))  # nothing to record
    return Softmax.apply(x, d, log)


@named_as("softmax")
def _softmax_py(x, dim):
    """softmax's general route. fastnn.softmax is _C.tensor_softmax, which does the common
    call (a C-contiguous float32 host tensor with nothing to record, dim an int by position or
    as dim=) itself and passes every other call here as (x, dim)."""
    return _softmax(x, dim, False, "softmax")


@named_as("log_softmax")
def _log_softmax_py(x, dim):
    """log_softmax's general route (fastnn.log_softmax is _C.tensor_log_softmax)."""
    return _softmax(x, dim, True, "log_softmax")


# NOTE (speed): softmax(x, 1) on a 32x32 tensor, Zen 4, best of 7 x 50k calls: 2.49 us through
# _softmax (check_tensor, wrap_dim, _C.softmax_fwd's pybind11 call, Tensor._make), 1.00 us
# through the route (F.softmax(x, dim=1) 1.03, x.softmax(1) 1.10).
softmax = _C.tensor_softmax
log_softmax = _C.tensor_log_softmax


def argmax(x, dim=None, keepdim=False):
    """Index of the first maximum (NaN counts as the maximum), as an int64 tensor; over all
    elements (flattened) when dim is None. Not differentiable."""
    _check_tensor(x, "argmax", dtypes=(float32, int64))
    if dim is not None:
        dim = _wrap_dim(dim, x.ndim, "argmax")
    xd = x._data
    return Tensor._make((_C if type(xd) is _ND else _kernels(xd)).argmax(_contig(xd), dim, bool(keepdim)))
