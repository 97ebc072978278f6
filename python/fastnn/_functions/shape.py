"""Views and data movement: reshape, transpose, permute, (un)squeeze, expand, indexing, cat,
stack, where, casts, device moves. These move or select data without arithmetic, so they are
NumPy views and copies; their backward routes gradients back to the positions they came from.

On CUDA tensors: reshape (and flatten, (un)squeeze), expand, casts, clone and device moves
work (CudaArray views and the backend's expand kernel); permute/transpose, indexing, cat,
stack and where need NumPy and raise "[op] not supported on device cuda"."""
import numpy as np

from .. import _C
from ._check import named_as, wrap_dim as _wrap
from ..autograd import Function, grad_mode
from .reduce import sum_axes
from ..tensor import (Tensor, _ND, _aligned, _aligned_copy, _copy_as, _device_of, _dtype_of,
                      _host_only, _is_host, _kernels, _to_device, _unwrap_index, bool_,
                      float32, int64, tensor)


_F32 = np.dtype(np.float32)
_F32_MAX = float(np.finfo(np.float32).max)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)  # one tuple argument: the form CudaArray.reshape takes
        except ValueError:
            raise ValueError(f"[reshape] shape {tuple(shape)} is invalid for input of shape "
                             f"{x.shape} ({x.size} elements)") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(tuple(ctx.in_shape))


def reshape(x, shape):
    shape = tuple(shape)
    for s in shape:
        if s < -1:  # (NumPy would take any negative size as the inferred one)
            raise ValueError(f"[reshape] invalid size {s} in shape {shape}: sizes are >= 0, "
                             f"or -1 for one inferred size")
    return Reshape.apply(x, shape)


def flatten(x, start_dim=0, end_dim=-1):
    s = _wrap(start_dim, x.ndim, "flatten", "start_dim")
    e = _wrap(end_dim, x.ndim, "flatten", "end_dim")
    if x.ndim == 0:
        return reshape(x, (1,))
    if s > e:
        raise ValueError(f"[flatten] start_dim ({start_dim}) must not come after end_dim ({end_dim})")
    shp = x.shape
    n = 1
    for d in shp[s:e + 1]:
        n *= d
    return reshape(x, tuple(shp[:s]) + (n,) + tuple(shp[e + 1:]))


class Permute(Function):
    # NOTE (speed): x.T (x @ w.T in every hand-written layer) comes through here, so forward
    # only records dims; the inverse permutation is worked out in backward, in plain Python
    # (np.argsort on a short tuple took ~3 us of a ~7 us w.T).
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        inv = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inv[d] = i
        return g.transpose(inv)


def permute(x, dims):
    _host_only(x, "permute")
    n = x.ndim
    if len(dims) != n or not all([type(d) is int for d in dims]) or sorted(dims) != list(range(n)):
        # Negative or non-int dims, wrong counts or repeats: the general check (and its
        # messages).
        dims = tuple(_wrap(d, n, "permute") for d in dims)
        if sorted(dims) != list(range(n)):
            raise ValueError(f"[permute] dims must be a permutation of 0..{n - 1}, got {dims}")
    return Permute.apply(x, tuple(dims))


def transpose(x, dim0, dim1):
    d0, d1 = _wrap(dim0, x.ndim, "transpose", "dim0"), _wrap(dim1, x.ndim, "transpose", "dim1")
    if x.ndim == 0:
        return x
    _host_only(x, "transpose")
    dims = list(range(x.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, tuple(dims))


def unsqueeze(x, dim):
    d = _wrap(dim, x.ndim + 1, "unsqueeze")
    shp = list(x.shape)
    shp.insert(d, 1)
    return reshape(x, tuple(shp))


def squeeze(x, dim=None):
    shp = list(x.shape)
    if dim is None:
        new = [s for s in shp if s != 1]
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {_wrap(d, x.ndim, "squeeze") for d in dims}  # (0-d: 0 and -1, nothing to squeeze)
        new = [s for i, s in enumerate(shp) if not (i in dims and s == 1)]
    return reshape(x, tuple(new))


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        if not _is_host(x):
            # No strided views on the device: the backend's expand kernel materialises it
            # (x viewed with shape's rank, its missing leading dims as 1).
            lead = (1,) * (len(shape) - x.ndim)
            return _kernels(x).expand(x.reshape(lead + tuple(x.shape)), list(shape), 1.0)
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return sum_to_shape(g, ctx.in_shape)


def sum_to_shape(g, shape):
    """Sum a broadcast gradient back down to `shape` (the backward of broadcasting)."""
    gs = g.shape
    if gs == shape or gs == tuple(shape):
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and gs[i + lead] != 1)
    out = sum_axes(g, axes) if axes else g
    return out.reshape(shape)


