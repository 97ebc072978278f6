"""ReLU, sigmoid, tanh, GELU, softplus: forward and backward in C++ (csrc/cpu/activation.cpp)."""
from .. import _C
from ..autograd import Function, grad_mode
from ..tensor import Tensor, _ND, _contig, _kernels
from ._check import check_tensor, named_as

# Activation codes shared with csrc/cpu/act.h (enum class Act) and the fused linear op.
ACT_CODES = {"none": 0, "identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "gelu": 4,
             "softplus": 5}
# gelu and softplus need the input for their derivative; the rest use the output.
NEEDS_INPUT = {4, 5}


class Activation(Function):
    @staticmethod
    def forward(ctx, x, act, beta, threshold):
        x = _contig(x)
        y = (_C if type(x) is _ND else _kernels(x)).activation_fwd(x, act, beta, threshold)
        ctx.args = (act, beta, threshold)
        ctx.save_for_backward(x if act in NEEDS_INPUT else None, None if act in NEEDS_INPUT else y)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved_tensors
        act, beta, threshold = ctx.args
        return (_C if type(dy) is _ND else _kernels(dy)).activation_bwd(_contig(dy), x, y, act, beta, threshold)


_check = check_tensor  # (x, op)


@named_as("relu")
def _relu_py(x):
    """relu's general route. fastnn.relu is _C.tensor_relu, which does the common call (a
    C-contiguous float32 host tensor with nothing to record) itself and passes every other
    call here unchanged."""
    return _apply(x, "relu")


# relu(x) = max(x, 0) elementwise, with autograd.
# NOTE (speed): relu is the op whose per-call cost shows first in small networks; see
# _C.tensor_relu (csrc/bindings/bind_autograd.cpp) for its common call.
relu = _C.tensor_relu


def _apply(x, name, beta=1.0, threshold=20.0):
    _check(x, name)
    if not (x._requires_grad and grad_mode.enabled):
        # Fast path (nothing to record): straight to the kernel. Saves the Function machinery,
        # which costs more than the kernel itself on small tensors.
        xd = x._data
        return Tensor._make((_C if type(xd) is _ND else _kernels(xd)).activation_fwd(
            _contig(xd), ACT_CODES[name], float(beta), float(threshold)))
    return Activation.apply(x, ACT_CODES[name], float(beta), float(threshold))


@named_as("sigmoid")
def _sigmoid_py(x):
    """sigmoid's general route (fastnn.sigmoid is _C.tensor_sigmoid; see _relu_py)."""
    return _apply(x, "sigmoid")


@named_as("tanh")
def _tanh_py(x):
    """tanh's general route (fastnn.tanh is _C.tensor_tanh; see _relu_py)."""
    return _apply(x, "tanh")


sigmoid = _C.tensor_sigmoid
tanh = _C.tensor_tanh


def gelu(x, approximate="none"):
    if approximate != "none":
        raise ValueError(f"[gelu] approximate must be 'none' (exact erf form), got {approximate!r}")
    return _apply(x, "gelu")


def softplus(x, beta=1.0, threshold=20.0):
    if beta == 0:
        raise ValueError("[softplus] beta must be non-zero, got 0")
    return _apply(x, "softplus", beta, threshold)
