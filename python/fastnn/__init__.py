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
from ._functions.elementwise import (exp, log, sqrt, abs, maximum, minimum, clamp,
                                     floor_divide, remainder)
from ._functions.reduce import sum, mean, max, min, var, std, argmin, any, all
from ._functions.shape import cat, stack, where, reshape, flatten, transpose, permute, \
    squeeze, unsqueeze
from . import autograd, cuda, nn, optim, utils, datasets
from ._config import (set_num_threads, get_num_threads, show_config, get_isa, set_isa,
                      supported_isas)

__version__ = "0.1.0"
float = float32
long = int64


# DLPack device types (dlpack.h DLDeviceType): kDLCPU, kDLCUDA, kDLCUDAHost, kDLCUDAManaged.
_DL_CPU, _DL_CUDA = 1, 2


def from_dlpack(x):
    """A tensor sharing memory with any DLPack producer: on the CPU (NumPy, PyTorch, ...), or
    on a CUDA device (PyTorch, CuPy, ...) through the CUDA backend, without a copy."""
    import numpy as _np
    dev = getattr(x, "__dlpack_device__", None)
    if dev is not None:
        try:
            dev_type = int(dev()[0])
        except Exception as e:  # noqa: BLE001 - a producer's own error type
            raise TypeError(f"[from_dlpack] {type(x).__name__}.__dlpack_device__() failed: "
                            f"{e}") from None
        if dev_type == _DL_CUDA:
            return _from_dlpack_cuda(x)
        if dev_type != _DL_CPU:
            raise TypeError(f"[from_dlpack] expected a CPU (1) or CUDA (2) DLPack device, got "
                            f"device type {dev_type}")
    try:
        a = _np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError) as e:
        raise TypeError(f"[from_dlpack] could not import {type(x).__name__}: {e}") from None
    if a.dtype not in (_np.float32, _np.int64):
        raise TypeError(f"[from_dlpack] dtype must be float32 or int64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError("[from_dlpack] the producer's memory must be C-contiguous to share it")
    return Tensor._make(a)


def _from_dlpack_cuda(x):
    """A CUDA tensor over x's device memory (the backend's CudaArray.from_dlpack keeps x
    alive and checks dtype, strides and device)."""
    import numpy as _np
    K = cuda._require("from_dlpack")
    try:
        a = K.CudaArray.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, ValueError) as e:
        msg = str(e)
        raise type(e)(msg if msg.startswith("[from_dlpack]")
                      else f"[from_dlpack] could not import {type(x).__name__}: {msg}") from None
    if a.dtype not in (_np.dtype(_np.float32), _np.dtype(_np.int64)):
        raise TypeError(f"[from_dlpack] dtype must be float32 or int64, got {a.dtype}")
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
    "exp", "log", "sqrt", "abs", "maximum", "minimum", "clamp", "floor_divide", "remainder",
    "sum", "mean", "max", "min",
    "var", "std", "argmin", "any", "all",
    "cat", "stack", "where", "reshape", "flatten", "transpose", "permute", "squeeze",
    "unsqueeze", "autograd", "cuda", "nn", "optim", "utils", "datasets", "set_num_threads", "get_num_threads", "show_config",
    "get_isa", "set_isa", "supported_isas", "save", "load", "__version__",
]
