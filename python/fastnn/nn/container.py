from collections import OrderedDict

from .._functions.conv import conv2d
from .._functions.dense import linear, linear_chain
from .activation import GELU, ReLU, Sigmoid, Softplus, Tanh
from .conv import Conv2d
from .linear import Linear
from .module import Module


_FUSABLE = (ReLU, Sigmoid, Tanh, GELU, Softplus)


class Sequential(Module):
    """Modules applied in order. A Linear followed directly by ReLU/Sigmoid/Tanh/GELU/Softplus
    runs as one fused kernel call (GEMM with bias and activation in its epilogue), and a
    Conv2d followed by ReLU as one conv2d call with the ReLU fused into its output pass."""

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
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if type(m) is Linear:
                # A run of Linear layers, each optionally followed by a fusable activation,
                # goes through linear_chain as one op when it has more than one layer.
                run, j = _linear_run(mods, i)
                if len(run) > 1:
                    y = linear_chain(x, run)
                    if y is not None:
                        x = y
                        i = j
                        continue
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            # Exact types only: a subclass may override forward, which must then run as written.
            if type(m) is Linear and type(nxt) in _FUSABLE:
                act, beta, threshold = nxt.fused_act()
                p = m._parameters  # not m.weight: see Linear.forward's NOTE
                x = linear(x, p["weight"], p["bias"], act=act, beta=beta, threshold=threshold)
                i += 2
            elif type(m) is Conv2d and type(nxt) is ReLU:
                x = conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups,
                           act="relu")
                i += 2
            else:
                x = m(x)
                i += 1
        return x


def _linear_run(mods, i):
    """([(weight, bias, act, beta, threshold), ...], index after the run) for the Linear
    (+ fusable activation) layers starting at mods[i] (exact types, as the fusion above)."""
    run = []
    n = len(mods)
    while i < n and type(mods[i]) is Linear:
        p = mods[i]._parameters
        nxt = mods[i + 1] if i + 1 < n else None
        if type(nxt) in _FUSABLE:
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
