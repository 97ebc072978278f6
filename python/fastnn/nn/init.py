"""Parameter initialisation with PyTorch's formulas (drawn from fastnn's generator)."""
import math

from ..autograd import no_grad


def _fan_in_out(t):
    if t.ndim < 2:
        raise ValueError(f"[init] fan in and fan out need at least 2 dims, got shape {tuple(t.shape)}")
    receptive = 1
    for s in t.shape[2:]:
        receptive *= s
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"[calculate_gain] unsupported nonlinearity {nonlinearity!r}")


@no_grad()
def uniform_(t, a=0.0, b=1.0):
    return t.uniform_(a, b)


@no_grad()
def normal_(t, mean=0.0, std=1.0):
    return t.normal_(mean, std)


@no_grad()
def zeros_(t):
    return t.zero_()


@no_grad()
def ones_(t):
    return t.fill_(1.0)


@no_grad()
def constant_(t, val):
    return t.fill_(val)


@no_grad()
def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fan_in_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return t.uniform_(-bound, bound)


@no_grad()
def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fan_in_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0
    return t.normal_(0.0, std)


@no_grad()
def xavier_uniform_(t, gain=1.0):
    fan_in, fan_out = _fan_in_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return t.uniform_(-bound, bound)


@no_grad()
def xavier_normal_(t, gain=1.0):
    fan_in, fan_out = _fan_in_out(t)
    return t.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def default_layer_init_(weight, bias, fan_in):
    """PyTorch's default for Linear and Conv2d: weight kaiming-uniform with a=sqrt(5) (which
    reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    all zeros when fan_in is 0 (an empty layer)."""
    if fan_in == 0:
        zeros_(weight)
        if bias is not None:
            zeros_(bias)
        return
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(fan_in)
        uniform_(bias, -bound, bound)
