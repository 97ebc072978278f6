"""fastnn.cuda: the optional CUDA backend (the compiled module ``fastnn._C_cuda``).

The backend is imported lazily, on the first question asked here or the first tensor put on
a "cuda" device, so ``import fastnn`` never loads the CUDA runtime. A missing or failing
``_C_cuda`` import is remembered and reported as the reason CUDA is unavailable. The module
exposes the kernels with the same names and signatures as ``fastnn._C`` on ``CudaArray``
device buffers (see CUDA_CONTRACT.md); fastnn.Tensor picks the module by the array's type.
"""
from __future__ import annotations

__all__ = ["is_available", "is_built", "device_count", "current_device", "get_device_name",
           "get_device_capability", "synchronize", "memory_allocated", "memory_reserved",
           "empty_cache", "set_matmul_precision", "get_matmul_precision"]

_backend = None       # the loaded module, or None
_array_type = None    # its CudaArray class (dispatch tests arrays against it)
_import_error = None  # why the import failed ("" when it has not been tried)
_tried = False


def _load():
    """The backend module, importing it on first use; None (reason kept) if it fails."""
    global _tried
    if not _tried:
        _tried = True
        try:
            from . import _C_cuda
        except Exception as e:  # ImportError, or an OSError from a broken shared library
            _install(None, f"fastnn was built without the CUDA backend (importing "
                           f"fastnn._C_cuda failed: {type(e).__name__}: {e})")
        else:
            _install(_C_cuda)
    return _backend


def _install(module, reason=None):
    """Use `module` as the backend (None: none, with `reason`). The test suite installs a fake
    backend through this hook (tests/fake_cuda.py); returns the previous state for _restore."""
    global _backend, _array_type, _import_error, _tried
    prev = (_backend, _array_type, _import_error, _tried)
    _backend, _import_error, _tried = module, reason, True
    _array_type = None if module is None else module.CudaArray
    return prev


def _restore(state):
    global _backend, _array_type, _import_error, _tried
    _backend, _array_type, _import_error, _tried = state


def _unavailable_reason():
    m = _load()
    if m is None:
        return _import_error
    if m.device_count() <= 0:
        return "no CUDA device is present (" + (m.unavailable_reason() or "no device") + ")"
    return ""


def _require(op):
    """The backend module, or RuntimeError "[op] CUDA unavailable: <reason>"."""
    m = _load()
    if m is None or m.device_count() <= 0:
        raise RuntimeError(f"[{op}] CUDA unavailable: {_unavailable_reason()}")
    return m


def is_built():
    """True when the CUDA backend module (fastnn._C_cuda) was built and imports."""
    return _load() is not None


def is_available():
    """True when the backend imports and at least one CUDA device is present."""
    m = _load()
    return m is not None and m.device_count() > 0


def device_count():
    m = _load()
    return 0 if m is None else int(m.device_count())


def current_device():
    return 0


def _index(device, op):
    """A device argument (None, int, "cuda", "cuda:1", fastnn.device) -> a checked index."""
    m = _require(op)
    if device is None:
        idx = 0
    elif isinstance(device, int) and not isinstance(device, bool):
        idx = device
    else:
        from .tensor import device as _device
        d = _device(device)
        if d.type != "cuda":
            raise ValueError(f"[{op}] expected a CUDA device, got {d}")
        idx = 0 if d.index is None else d.index
    n = m.device_count()
    if not 0 <= idx < n:
        raise ValueError(f"[{op}] device index must be in [0, {n - 1}], got {idx}")
    return idx


def get_device_name(device=None):
    return _require("get_device_name").get_device_name(_index(device, "get_device_name"))


def get_device_capability(device=None):
    m = _require("get_device_capability")
    return tuple(m.get_device_capability(_index(device, "get_device_capability")))


def synchronize(device=None):
    """Wait for all queued work on the device (timings and host reads need it)."""
    _require("synchronize").synchronize()


def memory_allocated(device=None):
    """Bytes held by live CUDA tensors (the caching allocator's blocks in use)."""
    return int(_require("memory_allocated").memory_allocated())


def memory_reserved(device=None):
    """Bytes the caching allocator holds from the driver (in use plus cached free blocks)."""
    return int(_require("memory_reserved").memory_reserved())


def empty_cache():
    """Return the allocator's cached free blocks to the driver."""
    _require("empty_cache").empty_cache()


def set_matmul_precision(precision):
    """"highest" (fp32 GEMM), "high" (TF32 tensor cores) or "medium" (BF16 tensor cores):
    the names of torch.set_float32_matmul_precision. Affects CUDA GEMMs only."""
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"[set_matmul_precision] precision must be 'highest', 'high' or "
                         f"'medium', got {precision!r}")
    _require("set_matmul_precision").set_matmul_precision(precision)


def get_matmul_precision():
    return _require("get_matmul_precision").get_matmul_precision()