def expand(x, shape):
    shape = tuple(x.shape[i - (len(shape) - x.ndim)] if s == -1 else s for i, s in enumerate(shape))
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"[expand] cannot expand shape {tuple(x.shape)} to {shape}") from None
    return Expand.apply(x, shape)


def _is_basic(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in items)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, idx):
        ctx.in_shape, ctx.idx = x.shape, idx
        try:
            return x[idx]
        except IndexError as e:
            raise IndexError(f"[getitem] {e} (tensor of shape {x.shape})") from None

    @staticmethod
    def backward(ctx, g):
        gx = np.zeros(ctx.in_shape, np.float32)
        if _is_basic(ctx.idx):
            gx[ctx.idx] = g
        else:  # advanced indexing may pick an element twice: add, do not overwrite
            np.add.at(gx, ctx.idx, g)
        return gx


def getitem(x, idx):
    _host_only(x, "getitem")
    idx = _unwrap_index(idx)
    if _is_basic(idx):
        items = idx if isinstance(idx, tuple) else (idx,)
        if not any(i is Ellipsis for i in items):
            # NOTE: a trailing ... makes NumPy return a 0-d view instead of a scalar copy when
            # every dim is indexed by an int, so t[i] stays a view as in PyTorch.
            idx = items + (Ellipsis,)
    if isinstance(idx, np.ndarray) and idx.dtype == np.float32:
        raise IndexError("[getitem] tensors used as indices must be int64 or bool, got float32")
    out = GetItem.apply(x, idx)
    return out


def _concat0_into(out, xs):
    """out = the concatenation of xs along dim 0 (shapes already checked)."""
    if not _C.concat0(xs, out):  # a strided piece: NumPy's general copy
        np.concatenate(xs, axis=0, out=out)
    return out


