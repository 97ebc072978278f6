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
# instead when nothing else can reach it: the gradient tuple the backward returned holds the
# only reference (a reference count of 1, read in C++ after the backward has returned), and
# _C.sole_owner says the library allocated it and no other array or tensor shares its
# storage (on a CUDA device, CudaArray._sole_owner: no other CudaArray shares its block).
# That saves a copy of every parameter's gradient per training step. CPython 3.14 borrows
# references on the evaluation stack, so counts can be lower than the references that exist:
# there, and on other interpreters, every first gradient is copied.
_ADOPT = sys.implementation.name == "cpython" and sys.version_info < (3, 14)
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


class Node:
    """One recorded call, and the ``ctx`` its Function's forward and backward receive (as in
    PyTorch, where ctx is the backward node): ``save_for_backward`` and anything the Function
    stores on it, plus the Tensor inputs it came from."""

    __slots__ = ("fn", "saved_tensors", "needs_input_grad", "inputs", "n_outputs", "out_meta",
                 "freed", "epoch", "__dict__", "__weakref__")

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

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

    # apply(cls, *args): runs cls.forward(ctx, *args) and records the call for backward.
    # It is _C.function_apply (C++, csrc/bindings/bind_autograd.cpp, where the steps are
    # described), made a classmethod by _setup when fastnn.tensor has defined Tensor: it runs
    # once per op call, and in Python it cost ~1 us per call (two per step of the 1-2-1 net).


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


def _out_meta(outputs):
    """(shape, dtype, device) per output of a multi-output op (zeros for unused outputs)."""
    return [(o.shape, o.dtype, _array_device(o)) for o in outputs]


def _setup(tensor_cls):
    """Called by fastnn.tensor once Tensor exists: hands the C++ side of Function.apply the
    classes and helpers it uses, and installs it."""
    _C.autograd_setup(sys.modules[__name__], tensor_cls)
    Function.apply = classmethod(_C.function_apply)


def _device_sole_owner(g):
    """A CUDA gradient that owns its device block alone (CudaArray._sole_owner), float32."""
    try:
        return g.dtype == np.float32 and g._sole_owner()
    except AttributeError:  # a host array of another type (an ndarray subclass)
        return False


def _accumulate(acc, g):
    if acc is None:
        return g
    if type(acc) is not _ND and not isinstance(acc, _ND):  # CUDA arrays have no operators
        from .tensor import _kernels
        return _kernels(acc).binary(acc, g, "add")
    # NOTE: np.add on two 0-d arrays returns a NumPy scalar; kernels need an array.
    return np.asarray(acc + g)


def _fill_outputs(node, gouts):
    """Zeros, in place, for the outputs of a multi-output node that got no gradient."""
    for i, (shape, _, dev) in enumerate(node.out_meta):
        if gouts[i] is None:
            gouts[i] = _zeros(shape, dev)


def _check_node(node, changed=None):
    """The errors of a node backward cannot run (the C++ engine calls this only then): its
    graph was freed by an earlier backward, or ``changed``, a value it saved for its
    backward, was modified in place after it was saved."""
    if node.freed:
        raise RuntimeError(
            f"[backward] trying to backward through the graph a second time (through "
            f"{node.name}); its saved values were freed after the first backward. Pass "
            f"retain_graph=True to the first backward() to keep them.")
    if changed is not None:
        shape = tuple(getattr(changed, "shape", ()))
        raise RuntimeError(
            f"[backward] a tensor of shape {shape} that {node.name} saved for its backward "
            f"was modified by an in-place operation after it was saved (through it or a view "
            f"of its memory), so its gradient would be wrong; modify a copy (t.clone()) or do "
            f"it out of place")


def run_backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (an array shaped like root) back to every leaf that requires grad.

    Nodes run once all their consumers have (dependency counts, as PyTorch's engine), so
    each node's gradient is summed before its backward sees it. The loop is C++
    (csrc/bindings/bind_autograd.cpp: it walks the Python graph and calls each Function's
    backward); it calls back here for the rare paths: _check_node (a freed graph, an input
    modified in place), _fill_outputs, _accumulate (two gradients for one non-leaf output)
    and _device_sole_owner. Per-call overhead is the reason: in Python this bookkeeping was
    ~7 us of a ~24 us training step of the 1-2-1 net.
    NOTE: a leaf adopts its first gradient uncopied when the gradient tuple holds the only
    reference to it (see the NOTE on adopting gradients at the top)."""
    node = root._node
    if node is None:
        if root.requires_grad:  # backward on a leaf: its gradient is the seed itself
            root._accumulate_grad(grad)
        return
    _C.run_backward(node, root._index, grad, retain_graph)


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
    if not set_to_none:
        from .tensor import _note_grad_change
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            _note_grad_change(p.grad._fill(0))
