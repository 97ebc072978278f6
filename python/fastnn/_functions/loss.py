"""Cross-entropy (fused with log-softmax) and MSE/SSR: C++ kernels (csrc/cpu/loss.cpp).

Contract: cross_entropy(input (N, C) or (C,), target int64 (N,) or (), reduction="mean"|"sum"|
"none", ignore_index=-100), mse_loss(input, target, reduction="mean"|"sum"|"none").
"""
import numbers

from .. import _C
from ..autograd import Function
import numpy as np

from ..tensor import _ND, Tensor, _contig, _host_only, _kernels, _same_device, float32, int64
from ._check import check_tensor

_REDUCTIONS = ("mean", "sum", "none")
_F32 = np.dtype(np.float32)
_I64 = np.dtype(np.int64)


def _check_reduction(reduction, op):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"[{op}] reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_tensor(x, op, name, dt, what=""):
    check_tensor(x, op, name, (dt,), what=what)


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, t, reduction, ignore_index):
        x, t = _contig(x), _contig(t)
        loss, stats = (_C if type(x) is _ND else _kernels(x)).cross_entropy_fwd(x, t, reduction, ignore_index)
        # stats: (N, 2) per-row [max, log-sum-exp of shifted logits], so the backward is one
        # pass over the logits with nothing to recompute. The options ride along with the
        # saved arrays (one slot store, as MSE).
        ctx.saved_tensors = (x, t, stats, reduction, ignore_index)
        return loss

    @staticmethod
    def backward(ctx, g):
        x, t, stats, reduction, ignore_index = ctx.saved_tensors
        dx = (_C if type(x) is _ND else _kernels(x)).cross_entropy_bwd(_contig(g), x, t, stats, reduction, ignore_index)
        return dx, None, None, None


def cross_entropy(input, target, reduction="mean", ignore_index=-100):
    """Cross-entropy of raw logits against int64 class indices (log-softmax fused in).
    Targets equal to ignore_index add 0 loss and 0 gradient and are not counted by 'mean'.
    Input (N, C) with target (N,), unbatched (C,) with (), or, as PyTorch, (N, C, d1, ...,
    dk) with target (N, d1, ..., dk): a class score per position (segmentation), the loss
    per position with reduction='none'."""
    if type(reduction) is str and reduction in _REDUCTIONS and type(ignore_index) is int \
            and isinstance(input, Tensor) and isinstance(target, Tensor):
        a, b = input._data, target._data
        if type(a) is _ND and type(b) is _ND and a.dtype is _F32 and b.dtype is _I64 \
                and a.ndim <= 2:
            # The common case (float32 logits, int64 classes, on the host), with the checks
            # below that it passes skipped; shapes and class ranges are the kernel's to check.
            return CrossEntropy.apply(input, target, reduction, ignore_index)
    op = "cross_entropy"
    _check_tensor(input, op, "input", float32)
    _check_tensor(target, op, "target", int64, " class indices")
    if type(input._data) is not _ND or type(target._data) is not _ND:
        _same_device(op, input, target)
    _check_reduction(reduction, op)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"[{op}] ignore_index must be an int, got {type(ignore_index).__name__}")
    if input.ndim > 2:
        return _cross_entropy_nd(input, target, reduction, int(ignore_index))
    return CrossEntropy.apply(input, target, reduction, int(ignore_index))


def _cross_entropy_nd(input, target, reduction, ignore_index):
    """(N, C, d1, ..., dk) logits against (N, d1, ..., dk) targets, on the host: the kernel
    walks the class dim with the positions side by side (cpu/loss.cpp), no transposing copy;
    with reduction 'none' the loss has the target's shape."""
    s, ts, k = tuple(input.shape), tuple(target.shape), input.ndim
    want = (s[0],) + s[2:]
    if ts != want:
        raise ValueError(f"[cross_entropy] a {k}-D input of shape {s} takes a target of shape "
                         f"{want} (the input's shape without the class dim 1), got {ts}")
    _host_only(input, "cross_entropy")
    return CrossEntropy.apply(input, target, reduction, ignore_index)


class MSE(Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        x, y = _contig(x), _contig(y)
        # NOTE (speed): one slot store instead of save_for_backward plus a ctx attribute
        # (the reduction rides along with the saved arrays).
        ctx.saved_tensors = (x, y, reduction)
        return (_C if type(x) is _ND else _kernels(x)).mse_fwd(x, y, reduction)

    @staticmethod
    def backward(ctx, g):
        x, y, reduction = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gy = (_C if type(x) is _ND else _kernels(x)).mse_bwd(_contig(g), x, y, reduction,
                                                                   needs[0], needs[1])
        return gx, gy, None


def mse_loss(input, target, reduction="mean"):
    """Mean (or sum: SSR, or none) of squared differences; input and target must have the
    same shape (no broadcasting)."""
    if type(reduction) is str and reduction in _REDUCTIONS and isinstance(input, Tensor) \
            and isinstance(target, Tensor):
        a, b = input._data, target._data
        if type(a) is _ND and type(b) is _ND and a.dtype is _F32 and b.dtype is _F32:
            # The common case (float32 host tensors), with the checks below that it passes
            # skipped; shapes are the kernel's to check.
            return MSE.apply(input, target, reduction)
    op = "mse_loss"
    _check_tensor(input, op, "input", float32)
    _check_tensor(target, op, "target", float32)
    if type(input._data) is not _ND or type(target._data) is not _ND:
        _same_device(op, input, target)
    _check_reduction(reduction, op)
    return MSE.apply(input, target, reduction)
