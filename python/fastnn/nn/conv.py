from .._functions.conv import _pair, conv2d
from ..tensor import empty
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution over NCHW input, PyTorch's parameters and defaults: weight
    (out_channels, in_channels/groups, kH, kW), bias (out_channels,).

    Initialised as PyTorch: weight kaiming-uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) with fan_in = in_channels/groups * kH * kW; bias U(-1/sqrt(fan_in),
    1/sqrt(fan_in)). Only padding_mode="zeros" is supported."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        op = "Conv2d"
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "groups" else 0):
                raise ValueError(f"[{op}] {name} must be a {'positive' if name == 'groups' else 'non-negative'} int, got {v!r}")
        if in_channels % groups:
            raise ValueError(f"[{op}] in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if out_channels % groups:
            raise ValueError(f"[{op}] out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        if padding_mode != "zeros":
            raise ValueError(f"[{op}] padding_mode must be 'zeros', got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, op, "kernel_size", 1)
        self.stride = _pair(stride, op, "stride", 1)
        self.padding = padding if isinstance(padding, str) else _pair(padding, op, "padding", 0)
        self.dilation = _pair(dilation, op, "dilation", 1)
        self.padding_mode = padding_mode
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = Parameter(empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        init.default_layer_init_(self.weight, self.bias, fan_in)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
