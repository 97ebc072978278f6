"""The Optimizer base class: param groups, per-parameter state and PyTorch's state_dict layout."""
from __future__ import annotations

import copy

import numpy as np

from .. import _C
from ..autograd import enable_grad, grad_mode, zero_grads
from ..tensor import (_ND, Tensor, _aligned_copy, _contig, _device_of, _is_host, _kernels,
                      _to_device, _zeros_like_array, float32)

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks a hyper-parameter that has no default (PyTorch's ``optim.optimizer.required``)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of the optimizers.

    ``params`` is an iterable of tensors, or of dicts each holding ``"params"`` plus options
    that override ``defaults`` for that group, as in PyTorch. Subclasses implement
    ``_step_group(group)``, which updates every parameter of one group that has a gradient.
    """

    _name = "Optimizer"

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state: dict = {}  # Tensor -> dict, keyed by identity (Tensor hashes by id)
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(f"[{self._name}] params argument given to the optimizer should be "
                            f"an iterable of Tensors or dicts, but got a Tensor")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"[{self._name}] optimizer parameters need to be organized in "
                            f"ordered collections, got a set")
        groups = list(params)
        if not groups:
            raise ValueError(f"[{self._name}] optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"[{self._name}] param_group must be a dict, got "
                            f"{type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            # A set has no stable order, so state_dict indices would not be reproducible.
            raise TypeError(f"[{self._name}] optimizer parameters need to be organized in "
                            f"ordered collections, got a set")
        params = list(params) if params is not None else []
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"[{self._name}] optimizer can only optimize Tensors, but "
                                f"params[{i}] is a {type(p).__name__}")
            if p.dtype is not float32:
                raise TypeError(f"[{self._name}] params[{i}] must be float32, got {p.dtype}")
            if not p.is_leaf:
                raise ValueError(f"[{self._name}] can't optimize a non-leaf Tensor "
                                 f"(params[{i}])")
            if not p.is_contiguous():
                # The update runs in place on the parameter's memory, in one kernel call.
                raise ValueError(f"[{self._name}] params[{i}] must be contiguous, got strides "
                                 f"{p.stride()} for shape {tuple(p.shape)}; make it "
                                 f"contiguous (t.contiguous()) before requires_grad_()")
        group["params"] = params
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise ValueError(f"[{self._name}] parameter group didn't specify a value of "
                                 f"required optimization parameter {k}")
            group.setdefault(k, v)
        self._validate(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"[{self._name}] some parameters appear more than once; each "
                             f"parameter may belong to one group only, once")
        self.param_groups.append(group)

    def _validate(self, group):
        """Check a group's hyper-parameters; ValueError naming the first bad one."""

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            zero_grads(group["params"], set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns closure()'s loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # As `with no_grad():`, without the context object (~0.3 us of a small net's step).
        prev, grad_mode.enabled = grad_mode.enabled, False
        try:
            for group in self.param_groups:
                self._step_group(group)
        finally:
            grad_mode.enabled = prev
        return loss

    def _step_group(self, group):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _with_grads(group):
        """(params, grad arrays) of the group's parameters whose .grad is set."""
        ps, gs = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad._data
            if g.shape != p._data.shape:
                raise ValueError(f"[optimizer] a gradient has shape {g.shape} but its parameter "
                                 f"has shape {p._data.shape}")
            ps.append(p)
            if type(g) is _ND and g.dtype is _F32 and g.flags.c_contiguous:
                gs.append(g)  # what backward produces: nothing to convert (the common case)
                continue
            if type(g) is not _ND and not _is_host(g):
                if _device_of(g) != _device_of(p._data):
                    raise RuntimeError(f"[optimizer] expected all tensors on the same device, "
                                       f"got {_device_of(p._data)} (parameter) and "
                                       f"{_device_of(g)} (its gradient)")
                gs.append(g if g.dtype is _F32 else g.astype("float32"))
                continue
            # The kernels read float32, C-contiguous memory; a user-assigned grad may be neither.
            # (_contig, not np.ascontiguousarray, which turns a 0-d array into 1-d.)
            gs.append(_contig(np.asarray(g, dtype=np.float32)))
        return ps, gs

    @staticmethod
    def _kernels_for(params):
        """The kernel module for the parameters' device (fastnn._C, or the CUDA backend)."""
        a0 = params[0]._data
        return _C if type(a0) is _ND else _kernels(a0)

    def _explain_devices(self, params, arrays):
        """After a kernel refused its arguments: RuntimeError naming the devices if they are
        not all on the first parameter's device (else nothing, and the kernel's error
        stands). NOTE: checked only on failure, so a step costs nothing extra."""
        dev = _device_of(params[0]._data)
        for what, lst in (("parameters", [p._data for p in params]),) + tuple(arrays):
            for a in lst or ():
                if a is not None and _device_of(a) != dev:
                    raise RuntimeError(
                        f"[{self._name}] expected all tensors on the same device, got {dev} "
                        f"and {_device_of(a)} ({what}); keep a group's parameters on one "
                        f"device and create the optimizer after moving the model") from None

    # ---- state_dict (PyTorch's layout) ---------------------------------------------------
    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}.

        Parameters are numbered in order across groups. As in PyTorch, the state's tensors
        are references, not copies.
        """
        index = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self._state_items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def _state_items(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    yield p, self.state[p]

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by state_dict() (copies the tensors)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"[{self._name}] loaded state dict has {len(groups)} parameter "
                             f"groups, the optimizer has {len(self.param_groups)}")
        for i, (mine, saved) in enumerate(zip(self.param_groups, groups)):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(f"[{self._name}] loaded state dict's group {i} has "
                                 f"{len(saved['params'])} parameters, the optimizer's has "
                                 f"{len(mine['params'])}")
        by_index = {}
        for mine, saved in zip(self.param_groups, groups):
            for p, idx in zip(mine["params"], saved["params"]):
                by_index[idx] = p
        new_state = {}
        for idx, s in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                continue
            new_state[p] = {k: self._load_value(p, k, v) for k, v in s.items()}
        new_groups = []
        for mine, saved in zip(self.param_groups, groups):
            g = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
            g["params"] = mine["params"]
            self._validate(g)
            new_groups.append(g)
        self.param_groups = new_groups
        self.state = new_state

    def _load_value(self, p, key, v):
        """A state entry as this optimizer keeps it: tensors copied into fresh aligned
        float32 memory shaped like the parameter; the step count as a Python int."""
        if key == "step":
            return int(float(v.item() if isinstance(v, Tensor) else np.asarray(v).item()))
        if v is None:
            return None
        if isinstance(v, Tensor) or isinstance(v, np.ndarray) or hasattr(v, "__array__"):
            a = v._data if isinstance(v, Tensor) else np.asarray(v)
            if a.shape != p._data.shape:
                raise ValueError(f"[{self._name}] state {key!r} has shape {a.shape}, its "
                                 f"parameter has shape {p._data.shape}")
            # State lives on its parameter's device, whatever device it was saved from.
            if not _is_host(a):
                a = a.numpy()
            return Tensor._make(_to_device(_aligned_copy(a, float32), _device_of(p._data)))
        return copy.deepcopy(v)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


_F32 = np.dtype(np.float32)


def _zeros_like(p):
    """Optimizer state memory shaped like the parameter, on its device (host memory from
    fastnn's aligned allocator)."""
    return Tensor._make(_zeros_like_array(p._data))
