"""Reverse-mode automatic differentiation.

A ``Function`` keeps its forward and backward side by side and works on NumPy arrays (the
compiled kernels take and return arrays). ``Function.apply`` wraps the result in a Tensor and,
when gradients are being recorded, remembers a ``Node`` that links the output to its inputs.
``Tensor.backward`` walks those nodes in reverse topological order.
"""
from __future__ import annotations

import functools
import inspect
import sys
import threading

import numpy as np

from . import _C

# NOTE (adopting gradients): a leaf's first gradient is normally copied, because a backward
# may hand one array to several consumers (x + x) or keep it. run_backward adopts the array
# instead when nothing else can reach it: exactly three references in CPython's counting
# (the gradient tuple, the loop variable, getrefcount's own argument) and _C.sole_owner (the
# library allocated it and no other array or tensor shares its storage). That saves a copy
# of every parameter's gradient per training step. CPython 3.14 borrows references on the
# evaluation stack, so its counts can be lower than the references that exist: there, and on
# other interpreters, every first gradient is copied.
_ADOPT = sys.implementation.name == "cpython" and sys.version_info < (3, 14)
_getrefcount = sys.getrefcount
_F32 = np.dtype(np.float32)

__all__ = ["Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "gradcheck", "grad_mode"]


class _GradMode(threading.local):
    enabled = True


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    return grad_mode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns gradient recording on or off."""

    def __init__(self, mode: bool):
        self.prev = grad_mode.enabled
        grad_mode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        grad_mode.enabled = self.prev
        return False


class _GradModeContext:
    _mode = True

    def __enter__(self):
        self.prev = grad_mode.enabled
        grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        grad_mode.enabled = self.prev
        return False

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            # A generator runs after the call returns: switch the mode around each resume.
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                gen = fn(*args, **kwargs)
                value = None
                while True:
                    with type(self)():
                        try:
                            item = gen.send(value)
                        except StopIteration as stop:
                            return stop.value
                    value = yield item
            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Disable gradient recording, as ``torch.no_grad`` (context manager or decorator)."""
    _mode = False


class enable_grad(_GradModeContext):
    _mode = True


class Context:
    """Per-call scratch space: ``save_for_backward`` and anything a Function stores on it."""

    __slots__ = ("saved_tensors", "needs_input_grad", "__dict__")

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Node:
    """One recorded call: the Function, its context, and the Tensor inputs it came from."""

    __slots__ = ("fn", "ctx", "inputs", "n_outputs", "out_meta", "freed", "versions",
                 "__weakref__")

    def __init__(self, fn, ctx, inputs, n_outputs, out_meta=None):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs  # one entry per forward argument: a Tensor or None
        self.n_outputs = n_outputs
        self.out_meta = out_meta  # [(shape, dtype)] of each output, for multi-output functions
        self.freed = False
        # (tensor, its version at forward time) for every Tensor argument: backward refuses
        # to run if one was modified in place since, as its saved values would be stale.
        self.versions = ()

    @property
    def name(self):
        return self.fn.__name__

    def __repr__(self):
        return f"<{self.fn.__name__}Backward>"


class Function:
    """Base class of differentiable operations.

    Subclasses define ``forward(ctx, *args)`` returning one array (or a tuple of arrays) and
    ``backward(ctx, *grad_outputs)`` returning one gradient array (or None) per forward
    argument. Tensor arguments reach ``forward`` as NumPy arrays; other arguments pass
    through unchanged. ``ctx.needs_input_grad[i]`` says whether argument i needs a gradient.
    """

    @staticmethod
    def forward(ctx, *args):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        # NOTE: this runs once per op call, so it is written for per-call overhead (a relu on
        # 1,000 floats costs well under a microsecond in C++): one pass over the arguments,
        # no generator expressions, and no Node or dtype checks when nothing needs a grad.
        T = _tensor_cls()
        raw = list(args)
        needs = [False] * len(args)
        track = False
        for i, a in enumerate(args):
            if isinstance(a, T):
                raw[i] = a._data
                if a._requires_grad:
                    needs[i] = track = True
        ctx = Context()
        ctx.needs_input_grad = tuple(needs)
        try:
            out = cls.forward(ctx, *raw)
        except TypeError:
            # NOTE: tensors on different devices reach kernels of one backend, which refuse
            # the other's arrays with a TypeError: name the devices instead. Checked only
            # after a failure, so the device model costs a call nothing here.
            _check_devices(cls, args, T)
            raise
        make = T._make
        if not (track and grad_mode.enabled):
            if type(out) is tuple:
                return tuple(make(o) for o in out)
            return make(out)
        multi = isinstance(out, tuple)
        node = Node(cls, ctx, [a if needs[i] else None for i, a in enumerate(args)],
                    len(out) if multi else 1,
                    [(o.shape, o.dtype, _array_device(o)) for o in out] if multi else None)
        node.versions = [(a, a._version) for a in args if isinstance(a, T)]
        # Only float outputs carry gradients (indices and masks never do).
        if multi:
            return tuple(make(o, node if o.dtype == np.float32 else None, i)
                         for i, o in enumerate(out))
        return make(out, node if out.dtype == np.float32 else None, 0)


_TENSOR = None
_ND = np.ndarray


def _check_devices(cls, args, T):
    """RuntimeError "[op] expected all tensors on the same device, got ..." when the Tensor
    arguments of a Function live on different devices."""
    from .tensor import _same_device
    try:
        _same_device(cls.__name__.lower(), *[a for a in args if isinstance(a, T)])
    except RuntimeError as e:
        raise e from None


def _array_device(a):
    """None for a host array, else the CUDA array's device index."""
    return None if isinstance(a, _ND) else a.device_index


def _zeros(shape, dev):
    """float32 zeros on the host (dev None) or on CUDA device dev."""
    if dev is None:
        return np.zeros(shape, np.float32)
    from . import cuda
    return cuda._require("backward").CudaArray.zeros(tuple(shape), "float32", dev)


def _tensor_cls():
    # tensor.py imports this module, so Tensor is looked up on first use, then cached.
    global _TENSOR
    if _TENSOR is None:
        from .tensor import Tensor
        _TENSOR = Tensor
    return _TENSOR


def _accumulate(acc, g):
    if acc is None:
        return g
    if type(acc) is not _ND and not isinstance(acc, _ND):  # CUDA arrays have no operators
        from .tensor import _kernels
        return _kernels(acc).binary(acc, g, "add")
    # NOTE: np.add on two 0-d arrays returns a NumPy scalar; kernels need an array.
    return np.asarray(acc + g)


def _topological(root_node):
    """Nodes reachable from root_node, each after every node that consumes its output."""
    order, seen = [], set()
    stack = [(root_node, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            if t is not None and t._node is not None and id(t._node) not in seen:
                stack.append((t._node, False))
    order.reverse()
    return order


def run_backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (an array shaped like root) back to every leaf that requires grad."""
    node = root._node
    if node is None:
        if root.requires_grad:  # backward on a leaf: its gradient is the seed itself
            root._accumulate_grad(grad)
        return
    pending = {id(node): [None] * node.n_outputs}
    pending[id(node)][root._index] = grad
    for node in _topological(node):
        gouts = pending.pop(id(node), None)
        if gouts is None:
            continue
        if node.freed:
            raise RuntimeError(
                f"[backward] trying to backward through the graph a second time (through "
                f"{node.name}); its saved values were freed after the first backward. Pass "
                f"retain_graph=True to the first backward() to keep them.")
        for t, version in node.versions:
            if t._version != version:
                raise RuntimeError(
                    f"[backward] a tensor of shape {tuple(t.shape)} used by {node.name} was "
                    f"modified by an in-place operation after that use, so its gradient "
                    f"would be wrong; modify a copy (t.clone()) or do it out of place")
        if node.n_outputs > 1:  # outputs that got no gradient contribute zeros
            gouts = [g if g is not None else _zeros(shape, dev)
                     for g, (shape, _, dev) in zip(gouts, node.out_meta)]
        gins = node.fn.backward(node.ctx, *gouts)
        if not isinstance(gins, tuple):
            gins = (gins,)
        if len(gins) < len(node.inputs):
            gins = gins + (None,) * (len(node.inputs) - len(gins))
        inputs = node.inputs
        # By index, not zip(): zip's reused result tuple would hold one more reference to g.
        for i in range(len(inputs)):
            t, g = inputs[i], gins[i]
            if t is None or g is None:
                continue
            if g.shape != t._data.shape:
                raise RuntimeError(
                    f"[backward] {node.name} returned a gradient of shape {g.shape} for an "
                    f"input of shape {t._data.shape}")
            if t._node is None:
                # Counted before the call: as an argument, g would be on the stack once more.
                adopt = (_ADOPT and _getrefcount(g) == 3 and type(g) is np.ndarray
                         and g.dtype is _F32 and _C.sole_owner(g))
                t._accumulate_grad(g, adopt)
            else:
                if t._retains_grad:
                    t._accumulate_grad(g)
                slot = pending.setdefault(id(t._node), [None] * t._node.n_outputs)
                slot[t._index] = _accumulate(slot[t._index], g)
        if not retain_graph:
            node.ctx = None
            node.freed = True


def gradcheck(fn, inputs, eps=1e-3, atol=1e-2, rtol=1e-2, raise_exception=True):
    """Compare the autograd gradient of ``sum(fn(*inputs) * r)`` (r random) with central
    finite differences, for every input that requires grad.

    NOTE: fastnn computes in float32, so the finite differences are float32 too; the
    defaults (eps=1e-3, atol=rtol=1e-2) are sized for that, not for float64 like PyTorch's.
    Returns True, or raises (or returns False) naming the input and the worst element.
    """
    from .tensor import Tensor, _host_only, tensor

    inputs = tuple(inputs)
    for x in inputs:
        if isinstance(x, Tensor):
            _host_only(x, "gradcheck")  # perturbs elements through NumPy
    rng = np.random.default_rng(0)
    with no_grad():
        out = fn(*inputs)
    weight = tensor(rng.standard_normal(out.shape).astype(np.float32))

    def f():
        with no_grad():
            return float(np.sum(fn(*inputs)._data.astype(np.float64) * weight._data))

    for x in inputs:
        if x.grad is not None:
            x.grad = None
    loss = (fn(*inputs) * weight).sum()
    loss.backward()
    for k, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad._data.astype(np.float64)
        numeric = np.zeros(x.shape)
        flat = x._data.reshape(-1)
        num_flat = numeric.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            fp = f()
            flat[i] = orig - eps
            fm = f()
            flat[i] = orig
            num_flat[i] = (fp - fm) / (2 * eps)
        bad = np.abs(analytic - numeric) > atol + rtol * np.abs(numeric)
        if bad.any():
            i = np.unravel_index(np.argmax(np.abs(analytic - numeric)), x.shape)
            msg = (f"[gradcheck] gradient of input {k} differs at index {tuple(int(j) for j in i)}: "
                   f"analytic {analytic[i]:.6g}, numeric {numeric[i]:.6g}")
            if raise_exception:
                raise RuntimeError(msg)
            return False
    return True


def zero_grads(params, set_to_none=True):
    """Reset the .grad of every tensor in params: drop it (set_to_none, PyTorch's default,
    so the next backward allocates afresh) or fill it with zeros in place."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad._fill(0)
