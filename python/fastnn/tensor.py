"""fastnn.Tensor: a tensor with autograd, on the CPU or on a CUDA device.

A CPU tensor's data lives in a NumPy array (``t._data``): arrays the library allocates come
from the compiled module's 64-byte-aligned allocator; ``from_numpy`` wraps the caller's array
without a copy. A CUDA tensor's data is a ``CudaArray`` of the backend module
(``fastnn._C_cuda``, see fastnn.cuda), which offers the same kernels under the same names.
Arithmetic, activations, reductions and the rest run in fastnn's kernels
(``fastnn._functions``), which pick the module by the array's type (``_kernels``); NumPy is
used only to hold and view host data, so ops that need NumPy refuse CUDA tensors by name.
"""
from __future__ import annotations

import math
import numbers
import operator
import sys

import numpy as np

from . import _C
from . import cuda as _cuda
from . import autograd as _autograd
from .autograd import grad_mode, run_backward

__all__ = ["Tensor", "dtype", "float32", "int64", "bool_", "device", "tensor", "from_numpy",
           "as_tensor", "zeros", "ones", "full", "empty", "rand", "randn", "randint", "arange",
           "linspace", "zeros_like", "ones_like", "full_like", "empty_like", "randn_like",
           "rand_like", "manual_seed", "default_generator"]


class dtype:
    """A tensor element type: fastnn.float32, fastnn.int64 (and fastnn.bool for masks)."""

    __slots__ = ("name", "np", "is_floating_point", "itemsize")

    def __init__(self, name, np_dtype, is_floating_point):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = is_floating_point
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"fastnn.{self.name}"

    def __reduce__(self):
        return (_dtype_by_name, (self.name,))


float32 = dtype("float32", np.float32, True)
int64 = dtype("int64", np.int64, False)
# Comparisons give masks, as in PyTorch; kernels take only float32 and int64.
bool_ = dtype("bool", np.bool_, False)
_DTYPES = {"float32": float32, "int64": int64, "bool": bool_}
# Keyed by the NumPy dtype object itself: ndarray.dtype.name builds a new string on every
# call (~2 us), a dict lookup on the dtype object costs ~20 ns, and Tensor.dtype is read by
# every op's argument check.
_DTYPES_NP = {d.np: d for d in _DTYPES.values()}


def _rebuild_on_device(cls, host, dev, requires_grad):
    t = Tensor._make(_to_device(host, _check_device(dev, "load")))
    if cls is not Tensor:
        return cls(t, requires_grad)  # nn.Parameter(data, requires_grad)
    t.requires_grad = requires_grad
    return t


def _dtype_by_name(name):
    return _DTYPES[name]


def _dtype_of(np_dtype) -> dtype:
    # NOTE (speed): the common dtypes straight from _DTYPES_NP (np.dtype(...).name costs
    # ~3 us under NumPy 2, where dtype.name is computed in Python).
    d = _DTYPES_NP.get(np_dtype)
    return d if d is not None else _DTYPES[np.dtype(np_dtype).name]


def _resolve_dtype(d, op="tensor"):
    """fastnn dtype, NumPy dtype, or name -> fastnn dtype; anything else is a TypeError."""
    if d is None or isinstance(d, dtype):
        return d
    name = getattr(d, "name", None) if not isinstance(d, str) else d
    try:
        name = np.dtype(d).name if name is None else name
    except TypeError:
        pass
    if name in _DTYPES:
        return _DTYPES[name]
    raise TypeError(f"[{op}] dtype must be fastnn.float32 or fastnn.int64, got {d!r}")


class device:
    """Where a tensor lives. Compares equal to its string form ("cpu", "cuda")."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index
        spec = str(spec)
        if ":" in spec:
            spec, idx = spec.split(":", 1)
            index = int(idx)
        if spec not in ("cpu", "cuda"):
            raise ValueError(f"[device] expected 'cpu' or 'cuda', got {spec!r}")
        self.type = spec
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


_CPU = device("cpu")


def _check_device(dev, op):
    """A device argument -> a fastnn.device; "cuda" without an index means cuda:0. Raises
    RuntimeError naming the reason when CUDA is asked for but unavailable."""
    if dev is None:
        return _CPU
    d = dev if isinstance(dev, device) else device(dev)
    if d.type == "cuda":
        if not _cuda.is_available():
            raise RuntimeError(f"[{op}] device 'cuda' requested, but "
                               + _cuda._unavailable_reason())
        idx = 0 if d.index is None else d.index
        n = _cuda.device_count()
        if not 0 <= idx < n:
            raise RuntimeError(f"[{op}] CUDA device index must be in [0, {n - 1}], got {idx}")
        return _cuda_device(idx)
    return _CPU


# ---- devices of arrays --------------------------------------------------------------------
# NOTE (speed): every op picks its kernel module with `type(a) is _ND` (~30 ns), falling back
# to _kernels(a) only when that fails; no dict lookup or import on the CPU path.
_ND = np.ndarray
_CUDA_DEVICES = {}


def _cuda_device(index):
    d = _CUDA_DEVICES.get(index)
    if d is None:
        d = _CUDA_DEVICES[index] = device("cuda", index)
    return d


def _is_host(a):
    return type(a) is _ND or isinstance(a, _ND)


def _kernels(a):
    """The kernel module for array a: fastnn._C for host arrays (and anything that is not a
    device array, so that _C reports the wrong type), the CUDA backend for its arrays."""
    if isinstance(a, _ND):
        return _C
    t = _cuda._array_type
    if t is not None and isinstance(a, t):
        return _cuda._backend
    return _C


def _device_of(a):
    return _CPU if _is_host(a) else _cuda_device(a.device_index)


# Whether sys.getrefcount shows every holder of an object: autograd's own condition for
# adopting gradients (CPython before 3.14; see the NOTE there).
_REFCOUNTS = _autograd._ADOPT


def _note_grad_change(g):
    """After a gradient tensor g was changed in place (accumulated into, zeroed): tell
    autograd (_C.note_inplace, see Tensor._changed) when something else may hold its memory:
    a recorded op that saved it, or a view of it, holds a reference to the array. Nothing
    does in an ordinary training step, and then no change is noted, so backward does not
    re-check the nodes still to run."""
    a = g._data
    # References: the slot, this local and getrefcount's argument. A gradient adopted as a
    # view (the reshape a leaf used through reshape/view hands back) shares its base: a view
    # taken of it points at that base, so the base's holders count too (its own: a.base,
    # the local b, getrefcount's argument). A CUDA array's reshapes hold no Python reference
    # to it; its block's sharing is _sole_owner's to say.
    if not _REFCOUNTS or sys.getrefcount(a) > 3:
        _C.note_inplace(a)
    elif type(a) is _ND:
        b = a.base
        if type(b) is _ND and sys.getrefcount(b) > 3:
            _C.note_inplace(a)
    elif not _is_host(a) and not a._sole_owner():
        _C.note_inplace(a)


def _host_only(t, op):
    """Refuse a CUDA tensor in an op that has no CUDA implementation (one that needs NumPy or
    a CPU-only kernel), rather than copying it to the host behind the caller's back."""
    if not _is_host(t._data):
        raise RuntimeError(f"[{op}] not supported on device {t.device}: this operation has "
                           f"no CUDA implementation; move the tensor with .cpu() first")


