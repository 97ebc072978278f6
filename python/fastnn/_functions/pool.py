"""max_pool2d and avg_pool2d on the C++ kernels (csrc/cpu/pool.cpp), PyTorch's signatures
and output sizes (ceil_mode included); input NCHW or unbatched CHW."""
from .. import _C
from ..autograd import Function
from ..tensor import _contig
from .conv import _pair
from ._check import check_tensor


def _check(x, op):
    check_tensor(x, op)
    if x.ndim not in (3, 4):
        raise ValueError(f"[{op}] input must be 4-D (N, C, H, W) or 3-D (C, H, W), got "
                         f"{x.ndim}-D with shape {tuple(x.shape)}")


def _batched(fn, x, *args):
    """Run fn on a 4-D view of x (unbatched CHW gets a batch of 1 and loses it again)."""
    if x.ndim == 3:
        out = fn(x.unsqueeze(0), *args)
        if isinstance(out, tuple):
            return tuple(o.squeeze(0) for o in out)
        return out.squeeze(0)
    return fn(x, *args)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, params, ceil_mode):
        y, idx = _C.max_pool2d_fwd(_contig(x), *params, ceil_mode, True)
        ctx.args = (x.shape[2], x.shape[3], params, ceil_mode)
        ctx.save_for_backward(idx)
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        (idx,) = ctx.saved_tensors
        h, w, params, ceil_mode = ctx.args
        return _C.max_pool2d_bwd(_contig(dy), idx, h, w, *params, ceil_mode), None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, params, ceil_mode, count_include_pad, divisor):
        ctx.args = (x.shape[2], x.shape[3], params, ceil_mode, count_include_pad, divisor)
        return _C.avg_pool2d_fwd(_contig(x), *params, ceil_mode, count_include_pad, divisor)

    @staticmethod
    def backward(ctx, dy):
        h, w, params, ceil_mode, cip, divisor = ctx.args
        return (_C.avg_pool2d_bwd(_contig(dy), h, w, *params, ceil_mode, cip, divisor),
                None, None, None, None)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """PyTorch's F.max_pool2d; stride defaults to kernel_size. Indices (int64) are flat
    positions ih*W + iw in each input plane, as PyTorch's."""
    op = "max_pool2d"
    _check(input, op)
    kh, kw = _pair(kernel_size, op, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None or stride == () else _pair(stride, op, "stride", 1)
    ph, pw = _pair(padding, op, "padding", 0)
    dh, dw = _pair(dilation, op, "dilation", 1)
    y, idx = _batched(lambda x: MaxPool2d.apply(x, (kh, kw, sh, sw, ph, pw, dh, dw),
                                                bool(ceil_mode)), input)
    return (y, idx) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """PyTorch's F.avg_pool2d; stride defaults to kernel_size."""
    op = "avg_pool2d"
    _check(input, op)
    kh, kw = _pair(kernel_size, op, "kernel_size", 1)
    sh, sw = (kh, kw) if stride is None or stride == () else _pair(stride, op, "stride", 1)
    ph, pw = _pair(padding, op, "padding", 0)
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         int(divisor_override) < 1):
        raise ValueError(f"[{op}] divisor_override must be a positive int, got "
                         f"{divisor_override!r}")
    div = 0 if divisor_override is None else int(divisor_override)
    return _batched(lambda x: AvgPool2d.apply(x, (kh, kw, sh, sw, ph, pw), bool(ceil_mode),
                                              bool(count_include_pad), div), input)