def _cat_arrays(dim, xs, aligned=True):
    """The concatenation, into a new 64-byte-aligned array, unless `aligned` is False and dim
    is not 0 (then NumPy's).
    NOTE (speed): along dim 0 the aligned result and _C.concat0 beat np.concatenate at every
    size (Zen 3: two 32x32 pieces 0.69 vs 1.28 us, 16 x 784 floats 1.8 vs 4.4, 64 x 784 6.5
    vs 16.5)."""
    if not aligned and dim != 0:
        return np.concatenate(xs, axis=dim)
    shape = list(xs[0].shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    out = _aligned(tuple(shape), _dt(xs[0]))
    if dim == 0:
        return _concat0_into(out, xs)
    np.concatenate(xs, axis=dim, out=out)  # straight into the aligned result
    return out


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.sizes = [x.shape[dim] for x in xs]
        ctx.dim = dim
        return _cat_arrays(dim, xs)

    @staticmethod
    def backward(ctx, g):
        splits = np.cumsum(ctx.sizes)[:-1]
        return (None,) + tuple(np.split(g, splits, axis=ctx.dim))


def _stack_arrays(dim, xs, aligned=True):
    """The stack on a new dim `dim`, into a new 64-byte-aligned array, unless `aligned` is
    False and dim is not 0 (then NumPy's)."""
    s = xs[0].shape
    shape = s[:dim] + (len(xs),) + s[dim:]
    if not aligned and dim != 0:
        return np.stack(xs, axis=dim)
    out = _aligned(shape, _dt(xs[0]))
    if dim == 0:
        # NOTE (speed): stacking on a new first dim is concatenating the pieces' bytes one
        # after another (_C.concat0); np.stack's per-array expand_dims cost ~0.25 us each and
        # np.concatenate's per-array work as much again.
        if not _C.concat0(xs, out):
            np.stack(xs, axis=0, out=out)
        return out
    return np.stack(xs, axis=dim, out=out)


class Stack(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        ctx.dim = dim
        return _stack_arrays(dim, xs)

    @staticmethod
    def backward(ctx, g):
        m = np.moveaxis(g, ctx.dim, 0)
        # One view per input (m[i, ...], not iteration, which gives NumPy scalars for 0-d).
        return (None,) + tuple(m[i, ...] for i in range(m.shape[0]))


def _dt(a):
    return _dtype_of(a.dtype)


def _check_seq(tensors, op):
    """(the tensors as a list, whether the call is recorded): non-empty, every one a host
    Tensor; mixed dtypes promoted to the widest (bool < int64 < float32), as PyTorch.
    NOTE (speed): a DataLoader batch stacks 64+ samples: the common case (plain Tensors on
    NumPy arrays whose dtype is one object) is two comprehensions, ~0.1 us a tensor against
    ~0.19 for the loop below, which names the culprit when one fails (hashing or comparing
    dtypes by value costs ~0.1 us each)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"[{op}] expected a non-empty sequence of tensors")
    t0 = tensors[0]
    if type(t0) is Tensor and type(t0._data) is _ND:
        dt0 = t0._data.dtype
        if all([type(t) is Tensor and type(t._data) is _ND and t._data.dtype is dt0
                for t in tensors]):
            return tensors, grad_mode.enabled and any([t._requires_grad for t in tensors])
    rg = False
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"[{op}] element {i} must be a Tensor, got {type(t).__name__}")
        if type(t._data) is not _ND:
            _host_only(t, op)
        rg = rg or t._requires_grad
    dts = {t.dtype for t in tensors}
    if len(dts) > 1:  # promoted as PyTorch: bool < int64 < float32
        to = next(d for d in (float32, int64, bool_) if d in dts)
        tensors = [t if t.dtype is to else t.type(to) for t in tensors]
    return tensors, rg and grad_mode.enabled


@named_as("cat")
def _cat_py(tensors, dim=0):
    """cat's general route. fastnn.cat is _C.tensor_cat, which does the common call (a list or
    tuple of host tensors, nothing to record, dim 0) itself and passes every other call here
    unchanged."""
    tensors, record = _check_seq(tensors, "cat")
    if type(dim) is int and dim == 0 and not record:
        # The checks below, the aligned result and the copy in one call (None: a strided
        # piece or another dtype, for the general path).
        out = _C.cat0([t._data for t in tensors], False)
        if out is not None:
            return Tensor._make(out)
    s0 = tensors[0]._data.shape
    d = _wrap(dim, len(s0), "cat")
    for i, t in enumerate(tensors):
        s = t._data.shape
        if not s:
            raise ValueError(f"[cat] zero-dimensional tensor (element {i}) cannot be "
                             f"concatenated; use stack")
        if s != s0 and (len(s) != len(s0) or s[:d] != s0[:d] or s[d + 1:] != s0[d + 1:]):
            raise ValueError(f"[cat] sizes must match except in dim {d}: element 0 has shape "
                             f"{tuple(s0)}, element {i} has {tuple(s)}")
    if not record:  # the arrays alone (~0.9 us for two 32x32 against ~2.3)
        return Tensor._make(_cat_arrays(d, [t._data for t in tensors], aligned=False))
    return Cat.apply(d, *tensors)


@named_as("stack")
def _stack_py(tensors, dim=0):
    """stack's general route (fastnn.stack is _C.tensor_stack; see _cat_py)."""
    tensors, record = _check_seq(tensors, "stack")
    if type(dim) is int and dim == 0 and not record:
        out = _C.cat0([t._data for t in tensors], True)  # (as in cat)
        if out is not None:
            return Tensor._make(out)
    s0 = tensors[0]._data.shape
    for i, t in enumerate(tensors):
        if t._data.shape != s0:
            raise ValueError(f"[stack] all tensors must have the same shape: element 0 is "
                             f"{tuple(s0)}, element {i} is {tuple(t.shape)}")
    d = _wrap(dim, len(s0) + 1, "stack")
    if not record:
        return Tensor._make(_stack_arrays(d, [t._data for t in tensors], aligned=False))
    return Stack.apply(d, *tensors)


cat = _C.tensor_cat
stack = _C.tensor_stack


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.sa, ctx.sb = cond, np.shape(a), np.shape(b)
        return _aligned_copy(np.where(cond, a, b), _dt(a))

    @staticmethod
    def backward(ctx, g):
        ga = sum_to_shape(np.where(ctx.cond, g, 0).astype(np.float32), ctx.sa) \
            if ctx.needs_input_grad[1] else None
        gb = sum_to_shape(np.where(ctx.cond, 0, g).astype(np.float32), ctx.sb) \
            if ctx.needs_input_grad[2] else None
        return None, ga, gb


def _where_operand(v):
    """v's float32 host array, v itself for a Python number float32 holds, else None."""
    if type(v) is Tensor:
        d = v._plain()
        return d if d is not None and d.dtype == _F32 else None
    if (type(v) is float or type(v) is int) and -_F32_MAX <= v <= _F32_MAX:
        return v
    return None


@named_as("where")
def _where_py(condition, input, other):  # noqa: A002 (PyTorch's names)
    """where's general route. fastnn.where is _C.tensor_where, which does the common call (a
    bool mask, float32 host tensors of its shape or Python numbers, nothing to record) in C
    and hands every other call here as it was made."""
    cond, a, b = condition, input, other
    # NOTE (speed): broadcasting calls with nothing to record are NumPy's where alone: the
    # general path below turned each number into a Tensor (~2 us) and copied the result twice.
    c = cond._data if type(cond) is Tensor else None
    if type(c) is _ND and c.dtype == np.bool_ and (type(a) is Tensor or type(b) is Tensor):
        ad, bd = _where_operand(a), _where_operand(b)
        if ad is not None and bd is not None:
            try:
                return Tensor._make(np.where(c, ad, bd))  # float32: numbers are weak scalars
            except ValueError:
                pass  # shapes that do not broadcast: reported below
    for t in (cond, a, b):
        if isinstance(t, Tensor):
            _host_only(t, "where")
    c = cond._data if isinstance(cond, Tensor) else np.asarray(cond)
    if c.dtype != np.bool_:
        raise TypeError(f"[where] condition must be a bool tensor (a comparison), got {c.dtype}")
    with np.errstate(over="ignore"):  # (a number beyond float32 is +-inf, as in x + 1e39)
        a = a if isinstance(a, Tensor) else tensor(a, dtype=float32 if isinstance(a, float) else None)
        b = b if isinstance(b, Tensor) else tensor(b, dtype=float32 if isinstance(b, float) else None)
    if a.dtype is not b.dtype:
        a, b = a.float(), b.float()
    try:
        np.broadcast_shapes(c.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"[where] shapes do not broadcast: condition {c.shape}, input "
                         f"{tuple(a.shape)}, other {tuple(b.shape)}") from None
    return Where.apply(c, a, b)


# _C.tensor_where (csrc/bindings/bind_autograd.cpp) for its common call.
where = _C.tensor_where


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dt):
        if not _is_host(x):
            return x.astype(dt.name)
        return _aligned_copy(x, dt) if dt.name != "bool" else x.astype(np.bool_)

    @staticmethod
    def backward(ctx, g):
        return g, None  # float32 -> float32 only: casts to int/bool carry no gradient


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return _copy_as(x, _dt(x))

    @staticmethod
    def backward(ctx, g):
        return g


class ToDevice(Function):
    """Tensor.to(device): a copy onto another device; the gradient is copied back."""

    @staticmethod
    def forward(ctx, x, dev):
        ctx.src = _device_of(x)
        return _to_device(x, dev)

    @staticmethod
    def backward(ctx, g):
        return _to_device(g, ctx.src), None
