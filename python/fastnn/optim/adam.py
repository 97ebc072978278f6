"""Adam (Kingma & Ba, 2015) with bias correction, as torch.optim.Adam (amsgrad=False)."""
from __future__ import annotations

import math

from .. import _C
from .optimizer import Optimizer, _zeros_like

__all__ = ["Adam"]


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    p <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), g = grad (+ weight_decay * p).

    Each parameter counts its own steps t (a parameter without a gradient does not advance).
    """

    _name = "Adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _validate(self, g):
        def bad(v, lo, hi=math.inf):
            return not isinstance(v, (int, float)) or math.isnan(v) or not (lo <= v < hi)

        if bad(g["lr"], 0):
            raise ValueError(f"[Adam] invalid learning rate: {g['lr']}")
        if bad(g["eps"], 0):
            raise ValueError(f"[Adam] invalid epsilon value: {g['eps']}")
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"[Adam] betas must be a pair (beta1, beta2), got {betas!r}")
        g["betas"] = tuple(betas)
        for i, b in enumerate(betas):
            if bad(b, 0, 1):
                raise ValueError(f"[Adam] invalid beta parameter at index {i}: {b}")
        if bad(g["weight_decay"], 0):
            raise ValueError(f"[Adam] invalid weight_decay value: {g['weight_decay']}")

    def _step_group(self, group):
        params, grads = self._with_grads(group)
        if not params:
            return
        states, ms, vs, steps = [], [], [], []
        for p in params:
            st = self.state.setdefault(p, {})
            if "step" not in st:
                st["step"] = 0
                st["exp_avg"] = _zeros_like(p)
                st["exp_avg_sq"] = _zeros_like(p)
            states.append(st)
            ms.append(st["exp_avg"]._data)
            vs.append(st["exp_avg_sq"]._data)
            steps.append(st["step"] + 1)  # the kernel takes counts that include this step
        beta1, beta2 = group["betas"]
        try:
            self._kernels_for(params).adam_step(
                [p._data for p in params], grads, ms, vs, steps, float(group["lr"]),
                float(beta1), float(beta2), float(group["eps"]),
                float(group["weight_decay"]), bool(group["maximize"]))
        except TypeError:
            self._explain_devices(params, (("gradients", grads), ("exp_avg", ms),
                                           ("exp_avg_sq", vs)))
            raise
        # The parameters and moments changed in place (see Tensor._changed).
        _C.note_inplace([p._data for p in params] + ms + vs)
        # Counted only once the update happened, so a rejected step leaves the state as it was.
        for st, t in zip(states, steps):
            st["step"] = t
