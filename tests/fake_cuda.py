"""A FAKE CUDA backend for testing fastnn's device model on a machine without a GPU.

THIS TESTS THE PYTHON PLUMBING ONLY, NOT THE CUDA KERNELS. It implements the API of
``fastnn._C_cuda`` as CUDA_CONTRACT.md describes it (module functions, ``CudaArray``, the
ops under ``_C``'s names and signatures), but every "device" array is host memory and every op
is the same-named ``fastnn._C`` CPU kernel: unwrap the arguments, call ``_C``, wrap the
results. What it can show: that tensors, autograd, modules, optimizers, serialization and
DLPack route data and kernels by device, keep data off the host until asked, and refuse
mixed devices and host-only ops clearly. What it cannot show: anything about the real
kernels (correctness, races, memory errors, speed); tests/test_cuda.py does that on a GPU.

To make accidental host use of a CUDA tensor's data fail loudly, ``FakeCudaArray`` is NOT an
ndarray subclass, has no ``__array__``, refuses NumPy ufuncs and array functions
(np.broadcast_to, np.concatenate, ...), has no indexing, and every op refuses an ndarray
where the contract wants a CUDA array, as the real module does.

Use: the ``fake_cuda`` fixture below installs this module as fastnn.cuda's backend (through
``fastnn.cuda._install``) for one test and restores the previous state afterwards.
"""
import re
import sys
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import _C

N_DEVICES = 1          # fake devices present; tests may raise it to exercise cuda:1
_precision = "highest"
_allocated = 0         # bytes of live owning arrays (views do not count)
_reserved = 0          # bytes "held from the driver": allocated plus the cached free blocks
_DTYPES = {"float32": np.dtype(np.float32), "int64": np.dtype(np.int64),
           "bool": np.dtype(np.bool_)}


def _free(nbytes):
    # A freed block goes to the cache: allocated drops, reserved stays (as the real one).
    global _allocated
    _allocated -= nbytes


def _track(arr):
    global _allocated, _reserved
    _allocated += arr.nbytes
    _reserved = max(_reserved, _allocated)


def _dtype(name):
    if name not in _DTYPES:
        raise TypeError(f"[CudaArray] dtype must be float32, int64 or bool, got {name!r}")
    return _DTYPES[name]


def _check_index(device):
    if not 0 <= device < N_DEVICES:
        raise RuntimeError(f"[CudaArray] device index must be in [0, {N_DEVICES - 1}], "
                           f"got {device}")
    return device


class CudaArray:
    """A fake device buffer: a private C-contiguous host array plus a device index."""

    __slots__ = ("_host", "_dev", "_base", "__weakref__")
    __array_ufunc__ = None  # ufuncs (np.add(t, ...), t * ndarray) raise TypeError

    def __init__(self, host, device, base=None, owner=True):
        assert isinstance(host, np.ndarray) and host.flags.c_contiguous, "fake: bad buffer"
        assert host.dtype in _DTYPES.values(), f"fake: dtype {host.dtype}"
        self._host = host
        self._dev = _check_index(device)
        self._base = base  # what a view or a DLPack import keeps alive
        if owner:
            _track(host)
            weakref.finalize(self, _free, host.nbytes)

    def __reduce_ex__(self, protocol):
        # As the compiled class (pybind11 defines no pickling): copies go through the host.
        raise TypeError("cannot pickle 'CudaArray' object")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"fake CUDA array passed to numpy.{func.__name__}: host code used a "
                        f"CUDA tensor's data (use .cpu() first)")

    # ---- attributes ---------------------------------------------------------------------
    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    ndim = property(lambda self: self._host.ndim)
    size = property(lambda self: self._host.size)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    strides = property(lambda self: self._host.strides)
    device_index = property(lambda self: self._dev)
    data_ptr = property(lambda self: int(self._host.ctypes.data))

    def __len__(self):
        if self._host.ndim == 0:
            raise TypeError("len() of a 0-d CudaArray")
        return self._host.shape[0]

    def __repr__(self):
        return f"<fake CudaArray shape={self.shape} dtype={self.dtype} device={self._dev}>"

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def empty(shape, dtype_name, device=0):
        # NaN-filled floats: a caller that reads "empty" memory shows up in a test
        a = np.empty(tuple(shape), _dtype(dtype_name))
        if a.dtype.kind == "f":
            a.fill(np.nan)
        return CudaArray(a, device)

    @staticmethod
    def zeros(shape, dtype_name, device=0):
        return CudaArray(np.zeros(tuple(shape), _dtype(dtype_name)), device)

    @staticmethod
    def full(shape, value, dtype_name, device=0):
        return CudaArray(np.full(tuple(shape), value, _dtype(dtype_name)), device)

    @staticmethod
    def from_numpy(a, device=0):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"[from_numpy] expected a numpy.ndarray, got {type(a).__name__}")
        _dtype(a.dtype.name)
        return CudaArray(np.array(a, order="C", copy=True), device)

    @staticmethod
    def from_dlpack(obj):
        dev = obj.__dlpack_device__()
        if int(dev[0]) != 2:
            raise TypeError(f"[from_dlpack] expected a CUDA (kDLCUDA) producer, got device "
                            f"type {dev[0]}")
        capsule = obj.__dlpack__()

        class _Host:  # the fake's capsules hold host memory: let NumPy read them as CPU
            def __dlpack__(self, stream=None, **kw):
                return capsule

            def __dlpack_device__(self):
                return (1, 0)

        view = np.from_dlpack(_Host())
        if not view.flags.c_contiguous:
            raise ValueError("[from_dlpack] the producer's memory must be C-contiguous")
        return CudaArray(view, int(dev[1]), base=obj, owner=False)

    # ---- host transfers and copies ------------------------------------------------------
    def numpy(self):
        return self._host.copy()

    def copy_(self, src):
        if isinstance(src, CudaArray):
            if src.shape != self.shape or src.dtype != self.dtype:
                raise ValueError(f"[copy_] src must be {self.shape} {self.dtype}, got "
                                 f"{src.shape} {src.dtype}")
            self._host[...] = src._host
        elif isinstance(src, np.ndarray):
            if src.shape != self.shape:
                raise ValueError(f"[copy_] src must have shape {self.shape}, got {src.shape}")
            self._host[...] = src
        else:
            raise TypeError(f"[copy_] src must be a CudaArray or an ndarray, got "
                            f"{type(src).__name__}")
        return self

    @property
    def _memory_key(self):
        # As the compiled class: one number for every array over the same buffer (a view's
        # _base chain ends at the owner; DLPack imports end at the producer object).
        a = self
        while isinstance(a._base, CudaArray):
            a = a._base
        return id(a)

    def _sole_owner(self):
        # The fake does not track sharing: autograd copies every first gradient here.
        return False

    def clone(self):
        return CudaArray(self._host.copy(), self._dev)

    def reshape(self, shape):
        # Only the one-tuple form of the contract: catches host-style reshape(a, b) calls.
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"[reshape] CudaArray.reshape takes one shape tuple, got "
                            f"{type(shape).__name__}")
        try:
            view = self._host.reshape(tuple(int(s) for s in shape))
        except ValueError as e:
            raise ValueError(f"[reshape] {e}") from None
        return CudaArray(view, self._dev, base=self, owner=False)

    def astype(self, dtype_name):
        return CudaArray(self._host.astype(_dtype(dtype_name)), self._dev)

    def fill_(self, value):
        self._host[...] = value
        return self

    def item(self):
        if self._host.size != 1:
            raise ValueError(f"[item] only size-1 arrays, got shape {self.shape}")
        return self._host.reshape(()).item()

    def __dlpack__(self, stream=None):
        return self._host.__dlpack__()

    def __dlpack_device__(self):
        return (2, self._dev)


