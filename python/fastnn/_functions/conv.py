"""conv2d on the C++ kernels (csrc/cpu/conv.cpp: im2col + the library GEMM).

conv2d(input (N, C, H, W) or (C, H, W), weight (OC, C/groups, kH, kW), bias (OC,) or None,
stride, padding, dilation, groups, act="none"|"relu") -> (N, OC, OH, OW): one _C.conv2d_fwd
call (ReLU fused into the output when act="relu") and one _C.conv2d_bwd call for all the
requested gradients.
"""
from .. import _C
from ..autograd import Function
from ..tensor import _contig
from ._check import check_tensor


def _pair(v, op, name, minimum):
    """PyTorch's int-or-pair argument -> (int, int), checked against `minimum`."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"[{op}] {name} must be an int or a pair of ints, got {v!r}")
        a, b = v
    else:
        a = b = v
    for e in (a, b):
        if isinstance(e, bool) or not isinstance(e, int) and not hasattr(e, "__index__"):
            raise TypeError(f"[{op}] {name} must be an int or a pair of ints, got {v!r}")
    a, b = int(a), int(b)
    if a < minimum or b < minimum:
        raise ValueError(f"[{op}] {name} must be >= {minimum}, got {v!r}")
    return a, b


_check_float = check_tensor  # (t, op, name, optional=)


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, params, relu):
        x, w = _contig(x), _contig(w)
        b = None if b is None else _contig(b)
        y = _C.conv2d_fwd(x, w, b, *params, relu)
        ctx.args = (params, relu, b is not None)
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, y = ctx.saved_tensors
        params, relu, has_bias = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx, dw, db = _C.conv2d_bwd(_contig(dy), x, w, y, *params, relu, bool(need_x),
                                   bool(need_w), bool(need_b and has_bias))
        return dx, dw, db, None, None


def conv_params(weight_shape, stride, padding, dilation, groups, op="conv2d"):
    """(sh, sw, ph, pw, dh, dw, groups) from PyTorch's arguments; padding may be 'valid' or
    'same' (stride 1; the total padding d*(k-1) must be even to split symmetrically)."""
    sh, sw = _pair(stride, op, "stride", 1)
    dh, dw = _pair(dilation, op, "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            ph = pw = 0
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"[{op}] padding='same' needs stride 1, got {(sh, sw)}")
            kh, kw = weight_shape[2], weight_shape[3]
            th, tw = dh * (kh - 1), dw * (kw - 1)
            if th % 2 or tw % 2:
                raise ValueError(f"[{op}] padding='same' with an even effective kernel "
                                 f"{(th + 1, tw + 1)} needs asymmetric padding, which fastnn "
                                 f"does not support; pad explicitly")
            ph, pw = th // 2, tw // 2
        else:
            raise ValueError(f"[{op}] padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
    else:
        ph, pw = _pair(padding, op, "padding", 0)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"[{op}] groups must be a positive int, got {groups!r}")
    return (sh, sw, ph, pw, dh, dw, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, act="none"):
    """PyTorch's F.conv2d (NCHW, or unbatched CHW); act="relu" fuses a ReLU into the output."""
    _check_float(input, "conv2d", "input")
    _check_float(weight, "conv2d", "weight")
    _check_float(bias, "conv2d", "bias", optional=True)
    if act not in ("none", "relu"):
        raise ValueError(f"[conv2d] act must be 'none' or 'relu', got {act!r}")
    if weight.ndim != 4:
        raise ValueError(f"[conv2d] weight must be 4-D (out_channels, in_channels/groups, kH, "
                         f"kW), got shape {tuple(weight.shape)}")
    if input.ndim not in (3, 4):
        raise ValueError(f"[conv2d] input must be 4-D (N, C, H, W) or 3-D (C, H, W), got "
                         f"{input.ndim}-D with shape {tuple(input.shape)}")
    params = conv_params(weight.shape, stride, padding, dilation, groups)
    if input.ndim == 3:
        return Conv2d.apply(input.unsqueeze(0), weight, bias, params, act == "relu").squeeze(0)
    return Conv2d.apply(input, weight, bias, params, act == "relu")
