from .._functions import activation as _act
from .._functions import softmax as _sm
from .module import Module


class _Act(Module):
    """An activation that nn.Sequential can fuse into a preceding Linear (one kernel call)."""
    act = "none"

    def fused_act(self):
        return self.act, 1.0, 20.0

    def forward(self, x):
        return _act._apply(x, self.act)


class ReLU(_Act):
    act = "relu"

    def __init__(self, inplace=False):
        super().__init__()


class Sigmoid(_Act):
    act = "sigmoid"


class Tanh(_Act):
    act = "tanh"


class GELU(_Act):
    act = "gelu"

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate != "none":
            raise ValueError(f"[GELU] approximate must be 'none', got {approximate!r}")


class Softplus(_Act):
    act = "softplus"

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        if beta == 0:
            raise ValueError("[Softplus] beta must be non-zero, got 0")
        self.beta = float(beta)
        self.threshold = float(threshold)

    def fused_act(self):
        return self.act, self.beta, self.threshold

    def forward(self, x):
        return _act.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta:g}, threshold={self.threshold:g}"


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return _sm.softmax(x, _default_dim(self.dim, x, "Softmax"))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return _sm.log_softmax(x, _default_dim(self.dim, x, "LogSoftmax"))


def _default_dim(dim, x, op):
    if dim is not None:
        return dim
    # PyTorch's legacy rule when dim is omitted: 0 for 0-, 1- and 3-D input, else 1.
    return 0 if x.ndim in (0, 1, 3) else 1
