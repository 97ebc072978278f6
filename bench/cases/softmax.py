"""softmax_ce: cross-entropy forward + backward on raw logits; softmax_dim: softmax forward +
backward over a dim that is not the last (a segmentation head's class dim). Memory-bound: no
GFLOP/s."""
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


def _softmax_step(lib, x, dim):
    if lib == "fastnn":
        import fastnn as L
        X = L.tensor(x, requires_grad=True)
    else:
        import torch as L
        X = L.tensor(x, requires_grad=True)
    g = L.ones(*x.shape)

    def step():
        X.grad = None
        L.softmax(X, dim).backward(g)
    return step


def softmax_dim(ctx):
    cases = []
    for shape, dim in (((8, 21, 64, 64), 1), ((1000, 256), 0)):
        x = randn(ctx.rng, *shape, scale=2.0)
        impls = [Impl(lib, partial(_softmax_step, lib, x, dim)) for lib in ("fastnn", "torch")]
        cases.append(Bench("softmax_dim", f"{'x'.join(map(str, shape))} dim={dim} fwd+bwd", impls))
    return cases
