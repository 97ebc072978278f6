from ..tensor import empty
from .._functions.dense import linear
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b with weight (out_features, in_features) and bias (out_features,).

    Initialised as PyTorch: weight kaiming-uniform with a=sqrt(5), i.e. U(-1/sqrt(in),
    1/sqrt(in)); bias U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"[Linear] {name} must be a non-negative int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features))
        if bias:
            self.bias = Parameter(empty(out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias, self.in_features)

    def forward(self, x):
        # NOTE (speed): self.weight goes through Module.__getattr__ after a failed normal
        # lookup (~0.4 us each); the registry is read directly (same objects).
        p = self._parameters
        return linear(x, p["weight"], p["bias"])

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
