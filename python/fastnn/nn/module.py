"""nn.Module and nn.Parameter, with PyTorch's registration, naming and state_dict rules."""
from collections import OrderedDict

import numpy as np

from ..autograd import zero_grads
from ..tensor import (Tensor, _aligned_copy, _check_device, _copy_as, _cuda_arg, _is_host,
                      _parse_to, _to_device, float32)

# NOTE (caching forward plans): nn.Sequential keeps what it worked out about its layers (which
# Linear layers form a chain, their activations, their parameters) between calls, valid while
# STRUCTURE[0] is unchanged. Every change that can alter what a module's forward does bumps it:
# any attribute assignment or deletion on any Module (parameters, sub-modules, a Softplus's
# beta, an instance's own forward), register_*/add_module, every edit of a module's
# _parameters / _modules / _buffers dicts (they are _Registry, below), to()/cuda()/train() and
# load_state_dict. One counter for all modules: a change anywhere invalidates every plan, which
# costs one re-parse; a plain training loop changes nothing, so plans stay valid.
STRUCTURE = [0]


def _bump():
    STRUCTURE[0] += 1


class _Registry(OrderedDict):
    """A module's _parameters / _modules / _buffers: an OrderedDict whose every mutation bumps
    STRUCTURE (code that edits these dicts directly, e.g. ``model._modules["fc"] = layer``,
    must invalidate cached plans too). Reads are the plain dict's."""

    __slots__ = ()

    def __setitem__(self, key, value):
        STRUCTURE[0] += 1
        OrderedDict.__setitem__(self, key, value)

    def __delitem__(self, key):
        STRUCTURE[0] += 1
        OrderedDict.__delitem__(self, key)

    def pop(self, *args):
        STRUCTURE[0] += 1
        return OrderedDict.pop(self, *args)

    def popitem(self, last=True):
        STRUCTURE[0] += 1
        return OrderedDict.popitem(self, last)

    def setdefault(self, key, default=None):
        STRUCTURE[0] += 1
        return OrderedDict.setdefault(self, key, default)

    def update(self, *args, **kwargs):
        STRUCTURE[0] += 1
        OrderedDict.update(self, *args, **kwargs)

    def clear(self):
        STRUCTURE[0] += 1
        OrderedDict.clear(self)

    def move_to_end(self, key, last=True):
        STRUCTURE[0] += 1
        OrderedDict.move_to_end(self, key, last)

    def __ior__(self, other):
        STRUCTURE[0] += 1
        return OrderedDict.__ior__(self, other)


