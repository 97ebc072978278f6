"""Elementwise cases: activations (transcendental activations and exp on 100k floats),
op_small (per-call cost of the everyday small ops: a + b, x * 2.0, x @ w.T, x.exp()) and
op_tensor (per-call cost of indexing, reshaping, stacking, masking and small reductions)."""
from functools import partial

import numpy as np

from . import Bench, Impl, aligned, randn


def _act_fastnn(name, x):
    import fastnn
    import fastnn.nn.functional as F
    t = fastnn.tensor(x)
    return {"sigmoid": partial(fastnn.sigmoid, t), "tanh": partial(fastnn.tanh, t),
            "gelu": partial(F.gelu, t), "softplus": partial(F.softplus, t),
            "exp": partial(fastnn.exp, t)}[name]


def _act_torch(name, x):
    import torch
    import torch.nn.functional as F
    t = torch.from_numpy(x)
    return {"sigmoid": partial(torch.sigmoid, t), "tanh": partial(torch.tanh, t),
            "gelu": partial(F.gelu, t), "softplus": partial(F.softplus, t),
            "exp": partial(torch.exp, t)}[name]


def _act_numpy(name, x):
    # NumPy has no gelu (no erf without SciPy): that row is left out.
    one = np.float32(1)
    return {"sigmoid": lambda: one / (one + np.exp(-x)), "tanh": partial(np.tanh, x),
            "softplus": lambda: np.logaddexp(np.float32(0), x), "exp": partial(np.exp, x)}.get(name)


def _no_grad(lib):
    if lib == "fastnn":
        import fastnn
        return fastnn.no_grad()
    import torch
    return torch.no_grad()


def activations(ctx):
    n = 10_000 if ctx.quick else 100_000
    x = aligned(randn(ctx.rng, n, scale=3.0))
    out = []
    for name in ("sigmoid", "tanh", "gelu", "softplus", "exp"):
        impls = [Impl("fastnn", partial(_act_fastnn, name, x)),
                 Impl("torch", partial(_act_torch, name, x))]
        if _act_numpy(name, x) is not None:
            impls.append(Impl("numpy", partial(_act_numpy, name, x)))
        out.append(Bench("activations", f"{name}, {n} floats", impls))
    return out


def op_small(ctx):
    """Per-call cost of small everyday ops through each library's Python API, no_grad."""
    a, b = randn(ctx.rng, 1000), randn(ctx.rng, 1000)
    x, w = randn(ctx.rng, 16, 16), randn(ctx.rng, 16, 16)
    cases = []

    def fastnn_impl(kind):
        import fastnn
        ta, tb, tx, tw = (fastnn.tensor(v) for v in (a, b, x, w))
        return {"add": partial(ta.__add__, tb), "mul2": partial(ta.__mul__, 2.0),
                "xwT": lambda: tx @ tw.T, "exp": ta.exp}[kind]

    def torch_impl(kind):
        import torch
        ta, tb, tx, tw = (torch.from_numpy(v) for v in (a, b, x, w))
        return {"add": partial(ta.__add__, tb), "mul2": partial(ta.__mul__, 2.0),
                "xwT": lambda: tx @ tw.T, "exp": ta.exp}[kind]

    def numpy_impl(kind):
        return {"add": partial(np.add, a, b), "mul2": partial(np.multiply, a, np.float32(2.0)),
                "xwT": lambda: x @ w.T, "exp": partial(np.exp, a)}[kind]

    for kind, label in (("add", "a + b, 1000 floats"), ("mul2", "a * 2.0, 1000 floats"),
                        ("xwT", "x @ w.T, 16x16"), ("exp", "a.exp(), 1000 floats")):
        impls = [Impl("fastnn", partial(fastnn_impl, kind), context=partial(_no_grad, "fastnn")),
                 Impl("torch", partial(torch_impl, kind), context=partial(_no_grad, "torch")),
                 Impl("numpy", partial(numpy_impl, kind))]
        cases.append(Bench("op_small", label, impls, unit="us"))
    return cases


# op_tensor: (label, call) per op; each call takes the library module and the operands
# (x: 32x32, samples: 64 vectors of 784, as a DataLoader batch collects them).
_TENSOR_OPS = (
    ("x[0], 32x32", lambda L, x, s: x[0]),
    ("x.reshape(16, 64)", lambda L, x, s: x.reshape(16, 64)),
    ("x.flatten()", lambda L, x, s: x.flatten()),
    ("stack(64 x 784 floats)", lambda L, x, s: L.stack(s)),
    ("cat([x, x])", lambda L, x, s: L.cat([x, x])),
    ("x > 0", lambda L, x, s: x > 0),
    ("where(x > 0, x, 0.0)", lambda L, x, s: L.where(x > 0, x, 0.0)),
    ("x.clamp(-1, 1)", lambda L, x, s: x.clamp(-1, 1)),
    ("x.sum(1)", lambda L, x, s: x.sum(1)),
    ("softmax(x, 1)", lambda L, x, s: L.softmax(x, 1)),
    ("zeros(32, 32)", lambda L, x, s: L.zeros(32, 32)),
)


def _tensor_op(lib, i, x, samples):
    if lib == "fastnn":
        import fastnn as L
        wrap = L.tensor
    else:
        import torch as L
        wrap = L.from_numpy
    tx, ts = wrap(x), [wrap(v) for v in samples]
    call = _TENSOR_OPS[i][1]
    return lambda: call(L, tx, ts)


def op_tensor(ctx):
    """Per-call cost of data movement, masks and small reductions, no_grad (fastnn, PyTorch)."""
    x = randn(ctx.rng, 32, 32)
    samples = [randn(ctx.rng, 784) for _ in range(64)]
    return [Bench("op_tensor", label,
                  [Impl(lib, partial(_tensor_op, lib, i, x, samples),
                        context=partial(_no_grad, lib)) for lib in ("fastnn", "torch")],
                  unit="us")
            for i, (label, _) in enumerate(_TENSOR_OPS)]
