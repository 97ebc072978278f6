"""fastnn: a small, fast neural-network library.

C++ kernels (fastnn._C) under a PyTorch-shaped API: ``fastnn.Tensor`` with autograd,
``fastnn.nn`` layers and losses, ``fastnn.optim`` optimizers, data loading and save/load.
"""
from . import _C
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled
from .tensor import (Tensor, Size, dtype, float32, int64, bool_ as bool, device, tensor,
                     from_numpy, as_tensor, zeros, ones, full, empty, rand, randn, randint,
                     arange, linspace, zeros_like, ones_like, full_like, empty_like, rand_like,
                     randn_like, manual_seed)
from ._functions.activation import relu, sigmoid, tanh
from ._functions.softmax import softmax, log_softmax, argmax
from ._functions.dense import matmul
from ._functions.elementwise import exp, log, sqrt, abs, maximum, minimum, clamp
from ._functions.reduce import sum, mean, max, min
from ._functions.shape import cat, stack, where, reshape, flatten, transpose, permute, \
    squeeze, unsqueeze
from . import autograd, cuda, nn, optim, utils, datasets
from ._config import (set_num_threads, get_num_threads, show_config, get_isa, set_isa,
                      supported_isas)

__version__ = "0.1.0"
float = float32
long = int64


def from_dlpack(x):
    """A tensor sharing memory with any DLPack producer on the CPU (NumPy, PyTorch, ...)."""
    import numpy as _np
    try:
        a = _np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError) as e:
        raise TypeError(f"[from_dlpack] could not import {type(x).__name__}: {e}") from None
    if a.dtype not in (_np.float32, _np.int64):
        raise TypeError(f"[from_dlpack] dtype must be float32 or int64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError("[from_dlpack] the producer's memory must be C-contiguous to share it")
    return Tensor._make(a)


def save(obj, path):
    from .serialization import save as _save
    return _save(obj, path)


def load(path):
    from .serialization import load as _load
    return _load(path)


__all__ = [
    "Tensor", "Size", "dtype", "float32", "int64", "bool", "float", "long", "device", "tensor",
    "from_numpy", "from_dlpack", "as_tensor", "zeros", "ones", "full", "empty", "rand", "randn",
    "randint", "arange", "linspace", "zeros_like", "ones_like", "full_like", "empty_like",
    "rand_like", "randn_like", "manual_seed", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "argmax", "matmul",
    "exp", "log", "sqrt", "abs", "maximum", "minimum", "clamp", "sum", "mean", "max", "min",
    "cat", "stack", "where", "reshape", "flatten", "transpose", "permute", "squeeze",
    "unsqueeze", "autograd", "cuda", "nn", "optim", "utils", "datasets", "set_num_threads", "get_num_threads", "show_config",
    "get_isa", "set_isa", "supported_isas", "save", "load", "__version__",
]
