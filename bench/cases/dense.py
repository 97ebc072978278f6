"""GEMM and Linear cases: gemm, gemm_mlp, gemm_deep, gemm_narrow, gemm_small, linear_relu."""
from functools import partial

import numpy as np

from . import Bench, Impl, linear_state, randn


def _fastnn_matmul(a, b):
    import fastnn
    # fastnn.tensor copies into the library's 64-byte-aligned allocator, as a user's tensors are.
    return partial(fastnn.matmul, fastnn.tensor(a), fastnn.tensor(b))


def _torch_matmul(a, b):
    import torch
    return partial(torch.matmul, torch.from_numpy(a), torch.from_numpy(b))


def _numpy_matmul(a, b):
    return partial(np.matmul, a, b)


def _matmul_impls(ctx, a, b):
    return [Impl("fastnn", partial(_fastnn_matmul, a, b)),
            Impl("torch", partial(_torch_matmul, a, b)),
            Impl("numpy", partial(_numpy_matmul, a, b), note=ctx.openblas_note)]


def gemm(ctx):
    # 256/512 in --quick: large enough to be compute-bound, small enough for a smoke run.
    sizes = (256, 512) if ctx.quick else (1024, 2048)
    out = []
    for n in sizes:
        a, b = randn(ctx.rng, n, n), randn(ctx.rng, n, n)
        impls = _matmul_impls(ctx, a, b)
        impls.append(Impl("numpy SkylakeX", external=ctx.skylakex_gemm(n, n, n)))
        out.append(Bench("gemm", f"{n}x{n}x{n}", impls, flops=2.0 * n ** 3,
                         best_of=("numpy", "numpy SkylakeX"), best_note="best OpenBLAS"))
    return out


def _op(m, t):
    return m.T if t else m


def _mlp_gemm_impls(ctx, a, b, ta, tb):
    def fast():
        # Through the public API as a user writes it (x @ w.T): the transposed Tensor views are
        # read in place by the GEMM, like PyTorch's and NumPy's below.
        import fastnn
        A, B = fastnn.tensor(a), fastnn.tensor(b)
        return partial(fastnn.matmul, A.T if ta else A, B.T if tb else B)

    def torch_():
        import torch
        A, B = torch.from_numpy(a), torch.from_numpy(b)
        return partial(torch.matmul, A.t() if ta else A, B.t() if tb else B)

    m, k = _op(a, ta).shape
    n = _op(b, tb).shape[1]
    # NumPy gets the transposed views (OpenBLAS reads them in place, no copy), like fastnn.
    return [Impl("fastnn", fast), Impl("torch", torch_),
            Impl("numpy", lambda: partial(np.matmul, _op(a, ta), _op(b, tb)), note=ctx.openblas_note),
            # NOTE: the SkylakeX subprocess times a plain (m,k)x(k,n) product of the same shape.
            Impl("numpy SkylakeX", external=ctx.skylakex_gemm(m, n, k))]


def _gemm_row(ctx, case, label, a, b, ta, tb):
    """A Bench row of op(a)·op(b) through _mlp_gemm_impls, labelled `label MxNxK`, ratios
    against the better of NumPy's two OpenBLAS kernels."""
    m, k = _op(a, ta).shape
    n = _op(b, tb).shape[1]
    return Bench(case, f"{label} {m}x{n}x{k}", _mlp_gemm_impls(ctx, a, b, ta, tb),
                 flops=2.0 * m * n * k, best_of=("numpy", "numpy SkylakeX"),
                 best_note="best OpenBLAS")


def gemm_mlp(ctx):
    """The GEMMs of one Linear layer of the mlp_step network (batch 64), as training runs them:
    forward y = x·Wᵀ (NT), grad-input dx = dy·W (NN), grad-weight dW = dyᵀ·x (TN)."""
    batch = 64
    out = []
    for fin, fout in ((784, 256), (256, 128)):
        x, w, dy = randn(ctx.rng, batch, fin), randn(ctx.rng, fout, fin), randn(ctx.rng, batch, fout)
        for name, a, b, ta, tb in (("fwd x·Wᵀ", x, w, False, True), ("dx = dy·W", dy, w, False, False),
                                   ("dW = dyᵀ·x", dy, x, True, False)):
            out.append(_gemm_row(ctx, "gemm_mlp", f"{fin}->{fout} {name}", a, b, ta, tb))
    return out


def gemm_deep(ctx):
    """Backward GEMMs of wider Linear layers, deep in K (the summed dimension): grad-input dx =
    dy·W (NN, K = out features) at batches 32-256 and grad-weight dW = dyᵀ·x (TN, K = batch)
    at batch 2048. No target of their own (design/benchmarks.md); they show the small-batch
    GEMM past gemm_mlp's K <= 784, where B's row stride and depth decide the path."""
    out = []
    layers = (("1536->1536 dx", 256, 1536, 1536), ("512->1024 dx", 128, 512, 1024),
              ("1024->768 dx", 32, 1024, 768), ("784->1024 dx", 64, 784, 1024),
              ("512->256 dW", 2048, 512, 256))
    for name, batch, fin, fout in layers:
        w, dy = randn(ctx.rng, fout, fin), randn(ctx.rng, batch, fout)
        if name.endswith("dW"):
            a, b, ta = dy, randn(ctx.rng, batch, fin), True
        else:
            a, b, ta = dy, w, False
        out.append(_gemm_row(ctx, "gemm_deep", f"{name} B={batch}", a, b, ta, False))
    return out