def _same_device(op, *tensors):
    """RuntimeError "[op] expected all tensors on the same device, got cpu and cuda:0" when
    the Tensors (None entries skipped) are not all on one device."""
    first = None
    for t in tensors:
        if t is None:
            continue
        d = _device_of(t._data)
        if first is None:
            first = d
        elif d != first:
            raise RuntimeError(f"[{op}] expected all tensors on the same device, got {first} "
                               f"and {d}")
    return first


def _to_device(a, dev, op="to"):
    """Array a on device dev (a checked fastnn.device): a itself when it is already there,
    else a copy (host <-> device, or device -> device through the host)."""
    host = _is_host(a)
    if dev.type == "cpu":
        return a if host else a.numpy()
    K = _cuda._require(op)
    if not host:
        if a.device_index == dev.index:
            return a
        a = a.numpy()
    return K.CudaArray.from_numpy(a, dev.index)


def _new_array(shape, dt, dev, fill=None):
    """A new C-contiguous array on dev (None: the CPU), filled with `fill` unless None."""
    if dev is None or dev.type == "cpu":
        a = _aligned(shape, dt)
        if fill is not None:
            a[...] = fill
        return a
    CA = _cuda._require("empty").CudaArray
    if fill is None:
        return CA.empty(tuple(shape), dt.name, dev.index)
    return CA.full(tuple(shape), fill, dt.name, dev.index)


def _zeros_like_array(a, dt=None):
    """float32 (or dt) zeros shaped like array a, on a's device."""
    dt = dt or float32
    if _is_host(a):
        return _C.zeros(tuple(a.shape), dt.name) if dt is not bool_ else \
            np.zeros(a.shape, np.bool_)
    return type(a).zeros(tuple(a.shape), dt.name, a.device_index)


def _copy_as(a, dt):
    """A new array with a's values as dtype dt, on a's device."""
    if _is_host(a):
        return _aligned_copy(a, dt)
    return a.clone() if a.dtype is dt.np else a.astype(dt.name)


def _aligned(shape, dt: dtype):
    """A new 64-byte-aligned C-contiguous array from the library allocator."""
    if dt is bool_:
        return np.empty(shape, np.bool_)
    # An ndarray's shape is already a tuple of ints (the common case, e.g. every gradient).
    return _C.empty(shape if type(shape) is tuple else tuple(int(s) for s in shape), dt.name)


def _aligned_copy(a: np.ndarray, dt: dtype):
    if a.dtype is dt.np and dt is not bool_ and a.flags.c_contiguous:
        return _C.clone(a)  # the common case (every first gradient of a leaf) in one call
    out = _aligned(a.shape, dt)
    np.copyto(out, a, casting="unsafe")
    return out


_SEEDS = {}


def _ones_seed(shape):
    """A new float32 array of ones shaped like a scalar loss (size 1): a copy of a cached one
    (~0.5 us less than np.ones, once per backward)."""
    one = _SEEDS.get(shape)
    if one is None:
        one = _SEEDS[shape] = np.ones(shape, np.float32)
    return one.copy()


def _contig(a):
    """The array itself if C-contiguous, else a contiguous copy (kernels take contiguous).
    A CUDA array is always C-contiguous."""
    # NOTE (speed): try costs nothing on the host path (Python 3.11's zero-cost exceptions);
    # a CUDA array has no .flags and is always C-contiguous.
    try:
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)
    except AttributeError:
        return a


