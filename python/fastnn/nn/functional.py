"""fastnn.nn.functional: PyTorch's functional names over fastnn's fused kernels."""
from .._functions.activation import relu, sigmoid, tanh, gelu, softplus
from .._functions.softmax import softmax, log_softmax
from .._functions.loss import cross_entropy, mse_loss
from .._functions.dense import linear
from .._functions.conv import conv2d
from .._functions.pool import max_pool2d, avg_pool2d

__all__ = ["linear", "relu", "softplus", "sigmoid", "tanh", "gelu", "softmax", "log_softmax",
           "cross_entropy", "mse_loss", "dropout"]
__all__ += ["conv2d", "max_pool2d", "avg_pool2d"]


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"[dropout] p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..tensor import default_generator, Tensor, _aligned_copy, float32
    keep = default_generator.rng.random(tuple(input.shape)) >= p
    mask = Tensor._make(_aligned_copy(keep * (1.0 / (1.0 - p)), float32))
    if input.is_cuda:  # drawn on the host (one generator for every device), then copied
        mask = mask.to(input.device)
    return input * mask