def gemm_narrow(ctx):
    """GEMMs with few columns and many rows: layers with 10-64 outputs at batches 512-4096.
    Forward y = x·Wᵀ (NT) of Linear(512, 32) at batch 2048, (256, 48) at 4096, (784, 10) at
    512 and (784, 40) at 400; grad-input dx = dy·W (NN) of Linear(64, 512) at batch 2048. No
    target of their own (design/benchmarks.md); the packed driver copies all of A for one or
    two column panels here, and 10 columns fill a third of one."""
    out = []
    layers = (("512->32 fwd", 2048, 512, 32), ("256->48 fwd", 4096, 256, 48),
              ("784->10 fwd", 512, 784, 10), ("784->40 fwd", 400, 784, 40),
              ("64->512 dx", 2048, 64, 512))
    for name, batch, fin, fout in layers:
        w = randn(ctx.rng, fout, fin)
        if name.endswith("dx"):
            a, b, tb = randn(ctx.rng, batch, fout), w, False
        else:
            a, b, tb = randn(ctx.rng, batch, fin), w, True
        out.append(_gemm_row(ctx, "gemm_narrow", f"{name} B={batch}", a, b, False, tb))
    return out


def gemm_skinny(ctx):
    """Skinny GEMMs: a batch of 1-4 or a layer with 1-3 outputs (gemm.cpp's matrix-vector
    path). Forward y = x·Wᵀ (NT) of Linear(784, 256) at batches 1, 2 and 4; grad-input dx =
    dy·W (NN) of Linear(256, 784) at batches 1 and 4; forward of Linear(784, 1) and grad-input
    of Linear(3, 784) (NT and NN with N of 1 and 3) at batch 256; grad-weight dW = dyᵀ·x (TN)
    of Linear(256, 3) at batch 256 (M = 3: dy's columns are the vectors); grad-weight of
    Linear(784, 256) and Linear(256, 784) at batch 1 (TN with K = 1: an outer product). No
    target of their own (design/benchmarks.md)."""
    out = []
    cases = (("784->256 fwd", "NT", 1, 784, 256), ("784->256 fwd", "NT", 2, 784, 256),
             ("784->256 fwd", "NT", 4, 784, 256), ("256->784 dx", "NN", 1, 784, 256),
             ("256->784 dx", "NN", 4, 784, 256), ("784->1 fwd", "NT", 256, 784, 1),
             ("3->784 dx", "NN", 256, 784, 3), ("256->3 dW", "TN", 3, 256, 256),
             ("784->256 dW B=1", "TN", 256, 1, 784), ("256->784 dW B=1", "TN", 784, 1, 256))
    for name, mode, m, k, n in cases:
        ta, tb = mode[0] == "T", mode[1] == "T"
        a = randn(ctx.rng, k, m) if ta else randn(ctx.rng, m, k)
        b = randn(ctx.rng, n, k) if tb else randn(ctx.rng, k, n)
        out.append(_gemm_row(ctx, "gemm_skinny", f"{name} {mode}", a, b, ta, tb))
    return out


def gemm_small(ctx):
    # Call overhead dominates here, so only the in-process peers (a subprocess adds nothing).
    out = []
    for n in (16, 32, 64):
        a, b = randn(ctx.rng, n, n), randn(ctx.rng, n, n)
        out.append(Bench("gemm_small", f"{n}x{n}x{n}", _matmul_impls(ctx, a, b),
                         flops=2.0 * n ** 3, unit="us"))
    return out


def _linear_relu_step(lib, state, x, g):
    if lib == "fastnn":
        import fastnn as L
        import fastnn.nn  # noqa: F401  (not imported by `import fastnn`)
        nn = L.nn
        X, G = L.tensor(x, requires_grad=True), L.tensor(g)
    else:
        import torch as L
        nn = L.nn
        X, G = L.tensor(x, requires_grad=True), L.from_numpy(g)
        state = {k: L.from_numpy(v) for k, v in state.items()}
    model = nn.Sequential(nn.Linear(x.shape[1], g.shape[1]), nn.ReLU())
    model.load_state_dict(state)

    def step():
        # Grads reset to None (not accumulated) so both libraries do the same work per call.
        model.zero_grad()
        X.grad = None
        model(X).backward(G)
    return step


def linear_relu(ctx):
    batch, fin, fout = 512, 1024, 1024
    state = linear_state(ctx.rng, (fin, fout))
    x, g = randn(ctx.rng, batch, fin), randn(ctx.rng, batch, fout)
    impls = [Impl(lib, partial(_linear_relu_step, lib, state, x, g)) for lib in ("fastnn", "torch")]
    # NOTE: forward + grad-input + grad-weight GEMMs, 2*B*I*O each; bias and ReLU are O(B*O).
    return [Bench("linear_relu", f"B={batch} {fin}->{fout} fwd+bwd", impls,
                  flops=3 * 2.0 * batch * fin * fout)]