class Tensor:
    """A multi-dimensional array of float32 or int64 with optional gradient tracking."""

    __slots__ = ("_data", "_requires_grad", "grad", "_node", "_index", "_retains_grad",
                 "_version", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to Tensor's operators (ndarray * Tensor -> Tensor)

    def __init__(self, data, requires_grad=False):
        if not isinstance(data, np.ndarray) or data.dtype not in _DTYPES_NP:
            t = _cuda._array_type  # a CUDA array is taken as it is, like an ndarray
            if t is None or not isinstance(data, t) or data.dtype not in _DTYPES_NP:
                data = tensor(data)._data
        self._data = data
        self._requires_grad = False
        self.grad = None
        self._node = None
        self._index = 0
        self._retains_grad = False
        self._version = 0  # bumped by every in-place op (see _changed)
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _make(cls, data, node=None, index=0):
        t = cls.__new__(cls)
        t._data = data
        t._requires_grad = node is not None
        t.grad = None
        t._node = node
        t._index = index
        t._retains_grad = False
        t._version = 0
        return t

    # ---- attributes ------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        nd = self._data.ndim
        if type(dim) is not int or not -nd <= dim < nd:
            if nd == 0:
                try:  # (the type check alone)
                    _fnmod("_check").wrap_dim(dim, 1, "size")
                except IndexError:
                    pass
                raise IndexError(f"[size] a 0-d tensor has no dims, got dim {dim!r}")
            dim = _fnmod("_check").wrap_dim(dim, nd, "size")
        return self._data.shape[dim]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def numel(self):
        return int(self._data.size)

    def nelement(self):
        return int(self._data.size)

    def stride(self, dim=None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[dim]

    def is_contiguous(self):
        a = self._data
        return bool(a.flags.c_contiguous) if _is_host(a) else True

    def data_ptr(self):
        a = self._data
        return int(a.ctypes.data) if _is_host(a) else int(a.data_ptr)

    @property
    def dtype(self):
        return _DTYPES_NP[self._data.dtype]

    @property
    def device(self):
        a = self._data
        return _CPU if type(a) is _ND or isinstance(a, _ND) else _cuda_device(a.device_index)

    @property
    def is_cuda(self):
        return not _is_host(self._data)

    @property
    def is_cpu(self):
        return _is_host(self._data)

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if self._node is not None and not value:
            raise RuntimeError("[requires_grad_] you can only change requires_grad of leaf "
                               "tensors; use detach() to get a tensor without gradient")
        if value and not self.dtype.is_floating_point:
            raise RuntimeError(f"[requires_grad_] only float32 tensors can require gradients, "
                               f"got {self.dtype}")
        self._requires_grad = value

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def data(self):
        return Tensor._make(self._data)

    @data.setter
    def data(self, value):
        value = value if isinstance(value, Tensor) else tensor(value)
        self._data = value._data

    def retain_grad(self):
        if self._node is not None:
            self._retains_grad = True

    # Every dim reversed. The getter is _C.tensor_T (a host tensor with nothing to record: its
    # array's NumPy transpose, in C), which hands the rest to _T_py below.
    T = property(_C.tensor_T)

    @property
    def mT(self):
        return self.transpose(-2, -1)

    # ---- autograd --------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``, as torch.Tensor.backward."""
        node = self._node
        if gradient is None and node is not None:
            d = self._data
            if type(d) is _ND and d.size == 1:
                # The common case (a scalar loss on the host), straight to the engine; what
                # follows checks and converts everything else.
                _C.run_backward(node, self._index, _ones_seed(d.shape), retain_graph)
                return
        if not self._requires_grad:
            raise RuntimeError("[backward] element 0 of tensors does not require grad and does "
                               "not have a grad_fn")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"[backward] grad can be implicitly created only for scalar "
                                   f"outputs; got shape {tuple(self.shape)}: pass gradient=")
            if type(self._data) is not _ND and not _is_host(self._data):
                g = _new_array(self._data.shape, float32, self.device, 1.0)
            else:
                g = _ones_seed(self._data.shape)
        else:
            if isinstance(gradient, Tensor):
                _same_device("backward", self, gradient)
                g = gradient._data
            elif not _is_host(self._data):
                raise RuntimeError(f"[backward] expected all tensors on the same device, got "
                                   f"{self.device} and a {type(gradient).__name__} (cpu)")
            else:
                g = np.asarray(gradient)
            if g.shape != self._data.shape:
                raise RuntimeError(f"[backward] gradient must have shape {tuple(self.shape)}, "
                                   f"got {tuple(g.shape)}")
            if _is_host(g):
                # No copy when it is already float32 and contiguous: backward only reads the
                # seed, and a leaf never adopts it (the caller still references it).
                g = _contig(np.asarray(g, dtype=np.float32))
            else:
                g = _copy_as(g, float32)
        run_backward(self, g, retain_graph=bool(retain_graph))

    def _accumulate_grad(self, g, adopt=False):
        """adopt: g is a float32 array nothing else references (see autograd's NOTE on
        adopting gradients); otherwise the first gradient is copied, since the graph may hand
        the same array to several consumers."""
        if self.grad is None:
            if adopt:
                self.grad = Tensor._make(g)
            else:
                self.grad = Tensor._make(_aligned_copy(g, float32) if type(g) is _ND
                                         else _copy_as(g, float32))
        else:
            _ew = _fnmod("elementwise")
            _ew.add_inplace(self.grad._data, _contig(g))
            _note_grad_change(self.grad)

    def detach(self):
        return Tensor._make(self._data)

    def detach_(self):
        self._node = None
        self._requires_grad = False
        return self

    # ---- conversion ------------------------------------------------------------------
    def _host_data(self, op):
        """The host array, or (CUDA tensor) TypeError as PyTorch: no implicit device->host copy."""
        a = self._data
        if not _is_host(a):
            raise TypeError(f"[{op}] can't convert {self.device} device type tensor to numpy; "
                            f"use .cpu() first to copy the tensor to host memory")
        return a

    def numpy(self, force=False):
        if self._requires_grad and not force:
            raise RuntimeError("[numpy] can't call numpy() on a tensor that requires grad; use "
                               "tensor.detach().numpy()")
        return self._host_data("numpy")

    def __array__(self, dtype=None, copy=None):
        a = self._host_data("__array__")
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __dlpack__(self, stream=None, **kwargs):
        a = self._data
        if not _is_host(a):  # a kDLCUDA capsule from the backend (zero copy)
            return a.__dlpack__(stream=stream)
        return a.__dlpack__(**kwargs) if kwargs else a.__dlpack__()

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"[item] only one-element tensors can be converted to Python "
                             f"scalars, got shape {tuple(self.shape)}")
        a = self._data
        return a.reshape(()).item() if _is_host(a) else a.item()

    def tolist(self):
        a = self._data
        return (a if _is_host(a) else a.numpy()).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype is not int64:
            raise TypeError("[__index__] only int64 tensors can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"[bool] the truth value of a tensor with {self._data.size} "
                               f"elements is ambiguous")
        return bool(self.item())

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("[len] len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("[iter] iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __reduce_ex__(self, protocol):
        a = self._data
        if type(a) is _ND or isinstance(a, _ND):
            return super().__reduce_ex__(protocol)
        # A CUDA tensor pickles (and deep-copies) through the host and comes back on its
        # device, as a Tensor or Parameter (the graph is not kept, as for a detached copy).
        return (_rebuild_on_device, (type(self), a.numpy(), str(self.device),
                                     self._requires_grad))

    def __repr__(self):
        a = self._data
        host = _is_host(a)
        # Printing a CUDA tensor copies it to the host (as PyTorch does).
        body = np.array2string(a if host else a.numpy(), separator=", ", precision=4,
                               prefix="tensor(")
        extra = "" if host else f", device='{self.device}'"
        if self.dtype is not float32 and not (self.dtype is int64 and self._data.size > 0):
            extra += f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node!r}"
        elif self._requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype), to(other_tensor). Returns self when
        nothing changes; a move between devices is a copy that gradients flow back through."""
        dev, dt = _parse_to(args, kwargs)
        out = self
        if dev is not None:
            d = _check_device(dev, "to")
            if d != _device_of(self._data):
                _sh = _fnmod("shape")
                out = _sh.ToDevice.apply(self, d)
        if dt is not None:
            out = out.type(dt)
        return out

    def cpu(self):
        return self if _is_host(self._data) else self.to(_CPU)

    def cuda(self, device=None):
        return self.to(_cuda_arg(device))

    def type(self, dt):
        dt = _resolve_dtype(dt, "to")
        if dt is self.dtype:
            return self
        _sh = _fnmod("shape")
        return _sh.Cast.apply(self, dt)

    def float(self):
        return self.type(float32)

    def long(self):
        return self.type(int64)

    def int(self):
        return self.type(int64)

    def bool(self):
        return self.type(bool_)

    def clone(self):
        d = self._data
        if type(d) is _ND and not (self._requires_grad and grad_mode.enabled):
            # Nothing to record: the copy alone (the Function machinery was most of a small
            # clone's ~3.5 us).
            return Tensor._make(_copy_as(d, _dtype_of(d.dtype)))
        _sh = _fnmod("shape")
        return _sh.Clone.apply(self)

    def contiguous(self):
        return self if self.is_contiguous() else self.clone()

    # ---- in place ----------------------------------------------------------------------
    def _check_inplace(self, op):
        if grad_mode.enabled and self._requires_grad:
            if self._node is None:
                raise RuntimeError(f"[{op}] a leaf tensor that requires grad is being used in "
                                   f"an in-place operation; wrap it in fastnn.no_grad()")
            # NOTE: the autograd graph records operations, not memory: an in-place change of
            # a tensor inside the graph would make its backward silently wrong, so it is
            # refused (PyTorch records it instead; fastnn asks for the out-of-place form).
            raise RuntimeError(f"[{op}] in-place operations on a tensor that is part of the "
                               f"autograd graph (it comes from {self._node.name}) are not "
                               f"supported; write it out of place, e.g. y = y * 3")
        a = self._data
        if _is_host(a) and not a.flags.writeable:
            raise ValueError(f"[{op}] tensor memory is read-only")

    def _changed(self):
        """Called by every in-place method once it has changed self's memory: bumps
        ``_version`` and tells autograd (``_C.note_inplace``) that this memory, which views
        and other tensors may share, changed, so backward refuses to use a value a recorded
        op saved from it before the change (as PyTorch's version counters). Returns self."""
        self._version += 1
        _C.note_inplace(self._data)
        return self

    def zero_(self):
        self._check_inplace("zero_")
        return self._fill(0)._changed()

    def fill_(self, value):
        self._check_inplace("fill_")
        return self._fill(value.item() if isinstance(value, Tensor) else value)._changed()

    def _fill(self, value):
        a = self._data
        if _is_host(a):
            a[...] = value
        else:
            a.fill_(value)
        return self

    def copy_(self, src):
        """Copy src's values (broadcast to self's shape, cast to self's dtype) into self;
        src may live on another device (an explicit copy, as PyTorch's copy_)."""
        self._check_inplace("copy_")
        if isinstance(src, Tensor):
            s = src._data
        else:
            s = np.asarray(src)
        a = self._data
        if not _is_host(a) and not _is_host(s) and s.shape == a.shape and s.dtype is a.dtype:
            a.copy_(s)  # device to device
            return self._changed()
        if not _is_host(s):
            s = s.numpy()
        if _is_host(a):
            np.copyto(a, np.broadcast_to(s, a.shape), casting="unsafe")
        else:
            host = np.empty(a.shape, a.dtype)
            np.copyto(host, np.broadcast_to(s, a.shape), casting="unsafe")
            a.copy_(host)
        return self._changed()

    def _write_host(self, values):
        """Store a host array of self's shape into self (on any device)."""
        a = self._data
        if _is_host(a):
            a[...] = values
        else:
            a.copy_(np.array(values, dtype=a.dtype, order="C"))  # (keeps 0-d as 0-d)

    def __setitem__(self, idx, value):
        if isinstance(value, Tensor) and value._requires_grad and grad_mode.enabled:
            raise RuntimeError("[__setitem__] assigning a tensor that requires grad into "
                               "another tensor would drop its gradient; build the result out "
                               "of place (fastnn.cat, fastnn.where)")
        _host_only(self, "__setitem__")
        self._check_inplace("__setitem__")
        idx = _unwrap_index(idx)
        try:
            self._data[idx] = value._data if isinstance(value, Tensor) else value
        except (ValueError, IndexError) as e:
            raise type(e)(f"[__setitem__] cannot assign to index {idx!r} of a tensor of shape "
                          f"{tuple(self.shape)}: {e}") from None
        self._changed()

    def add_(self, other, alpha=1):
        self._check_inplace("add_")
        _ew = _fnmod("elementwise")
        _ew.inplace(self, other, "add", alpha)
        return self._changed()

    def sub_(self, other, alpha=1):
        return self.add_(other, alpha=-alpha)

    def mul_(self, other):
        self._check_inplace("mul_")
        _ew = _fnmod("elementwise")
        _ew.inplace(self, other, "mul", 1)
        return self._changed()

    def div_(self, other):
        self._check_inplace("div_")
        _ew = _fnmod("elementwise")
        _ew.inplace(self, other, "div", 1)
        return self._changed()

    def uniform_(self, a=0.0, b=1.0):
        # Drawn on the host from the one generator (same values on every device), then copied.
        self._check_inplace("uniform_")
        self._write_host(default_generator.uniform(a, b, self._data.shape))
        return self._changed()

    def normal_(self, mean=0.0, std=1.0):
        self._check_inplace("normal_")
        self._write_host(default_generator.normal(mean, std, self._data.shape))
        return self._changed()

    # ---- shape and indexing (views, in _functions/shape.py) -----------------------------
    # NOTE (speed): reshape, flatten, unsqueeze and indexing by ints and slices are views;
    # with nothing to record (no grad required, or grad mode off) on a host tensor they are
    # the NumPy call and a new Tensor (~1 us), not the Function machinery and argument
    # checks (2-3 us). Anything NumPy refuses goes the general way, which raises the error.
    def _plain(self):
        """The host array when this call records nothing, else None."""
        d = self._data
        return d if type(d) is _ND and not (self._requires_grad and grad_mode.enabled) else None

    # reshape and view: sizes as ints on a host tensor with nothing to record in C
    # (_C.tensor_reshape / tensor_view, NumPy's reshape); everything else through _reshape_py
    # and _view_py below.
    reshape = _C.tensor_reshape_method
    view = _C.tensor_view_method

    def view_as(self, other):
        return self.reshape(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if type(start_dim) is int and type(end_dim) is int and (d := self._plain()) is not None:
            # The C reshape route does the rest (a view where the layout allows).
            # NOTE (speed): x.flatten(1), every CNN's step from features to a classifier (and
            # nn.Flatten's default), 2.1 -> ~0.5 us on Zen 4 through this shortcut.
            if start_dim == 0 and end_dim == -1:
                return self.reshape(-1)  # (a 0-d tensor gives shape (1,), as PyTorch)
            nd, shape = d.ndim, d.shape
            s = start_dim + nd if start_dim < 0 else start_dim
            e = end_dim + nd if end_dim < 0 else end_dim
            if 0 <= s <= e < nd:
                return self.reshape(shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])
        _sh = _fnmod("shape")
        return _sh.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        _sh = _fnmod("shape")
        return _sh.transpose(self, dim0, dim1)

    # t(): C (_C.tensor_t, T's shortcut for at most 2 dims), the rest through _t_py below.
    t = _C.tensor_t_method

    def permute(self, *dims):
        _sh = _fnmod("shape")
        return _sh.permute(self, _shape_args(dims, "permute", "dims"))

    def unsqueeze(self, dim):
        d = self._plain()
        if d is not None and type(dim) is int and -d.ndim - 1 <= dim <= d.ndim:
            s = d.shape
            k = dim % (d.ndim + 1)
            return Tensor._make(d.reshape(s[:k] + (1,) + s[k:]))
        _sh = _fnmod("shape")
        return _sh.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        _sh = _fnmod("shape")
        return _sh.squeeze(self, dim)

    def expand(self, *sizes):
        _sh = _fnmod("shape")
        return _sh.expand(self, _shape_args(sizes, "expand"))

    # Ints and slices on a host tensor with nothing to record in C (_C.tensor_getitem, NumPy's
    # view); everything else through shape.py's getitem.
    __getitem__ = _C.tensor_getitem_method

    # ---- math (C++ kernels through _functions) -------------------------------------------
    # Arithmetic: C entries (see _C.tensor_add etc.) that do the common call (float32 host
    # tensors, or a tensor and a Python number, nothing to record) and hand the rest to
    # elementwise.py's general routes (_add_py, _radd_py, ...).
    __add__ = _C.tensor_add_method
    __radd__ = _C.tensor_radd_method
    __sub__ = _C.tensor_sub_method
    __rsub__ = _C.tensor_rsub_method
    __mul__ = _C.tensor_mul_method
    __rmul__ = _C.tensor_rmul_method
    __truediv__ = _C.tensor_div_method
    __rtruediv__ = _C.tensor_rdiv_method
    __pow__ = _C.tensor_pow_method

    def __rpow__(self, o):
        return _ew().pow(o, self)

    __neg__ = _C.tensor_neg_method  # (C entries, see _C.tensor_neg)

    def __pos__(self):
        return self

    __abs__ = _C.tensor_abs_method

    # fastnn.matmul itself (C, see _C.tensor_matmul), bound like a method.
    __matmul__ = _C.tensor_matmul_method

    def __rmatmul__(self, o):
        return _dense().matmul(o, self)

    def __floordiv__(self, o):
        return _ew().floor_divide(self, o)

    def __rfloordiv__(self, o):
        return _ew().floor_divide(o, self)

    def __mod__(self, o):
        return _ew().remainder(self, o)

    def __rmod__(self, o):
        return _ew().remainder(o, self)

    def __iadd__(self, o):
        return self.add_(o)

    def __isub__(self, o):
        return self.sub_(o)

    def __imul__(self, o):
        return self.mul_(o)

    def __itruediv__(self, o):
        return self.div_(o)

    # Comparisons: C entries (see _C.tensor_eq) for a float32 host tensor against a number or
    # a tensor of its shape; elementwise.compare for the rest.
    __eq__ = _C.tensor_eq_method
    __ne__ = _C.tensor_ne_method
    __lt__ = _C.tensor_lt_method
    __le__ = _C.tensor_le_method
    __gt__ = _C.tensor_gt_method
    __ge__ = _C.tensor_ge_method

    def eq(self, o):
        return self == o

    def ne(self, o):
        return self != o

    def lt(self, o):
        return self < o

    def le(self, o):
        return self <= o

    def gt(self, o):
        return self > o

    def ge(self, o):
        return self >= o

    def add(self, o, alpha=1):
        return self + (o * alpha if alpha != 1 else o)

    def sub(self, o, alpha=1):
        return self - (o * alpha if alpha != 1 else o)

    def mul(self, o):
        return self * o

    def div(self, o):
        return self / o

    def pow(self, o):
        return self ** o

    def neg(self):
        return -self

    # fastnn.abs, exp, log, sqrt themselves (C entries, see _C.tensor_exp), bound like methods.
    abs = _C.tensor_abs_method
    exp = _C.tensor_exp_method
    log = _C.tensor_log_method
    sqrt = _C.tensor_sqrt_method

    def square(self):
        return self * self

    clamp = _C.tensor_clamp_method  # fastnn.clamp itself (C, see _C.tensor_clamp)

    clip = clamp

    def maximum(self, o):
        return _ew().maximum(self, o)

    def minimum(self, o):
        return _ew().minimum(self, o)

    # fastnn.relu itself (C, see _C.tensor_relu), bound like a method.
    relu = _C.tensor_relu_method

    # fastnn.sigmoid and tanh themselves (C entries, see _C.tensor_relu), bound like methods.
    sigmoid = _C.tensor_sigmoid_method
    tanh = _C.tensor_tanh_method

    softmax = _C.tensor_softmax_method  # (dim by position or as dim=; see _softmax_py)
    log_softmax = _C.tensor_log_softmax_method

    def argmax(self, dim=None, keepdim=False):
        softmax = _fnmod("softmax")
        return softmax.argmax(self, dim, keepdim)

    # fastnn.sum and mean themselves (C entries, see _C.tensor_sum), bound like methods.
    sum = _C.tensor_sum_method
    mean = _C.tensor_mean_method

    def max(self, dim=None, keepdim=False):
        reduce = _fnmod("reduce")
        return reduce.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        reduce = _fnmod("reduce")
        return reduce.min(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _fnmod("reduce").argmin(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _fnmod("reduce").var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _fnmod("reduce").std(self, dim, unbiased, keepdim, correction=correction)

    def any(self, dim=None, keepdim=False):
        return _fnmod("reduce").any(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return _fnmod("reduce").all(self, dim, keepdim)

    # ---- bitwise / logical operators (bool and int64, on the host; not differentiable) --
    def _bitwise(self, other, op, name, reflected=False):
        """self op other for bool or int64 tensors (a bool and an int64 give int64, as
        PyTorch); float32 is refused as PyTorch refuses it."""
        _host_only(self, name)
        o = other
        if isinstance(o, Tensor):
            _host_only(o, name)
            o = o._data
        elif isinstance(o, _ND):
            pass  # (its dtype is checked below, as a tensor's)
        elif isinstance(o, (bool, np.bool_)):
            o = np.asarray(o, np.bool_)
        elif isinstance(o, numbers.Integral) and -2**63 <= int(o) < 2**63:
            o = np.asarray(int(o), np.int64)
        else:
            return NotImplemented
        for what, a in (("input", self._data), ("other", o)):
            if a.dtype != np.bool_ and a.dtype != np.int64:
                raise TypeError(f"[{name}] {what} must be bool or int64, got {a.dtype.name}")
        a, b = (o, self._data) if reflected else (self._data, o)
        if a.dtype != b.dtype:
            a, b = a.astype(np.int64), b.astype(np.int64)
        try:
            r = op(a, b)
        except ValueError as e:
            raise ValueError(f"[{name}] shapes {tuple(np.shape(a))} and {tuple(np.shape(b))} "
                             f"do not broadcast: {e}") from None
        r = np.asarray(r)  # (a 0-d result comes back from NumPy as a scalar)
        return Tensor._make(r if r.flags.c_contiguous else np.ascontiguousarray(r))

    def __and__(self, o):
        return self._bitwise(o, np.bitwise_and, "bitwise_and")

    def __rand__(self, o):
        return self._bitwise(o, np.bitwise_and, "bitwise_and", True)

    def __or__(self, o):
        return self._bitwise(o, np.bitwise_or, "bitwise_or")

    def __ror__(self, o):
        return self._bitwise(o, np.bitwise_or, "bitwise_or", True)

    def __xor__(self, o):
        return self._bitwise(o, np.bitwise_xor, "bitwise_xor")

    def __rxor__(self, o):
        return self._bitwise(o, np.bitwise_xor, "bitwise_xor", True)

    def _bitwise_inplace(self, other, op, name):
        """self op= other in place, as PyTorch: the result must keep self's shape and dtype
        (a bool tensor cannot take an int64 result)."""
        self._check_inplace(name)
        r = self._bitwise(other, op, name)
        if r is NotImplemented:  # (returned, Python would rebind the name to another object)
            raise TypeError(f"[{name}] other must be a bool/int64 tensor, array or number, "
                            f"got {type(other).__name__}")
        if r._data.dtype != self._data.dtype:
            raise TypeError(f"[{name}] the result type {r.dtype.name} cannot be stored in a "
                            f"{self.dtype.name} tensor in place")
        if r._data.shape != self._data.shape:
            raise ValueError(f"[{name}] the result has shape {tuple(r.shape)}, not the "
                             f"shape {tuple(self.shape)} of the tensor updated in place")
        np.copyto(self._data, r._data)
        return self._changed()

    def __iand__(self, o):
        return self._bitwise_inplace(o, np.bitwise_and, "bitwise_and_")

    def __ior__(self, o):
        return self._bitwise_inplace(o, np.bitwise_or, "bitwise_or_")

    def __ixor__(self, o):
        return self._bitwise_inplace(o, np.bitwise_xor, "bitwise_xor_")

    def __invert__(self):
        _host_only(self, "bitwise_not")
        a = self._data
        if a.dtype != np.bool_ and a.dtype != np.int64:
            raise TypeError(f"[bitwise_not] input must be bool or int64, got {self.dtype.name}")
        return Tensor._make(np.asarray(np.invert(a)))

    matmul = _C.tensor_matmul_method  # (x.matmul(y): fastnn.matmul, as x @ y)


def _ew():
    elementwise = _fnmod("elementwise")
    return elementwise


# NOTE: an import statement inside a method costs ~0.2 us per call (the import machinery runs
# even for a loaded module), a real share of a small op: the _functions modules (which import
# this one, hence the lazy lookup) are imported once and cached here.
_FN_MODS = {}


def _fnmod(name):
    m = _FN_MODS.get(name)
    if m is None:
        import importlib
        m = _FN_MODS[name] = importlib.import_module(__package__ + "._functions." + name)
    return m


def _dense():
    return _fnmod("dense")


class Size(tuple):
    """torch.Size: a tuple of ints with a readable repr."""

    def __repr__(self):
        return f"fastnn.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


def _as_index(v):
    """v as an int: an int, a NumPy integer or a 0-d int64 tensor (anything with __index__),
    as PyTorch's argument parser takes them; TypeError for a bool, a float or a tensor of
    another shape. (Callers word the message: dims, sizes.)"""
    if isinstance(v, bool) or (isinstance(v, Tensor) and v.ndim != 0):
        raise TypeError(f"expected an int, got {type(v).__name__}")
    try:
        return operator.index(v)
    except ValueError as e:  # (item() of a tensor that is not one int)
        raise TypeError(str(e)) from None


def _shape_args(shape, op="reshape", what="sizes"):
    """Sizes given as ints or as one tuple/list/Size, as a tuple of ints. Each an int, a NumPy
    integer or a 0-d int64 tensor; a float or a bool is a TypeError, as in PyTorch (int() would
    turn 2.5 into 2 and make a wrong shape look right)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    if all([type(s) is int for s in shape]):
        return tuple(shape)
    out = []
    for s in shape:
        try:
            out.append(_as_index(s))
        except TypeError:
            raise TypeError(f"[{op}] {what} must be ints, got {type(s).__name__}") from None
    return tuple(out)


def _unwrap_index(idx):
    if isinstance(idx, Tensor):
        return idx._data
    if isinstance(idx, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in idx)
    return idx


# ---- construction -------------------------------------------------------------------------
class _Generator:
    """The global random source (NumPy PCG64), reseeded by fastnn.manual_seed."""

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def manual_seed(self, seed):
        self.rng = np.random.default_rng(int(seed))
        return self

    def uniform(self, a, b, shape):
        return self.rng.uniform(a, b, shape).astype(np.float32)

    def normal(self, mean, std, shape):
        return self.rng.normal(mean, std, shape).astype(np.float32)


default_generator = _Generator()


def manual_seed(seed):
    """Seed fastnn's random number generator (initialisation, rand/randn, dropout, shuffle)."""
    return default_generator.manual_seed(seed)


def _host_values(t):
    """A Tensor's values as a host array (a copy for a CUDA tensor): for constructors, which
    copy their data anyway."""
    a = t._data
    return a if _is_host(a) else a.numpy()


def _infer_array(data, dt, op):
    """Python data / NumPy array -> (array, fastnn dtype) with fastnn's dtype rules."""
    if isinstance(data, Tensor):
        data = _host_values(data)
    if isinstance(data, (list, tuple)) and any(isinstance(x, Tensor) for x in data):
        data = [_host_values(x) if isinstance(x, Tensor) else x for x in data]
    try:
        a = np.asarray(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"[{op}] could not convert data to an array: {e}") from None
    if dt is None:
        k = a.dtype.kind
        if k == "f":
            dt = float32
        elif k in "iu":
            dt = int64
        elif k == "b":
            dt = bool_
        else:
            raise TypeError(f"[{op}] data must be numbers (float32 or int64), got an array of "
                            f"dtype {a.dtype}")
    elif a.dtype.kind not in "fiub":
        raise TypeError(f"[{op}] data must be numbers, got an array of dtype {a.dtype}")
    return a, dt


def tensor(data, dtype=None, device=None, requires_grad=False):
    """Copy data into a new tensor: floats become float32, integers int64 (as PyTorch)."""
    if device is None and isinstance(data, Tensor):
        device = _device_of(data._data)  # torch.tensor(t) keeps t's device
    dev = _check_device(device, "tensor")
    dt = _resolve_dtype(dtype, "tensor")
    a, dt = _infer_array(data, dt, "tensor")
    out = Tensor._make(_on_device(_aligned_copy(a, dt), dev))
    if requires_grad:
        out.requires_grad = True
    return out


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    return tensor(data, dtype=dtype, device=device)


def _on_device(a, dev):
    """Fresh host array a, moved to dev when that is a CUDA device."""
    return a if dev is _CPU else _to_device(a, dev)


def _cuda_arg(device):
    """cuda()'s argument: None, an index (as PyTorch's t.cuda(0)), or a device."""
    if device is None:
        return "cuda"
    if isinstance(device, numbers.Integral) and not isinstance(device, bool):
        return f"cuda:{int(device)}"
    return device


def _parse_to(args, kwargs):
    """(device or None, dtype or None) from to()'s PyTorch-style arguments."""
    dev = kwargs.pop("device", None)
    dt = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("copy", None)
    for a in args:
        if isinstance(a, Tensor):
            dev, dt = a.device, a.dtype
        elif isinstance(a, (dtype, np.dtype, type)):
            dt = a
        else:
            dev = a
    return dev, dt


def from_numpy(a):
    """A tensor sharing memory with a C-contiguous, writable float32 or int64 NumPy array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"[from_numpy] expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.int64):
        raise TypeError(f"[from_numpy] array must be float32 or int64, got {a.dtype} "
                        f"(use fastnn.tensor(a) to copy and convert)")
    if not a.flags.c_contiguous:
        raise ValueError("[from_numpy] array must be C-contiguous to share memory, got a "
                         "strided view (use fastnn.tensor(a) to copy)")
    if not a.flags.writeable:
        raise ValueError("[from_numpy] array must be writable to share memory, got a read-only "
                         "array (use fastnn.tensor(a) to copy)")
    return Tensor._make(a)


def _size_args(size, op):
    shape = _shape_args(size, op)
    if any(s < 0 for s in shape):
        raise ValueError(f"[{op}] sizes must be non-negative, got {shape}")
    n = 1
    for s in shape:
        n *= s
    if n >= 2**60:  # (8-byte elements: the byte count must fit in int64)
        raise ValueError(f"[{op}] sizes {shape} give {n} elements, more than memory can hold")
    return shape


def _new(shape, dtype, requires_grad, fill, op, device=None):
    dev = _check_device(device, op)
    dt = _resolve_dtype(dtype, op) or float32
    t = Tensor._make(_new_array(_size_args(shape, op), dt, dev, fill))
    if requires_grad:
        t.requires_grad = True
    return t


def named_as(name):
    """Decorator for a fast route's general route (_softmax_py, ...): Python's own argument
    errors (a missing or unexpected argument) then name the public function, softmax(), as
    the caller wrote it."""
    def wrap(fn):
        fn.__qualname__ = name
        fn.__code__ = fn.__code__.replace(co_name=name)  # (what Python 3.9 and 3.10 print)
        return fn
    return wrap


@named_as("reshape")
def _reshape_py(self, *shape):
    """Tensor.reshape's general route (see Tensor.reshape): recorded, on a device, or sizes
    given as NumPy integers or 0-d tensors; the errors."""
    return _fnmod("shape").reshape(self, _shape_args(shape))


@named_as("view")
def _view_py(self, *shape):
    """Tensor.view's general route: reshape's, refusing a layout that needs a copy, as
    PyTorch (a view shares its tensor's data; reshape copies where it must)."""
    out = _reshape_py(self, *shape)
    if out.data_ptr() != self.data_ptr() and out.numel() > 0:
        raise RuntimeError(f"[view] shape {tuple(out.shape)} cannot be a view of a tensor of "
                           f"shape {tuple(self.shape)} with this layout (a transposed or "
                           f"strided one): use reshape(), which copies")
    return out


def _T_py(self):
    """Tensor.T's general route (see Tensor.T): recorded, or on a device."""
    n = self._data.ndim
    if n < 2:
        return self
    _host_only(self, "permute")  # (the reversed dims need no checks)
    return _fnmod("shape").Permute.apply(self, (1, 0) if n == 2 else tuple(range(n - 1, -1, -1)))


def _t_py(self):
    """Tensor.t()'s general route: recorded, on a device, or more than 2 dims (an error, as
    PyTorch's)."""
    d = self._data
    if d.ndim > 2:
        raise RuntimeError(f"[t] expects a tensor with at most 2 dimensions, got {d.ndim} "
                           f"dimensions (shape {tuple(d.shape)}); use transpose(dim0, dim1) or "
                           f"permute")
    if d.ndim < 2:
        return self
    _host_only(self, "transpose")
    return _fnmod("shape").Permute.apply(self, (1, 0))


# empty, zeros and ones are C entries (_C.tensor_zeros, ...: csrc/bindings/bind_autograd.cpp)
# that make the common call (sizes as non-negative ints, nothing else given: fastnn.zeros(n, h),
# a recurrent layer's first state) themselves and hand every other call to these.
@named_as("empty")
def _empty_py(*size, dtype=None, device=None, requires_grad=False):
    return _new(size, dtype, requires_grad, None, "empty", device)


@named_as("zeros")
def _zeros_py(*size, dtype=None, device=None, requires_grad=False):
    return _new(size, dtype, requires_grad, 0, "zeros", device)


@named_as("ones")
def _ones_py(*size, dtype=None, device=None, requires_grad=False):
    return _new(size, dtype, requires_grad, 1, "ones", device)


empty = _C.tensor_empty
zeros = _C.tensor_zeros
ones = _C.tensor_ones


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = int64 if isinstance(fill_value, numbers.Integral) and not isinstance(
            fill_value, bool) else float32
    single = isinstance(size, (numbers.Integral, Tensor))  # (a bool too: refused as a size)
    return _new((size,) if single else size, dtype, requires_grad, fill_value, "full", device)


def _like(t, dtype, device):
    """(shape, dtype, device) of a *_like result: t's unless given (as PyTorch)."""
    return (t.shape, (dtype if dtype is not None else t.dtype),
            (device if device is not None else t.device))


def empty_like(t, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(t, dtype, device)
    return empty(s, dtype=d, device=dev, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(t, dtype, device)
    return zeros(s, dtype=d, device=dev, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(t, dtype, device)
    return ones(s, dtype=d, device=dev, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    s, d, dev = _like(t, dtype, device)
    return full(s, fill_value, dtype=d, device=dev, requires_grad=requires_grad)


def _random(size, dtype, requires_grad, draw, op, device=None):
    # Drawn on the host (one generator, the same values on every device), then copied.
    dev = _check_device(device, op)
    dt = _resolve_dtype(dtype, op) or float32
    if not dt.is_floating_point:
        raise TypeError(f"[{op}] dtype must be float32, got {dt}")
    shape = _size_args(size, op)
    t = Tensor._make(_on_device(_aligned_copy(draw(shape), float32), dev))
    if requires_grad:
        t.requires_grad = True
    return t


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    return _random(size, dtype, requires_grad, lambda s: default_generator.rng.random(s), "rand",
                   device)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    return _random(size, dtype, requires_grad, lambda s: default_generator.rng.standard_normal(s),
                   "randn", device)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, dtype=dtype, device=device if device is not None else t.device,
                requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, dtype=dtype, device=device if device is not None else t.device,
                 requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"[randint] high must be greater than low, got low={low}, high={high}")
    dev = _check_device(device, "randint")
    a = default_generator.rng.integers(low, high, _size_args(size, "randint"))
    return Tensor._make(_on_device(_aligned_copy(a, _resolve_dtype(dtype, "randint") or int64),
                                   dev))


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("[arange] step must be non-zero")
    a = np.arange(start, end, step)
    dt = _resolve_dtype(dtype, "arange") or (
        int64 if all(isinstance(v, numbers.Integral) for v in (start, end, step)) else float32)
    return _new_from(a, dt, requires_grad, device, "arange")


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    if int(steps) < 0:
        raise ValueError(f"[linspace] steps must be non-negative, got {steps}")
    a = np.linspace(start, end, int(steps))
    return _new_from(a, _resolve_dtype(dtype, "linspace") or float32, requires_grad, device,
                     "linspace")


def _new_from(a, dt, requires_grad, device, op):
    dev = _check_device(device, op)
    t = Tensor._make(_on_device(_aligned_copy(a, dt), dev))
    if requires_grad:
        t.requires_grad = True
    return t


# Function.apply's C++ side needs the Tensor class (fastnn.autograd cannot import this module).
_autograd._setup(Tensor)