class Parameter(Tensor):
    """A tensor that a Module registers as a learnable parameter (requires_grad by default)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.zeros((0,), np.float32)
        arr = data._data if isinstance(data, Tensor) else np.asarray(data, np.float32)
        if not _is_host(arr):  # a CUDA array: contiguous already; float32 on its device
            if arr.dtype != np.float32:
                arr = _copy_as(arr, float32)
        elif arr.dtype != np.float32 or not arr.flags.c_contiguous:
            # Optimizers update parameters in place, in one kernel call over contiguous memory.
            arr = _aligned_copy(arr, float32)
        super().__init__(arr)
        self.requires_grad = requires_grad

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __reduce__(self):
        return (Parameter, (self._data, self.requires_grad))


class Module:
    """Base class of layers and models: register parameters, sub-modules and buffers by
    assigning them as attributes; ``forward`` defines the computation."""

    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", _Registry())
        object.__setattr__(self, "_modules", _Registry())
        object.__setattr__(self, "_buffers", _Registry())
        object.__setattr__(self, "training", True)

    # ---- registration -------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"[{type(self).__name__}] call super().__init__() before "
                               f"assigning attributes")
        STRUCTURE[0] += 1
        params, buffers = self._parameters, self._buffers
        if name in params and value is None:
            params[name] = None  # stays registered, as PyTorch's `self.bias = None`
            return
        if name in params and not isinstance(value, Parameter):
            raise TypeError(f"[{type(self).__name__}] cannot assign {type(value).__name__} as "
                            f"parameter '{name}' (a Parameter or None expected)")
        if name in buffers and (value is None or isinstance(value, Tensor)) \
                and not isinstance(value, Parameter):
            buffers[name] = value  # still a buffer: it stays in state_dict
            return
        mods = self._modules
        # As PyTorch: a name moves out of the other registries; one that stays in its own
        # (a sub-module replaced by another) keeps its place in the order.
        if isinstance(value, Parameter):
            mods.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            mods[name] = value
        else:
            for d in (params, mods, buffers):
                d.pop(name, None)
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_modules", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        STRUCTURE[0] += 1
        for d in (self._parameters, self._modules, self._buffers):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"[register_parameter] {name} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name, tensor):
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"[register_buffer] {name} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._buffers[name] = tensor

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"[add_module] {name} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    # ---- calling ------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"[{type(self).__name__}] forward() is not defined")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ----------------------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix=""):
        for mp, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ---- modes and gradients ---------------------------------------------------------------
    def train(self, mode=True):
        _bump()
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def to(self, *args, **kwargs):
        """Move every parameter and buffer to a device, in place: parameters stay the same
        Parameter objects (their data and .grad move), so optimizers built before still hold
        them -- but their state does not move: build the optimizer after moving the model,
        as PyTorch recommends. Buffers are replaced by moved copies. A dtype argument is
        accepted for PyTorch compatibility; only float32 parameters exist."""
        dev, _ = _parse_to(args, dict(kwargs))
        if dev is None:
            return self
        d = _check_device(dev, "to")
        _bump()
        for m in self.modules():
            for p in m._parameters.values():
                if p is None:
                    continue
                p._data = _to_device(p._data, d)
                if p.grad is not None:
                    p.grad._data = _to_device(p.grad._data, d)
            for name, b in m._buffers.items():
                if b is not None:
                    moved = Tensor._make(_to_device(b._data, d))
                    moved._requires_grad = b._requires_grad
                    m._buffers[name] = moved
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(_cuda_arg(device))

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Parameters and buffers by dotted name, in registration order (as PyTorch)."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values (fastnn tensors, NumPy arrays, or anything np.asarray accepts, e.g. a
        PyTorch state_dict's tensors after .numpy()) into this module's parameters and
        buffers. Shapes must match. Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"[load_state_dict] {type(self).__name__}: " + "; ".join(parts))
        # Check every shape before changing anything, so a failed load leaves the module as it was.
        staged = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v._data if isinstance(v, Tensor) else _to_numpy(v)
            if not _is_host(arr) and (_is_host(target._data) or arr.dtype is not
                                      target._data.dtype or arr.shape != target._data.shape
                                      or arr.device_index != target._data.device_index):
                arr = arr.numpy()  # a CUDA tensor's values: copied through the host below
            if tuple(arr.shape) != tuple(target.shape):
                raise ValueError(f"[load_state_dict] {k}: expected shape {tuple(target.shape)}, "
                                 f"got {tuple(arr.shape)}")
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"[load_state_dict] {k}: expected numbers, got dtype {arr.dtype}")
            staged.append((target, arr))
        _bump()
        for target, arr in staged:
            if _is_host(target._data):
                np.copyto(target._data, arr, casting="unsafe")
            elif not _is_host(arr):  # same device, dtype and shape: a device-side copy
                target._data.copy_(arr)
            else:  # into a module on a CUDA device: one host -> device copy per tensor
                # (np.array, not ascontiguousarray, which makes a 0-d array 1-d)
                target._data.copy_(np.array(arr, dtype=target._data.dtype, order="C"))
            target._changed()  # (as PyTorch's copy_: a value saved for backward goes stale)
        return missing, unexpected

    # ---- printing -------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _to_numpy(v):
    if hasattr(v, "detach") and hasattr(v, "cpu") and hasattr(v, "numpy"):  # a torch.Tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)
