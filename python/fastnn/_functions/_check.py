"""The argument checks every differentiable op starts with."""
from ..tensor import _ND, Tensor, _as_index, _host_only, float32, named_as  # noqa: F401 (re-exported)

# Ops with no CUDA implementation (CPU kernels only): a CUDA tensor is refused by name here,
# centrally, rather than reaching fastnn._C (which would report a bare type error).
HOST_ONLY_OPS = frozenset({"conv2d", "max_pool2d", "avg_pool2d", "lstm", "rnn"})


def check_tensor(t, op, name="input", dtypes=(float32,), optional=False, what=""):
    """t must be a fastnn.Tensor whose dtype is in `dtypes` (None: any dtype); None passes
    when `optional`. Raises TypeError "[op] name must be ..., got ..."; returns t."""
    if t is None and optional:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"[{op}] {name} must be a fastnn.Tensor, got {type(t).__name__}")
    if type(t._data) is not _ND and op in HOST_ONLY_OPS:
        _host_only(t, op)
    if dtypes is not None and t.dtype not in dtypes:
        want = " or ".join(d.name for d in dtypes)
        raise TypeError(f"[{op}] {name} must be {want}{what}, got {t.dtype.name}")
    return t


def wrap_dim(dim, ndim, op, name="dim"):
    """dim in [-ndim, ndim) -> [0, ndim); a 0-d tensor takes 0 and -1, as PyTorch. An int, a
    NumPy integer or a 0-d int64 tensor (anything with __index__); not a bool or a float
    (TypeError), as PyTorch's argument parser. `name` is the argument's name in messages."""
    if type(dim) is not int:
        try:
            dim = _as_index(dim)
        except TypeError:
            raise TypeError(f"[{op}] {name} must be an int, got {type(dim).__name__}") from None
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"[{op}] {name} must be in [{-n}, {n - 1}], got {dim}")
    return dim % n
