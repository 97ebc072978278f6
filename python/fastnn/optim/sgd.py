"""Stochastic gradient descent with momentum, as torch.optim.SGD."""
from __future__ import annotations

import math

from .. import _C
from .optimizer import Optimizer, _zeros_like

__all__ = ["SGD"]


def _check_value(name, what, v):
    # `not v >= 0` also catches NaN.
    if not (isinstance(v, (int, float)) and v >= 0 and not math.isnan(v)):
        raise ValueError(f"[{name}] invalid {what}: {v}")


class SGD(Optimizer):
    """p <- p - lr * update, with PyTorch's momentum / dampening / Nesterov rule:

    g = grad (+ weight_decay * p); buf = g on the first step, else
    momentum * buf + (1 - dampening) * g; update = g + momentum * buf (nesterov) or buf.
    """

    _name = "SGD"

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _validate(self, g):
        _check_value("SGD", "learning rate", g["lr"])
        _check_value("SGD", "momentum value", g["momentum"])
        _check_value("SGD", "weight_decay value", g["weight_decay"])
        if not isinstance(g["dampening"], (int, float)) or math.isnan(g["dampening"]):
            raise ValueError(f"[SGD] invalid dampening value: {g['dampening']}")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("[SGD] nesterov momentum requires a momentum and zero dampening")

    def _step_group(self, group):
        # NOTE (speed): without momentum there is no state, and one C call reads the
        # gradients and runs the update (_C.sgd_step_params; ~1 us less than the general
        # path below for a small model). It returns False, having changed nothing, for
        # anything unusual (device arrays, a user-assigned gradient of another dtype or
        # layout, a tuple of params), which the general path handles or reports.
        if group["momentum"] == 0 and _C.sgd_step_params(
                group["params"], group["lr"], group["weight_decay"], group["maximize"]):
            return
        params, grads = self._with_grads(group)
        if not params:
            return
        momentum = group["momentum"]
        bufs, first, new = None, False, []
        if momentum != 0:
            bufs, first = [], []
            for p in params:
                buf = self.state.get(p, {}).get("momentum_buffer")
                # PyTorch starts a buffer as a copy of the gradient the first time a parameter
                # has one; the kernel does that copy when first[i] is set.
                first.append(buf is None)
                if buf is None:
                    buf = _zeros_like(p)
                    new.append((p, buf))
                bufs.append(buf._data)
        try:
            self._kernels_for(params).sgd_step(
                [p._data for p in params], grads, bufs, float(group["lr"]), float(momentum),
                float(group["dampening"]), float(group["weight_decay"]),
                bool(group["nesterov"]), bool(group["maximize"]), first)
        except TypeError:
            self._explain_devices(params, (("gradients", grads), ("momentum buffers", bufs)))
            raise
        # The parameters and momentum buffers changed in place (see Tensor._changed).
        _C.note_inplace([p._data for p in params] + (bufs or []))
        # Recorded only after the kernel accepted the call: a rejected step leaves no state.
        for p, buf in new:
            self.state.setdefault(p, {})["momentum_buffer"] = buf