# ---- module functions -----------------------------------------------------------------------
def device_count():
    return N_DEVICES


def unavailable_reason():
    return "" if N_DEVICES > 0 else "no CUDA-capable device is detected (fake)"


def get_device_name(i):
    _check_index(i)
    return "fastnn fake CUDA device (host memory)"


def get_device_capability(i):
    _check_index(i)
    return (9, 0)


def synchronize():
    pass


def memory_allocated():
    return _allocated


def memory_reserved():
    return _reserved


def empty_cache():
    global _reserved
    _reserved = _allocated


def set_matmul_precision(name):
    global _precision
    _precision = name


def get_matmul_precision():
    return _precision


def compiled_archs():
    return ["fake"]


# ---- ops: unwrap, call fastnn._C, wrap --------------------------------------------------------
OPS = ["linear_fwd", "linear_bwd", "gemm", "mm", "bmm", "activation_fwd", "activation_bwd",
       "unary", "unary_bwd", "binary", "binary_bwd", "binary_inplace", "expand", "sum",
       "extreme", "extreme_all_bwd", "extreme_dim_bwd", "argmax", "softmax_fwd", "softmax_bwd",
       "cross_entropy_fwd", "cross_entropy_bwd", "mse_fwd", "mse_bwd", "sgd_step", "adam_step"]
calls = []  # (op name, device) of every op call, for tests that check dispatch


def _arg_names(fn):
    """Argument names from a pybind11 docstring's signature line."""
    sig = fn.__doc__.strip().splitlines()[0]
    return re.findall(r"(\w+):", sig[sig.index("(") + 1:sig.rindex(")")])


def _make_op(name):
    kernel = getattr(_C, name)
    names = _arg_names(kernel)

    def op(*args, **kwargs):
        dev = [None]

        def unwrap(v, what):
            if isinstance(v, CudaArray):
                if dev[0] is None:
                    dev[0] = v._dev
                elif v._dev != dev[0]:
                    raise TypeError(f"[{name}] {what} must be a CUDA array on device {dev[0]}, "
                                    f"got one on device {v._dev}")
                return v._host
            if isinstance(v, np.ndarray):
                raise TypeError(f"[{name}] {what} must be a CUDA array on device "
                                f"{0 if dev[0] is None else dev[0]}, got numpy.ndarray")
            if isinstance(v, (list, tuple)):
                return type(v)(unwrap(x, what) for x in v)
            return v

        raw = [unwrap(a, names[i] if i < len(names) else f"argument {i}")
               for i, a in enumerate(args)]
        kw = {k: unwrap(v, k) for k, v in kwargs.items()}
        calls.append((name, dev[0]))
        out = kernel(*raw, **kw)
        d = 0 if dev[0] is None else dev[0]

        def wrap(v):
            if isinstance(v, np.ndarray):
                return CudaArray(v, d)
            if isinstance(v, tuple):
                return tuple(wrap(x) for x in v)
            return v
        return wrap(out)

    op.__name__ = name
    op.__doc__ = f"fake {name}: fastnn._C.{name} on the fake device's host buffers"
    return op


_module = sys.modules[__name__]
for _name in OPS:
    setattr(_module, _name, _make_op(_name))


@pytest.fixture
def fake_cuda():
    """Install this module as fastnn's CUDA backend (one fake device) for the test."""
    global N_DEVICES
    prev = fastnn.cuda._install(_module)
    n_prev = N_DEVICES
    N_DEVICES = 1
    calls.clear()
    try:
        yield _module
    finally:
        N_DEVICES = n_prev
        fastnn.cuda._restore(prev)
