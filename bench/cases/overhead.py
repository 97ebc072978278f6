"""op_overhead: per-call cost of a tiny op (relu on 1,000 floats) through the Python API."""
from functools import partial

import numpy as np

from . import Bench, Impl, randn


def _fastnn(x):
    import fastnn
    return partial(fastnn.relu, fastnn.tensor(x))


def _torch(x):
    import torch
    return partial(torch.relu, torch.from_numpy(x))


def _no_grad(lib):
    # Held around each sample (not entered per call), so its cost is amortised away.
    if lib == "fastnn":
        import fastnn
        return fastnn.no_grad()
    import torch
    return torch.no_grad()


def op_overhead(ctx):
    x = randn(ctx.rng, 1000)
    # partial() instead of a lambda: no extra Python frame per call in the timing loop.
    impls = [Impl("fastnn", partial(_fastnn, x), context=partial(_no_grad, "fastnn")),
             Impl("torch", partial(_torch, x), context=partial(_no_grad, "torch")),
             Impl("numpy", lambda: partial(np.maximum, x, np.float32(0)),
                  note="np.maximum(x, 0): floor")]
    return [Bench("op_overhead", "relu, 1000 floats, no_grad", impls, unit="us")]
