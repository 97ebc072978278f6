"""softmax_ce: cross-entropy forward + backward on raw logits (memory-bound: no GFLOP/s)."""
from functools import partial

from . import Bench, Impl, randn


def _ce_step(lib, logits, target):
    if lib == "fastnn":
        import fastnn as L
        import fastnn.nn  # noqa: F401  (not imported by `import fastnn`)
        import fastnn.nn.functional as F
        Z, T = L.tensor(logits, requires_grad=True), L.tensor(target)
    else:
        import torch as L
        import torch.nn.functional as F
        Z, T = L.tensor(logits, requires_grad=True), L.from_numpy(target)

    def step():
        Z.grad = None
        F.cross_entropy(Z, T).backward()
    return step


def softmax_ce(ctx):
    n, classes = 1024, 1000
    # NOTE: scale 3 gives a realistic spread of probabilities (not all near 1/classes).
    logits = randn(ctx.rng, n, classes, scale=3.0)
    target = ctx.rng.integers(0, classes, n).astype("int64")
    impls = [Impl(lib, partial(_ce_step, lib, logits, target)) for lib in ("fastnn", "torch")]
    return [Bench("softmax_ce", f"{n}x{classes} fwd+bwd", impls)]
