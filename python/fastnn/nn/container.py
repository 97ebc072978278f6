from collections import OrderedDict

from .._functions.conv import conv2d
import numpy as np

from .._functions.dense import LinearChain, chain_spec, linear
from ..tensor import Tensor
from .activation import GELU, ReLU, Sigmoid, Softplus, Tanh
from .conv import Conv2d
from .linear import Linear
from .module import STRUCTURE as _STRUCTURE, Module

_ND = np.ndarray
_F32 = np.dtype(np.float32)


_FUSABLE = (ReLU, Sigmoid, Tanh, GELU, Softplus)


class Sequential(Module):
    """Modules applied in order. A Linear followed directly by ReLU/Sigmoid/Tanh/GELU/Softplus
    runs as one fused kernel call (GEMM with bias and activation in its epilogue), and a
    Conv2d followed by ReLU as one conv2d call with the ReLU fused into its output pass."""

    _plan = None  # see forward

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, Module):
                    raise TypeError(f"[Sequential] argument {i} must be a Module, got "
                                    f"{type(m).__name__}")
                self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            # Sub-modules keep their names (as PyTorch), so state_dict keys still match.
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[idx]

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def forward(self, x):
        # NOTE (speed): what the layers are (which form a Linear chain, their activations and
        # parameters) is worked out once and kept (the plan) while nothing about the modules
        # changed: for the StatQuest 1-2-1 net re-parsing cost ~1.5 us of a ~16 us step. See
        # module.py's NOTE on STRUCTURE for what invalidates it; a chain's parameter arrays are
        # checked by identity here (an assignment to .data or .to() swaps the array, which
        # may make it non-contiguous or a device array the chain cannot take).
        plan = self._plan
        if plan is None or plan[0] != _STRUCTURE[0]:
            plan = self._make_plan()
        else:
            for t, a in plan[1]:
                if t._data is not a:
                    plan = self._make_plan()
                    break
        for step in plan[2]:
            kind = step[0]
            if kind is _CHAIN:
                # A 2-D float32 host input runs the chain as one op; any other input runs the
                # layers one by one (linear handles leading dimensions, devices, and errors).
                if isinstance(x, Tensor):
                    xd = x._data
                    if type(xd) is _ND and xd.dtype is _F32 and xd.ndim == 2:
                        x = LinearChain.apply(x, step[1], *step[2])
                        continue
                for w, b, act, beta, threshold in step[3]:
                    x = linear(x, w, b, act=act, beta=beta, threshold=threshold)
            elif kind is _LAYERS:
                for w, b, act, beta, threshold in step[1]:
                    x = linear(x, w, b, act=act, beta=beta, threshold=threshold)
            elif kind is _CONV_RELU:
                m = step[1]
                x = conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups,
                           act="relu")
            else:
                x = step[1](x)
        return x

    def __getstate__(self):
        # The plan is derived (and holds a C++ capsule, which cannot be copied or pickled):
        # copies and unpickled models build their own on their first call.
        state = self.__dict__.copy()
        state.pop("_plan", None)
        return state

    def _make_plan(self):
        """(STRUCTURE version, ((param, its array), ...) to check, steps) for forward."""
        version = _STRUCTURE[0]
        mods = list(self._modules.values())
        steps, checks = [], []
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < n else None
            if _plain(m, Linear):
                # A run of Linear layers, each optionally followed by a fusable activation,
                # runs as one LinearChain op (chain_spec) when it has more than one layer.
                run, i = _linear_run(mods, i)
                prep = chain_spec(run) if len(run) > 1 else None
                if prep is None:
                    steps.append((_LAYERS, run))
                else:
                    steps.append((_CHAIN, *prep, run))
                if len(run) > 1:
                    # Whether the chain can take them depends on the arrays (contiguous host
                    # float32): a swapped array, either way, means a new plan.
                    checks.extend((p, p._data) for layer in run for p in layer[:2]
                                  if isinstance(p, Tensor))
            elif _plain(m, Conv2d) and _plain(nxt, ReLU):
                steps.append((_CONV_RELU, m))
                i += 2
            else:
                steps.append((_CALL, m))
                i += 1
        plan = (version, tuple(checks), tuple(steps))
        object.__setattr__(self, "_plan", plan)  # not Module.__setattr__: no STRUCTURE bump
        return plan


# Plan step kinds (compared by identity).
_CHAIN, _LAYERS, _CONV_RELU, _CALL = "chain", "layers", "conv_relu", "call"


def _plain(m, cls):
    """m is exactly a cls (a subclass may override forward, which must then run as written)
    without a forward of its own set on the instance."""
    return type(m) is cls and "forward" not in m.__dict__


def _fusable(m):
    return type(m) in _FUSABLE and "forward" not in m.__dict__


def _linear_run(mods, i):
    """([(weight, bias, act, beta, threshold), ...], index after the run) for the Linear
    (+ fusable activation) layers starting at mods[i] (exact types, as the fusion above)."""
    run = []
    n = len(mods)
    while i < n and _plain(mods[i], Linear):
        p = mods[i]._parameters  # not m.weight: see Linear.forward's NOTE
        nxt = mods[i + 1] if i + 1 < n else None
        if _fusable(nxt):
            run.append((p["weight"], p["bias"], *nxt.fused_act()))
            i += 2
        else:
            run.append((p["weight"], p["bias"], "none", 1.0, 20.0))
            i += 1
    return run, i


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, m):
        self.add_module(str(len(self._modules)), m)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        return list(self._modules.values())[idx]
