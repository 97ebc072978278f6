"""Convolutional cases: conv_fwd, conv_train, maxpool, cnn_step (design/benchmarks.md)."""
from functools import partial

from . import Bench, Impl, randn


def _lib(name):
    if name == "fastnn":
        import fastnn as L
        import fastnn.nn  # noqa: F401  (not imported by `import fastnn`)
        return L, L.tensor
    import torch as L
    return L, L.from_numpy


def _conv_state(rng, cin, cout, k):
    # PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    bound = (cin * k * k) ** -0.5
    return {"weight": rng.uniform(-bound, bound, (cout, cin, k, k)).astype("float32"),
            "bias": rng.uniform(-bound, bound, (cout,)).astype("float32")}


def _conv(lib, state, x, g, train):
    L, wrap = _lib(lib)
    conv = L.nn.Conv2d(x.shape[1], state["weight"].shape[0], state["weight"].shape[2],
                       padding=state["weight"].shape[2] // 2)
    conv.load_state_dict({k: wrap(v) for k, v in state.items()})
    X, G = wrap(x), wrap(g)
    if not train:
        def fwd():
            with L.no_grad():
                return conv(X)
        return fwd
    X.requires_grad = True

    def step():
        # Grads reset to None (not accumulated) so both libraries do the same work per call.
        conv.zero_grad()
        X.grad = None
        conv(X).backward(G)
    return step


def _conv_bench(ctx, case, train):
    n, c, hw = (2, 64, 28) if ctx.quick else (8, 64, 56)
    state = _conv_state(ctx.rng, c, c, 3)
    x, g = randn(ctx.rng, n, c, hw, hw), randn(ctx.rng, n, c, hw, hw)
    impls = [Impl(lib, partial(_conv, lib, state, x, g, train)) for lib in ("fastnn", "torch")]
    # NOTE: one conv is 2*N*OC*C*9*H*W flops; training adds the input and weight gradients,
    # each as large (the bias gradient is O(N*OC*H*W)).
    flops = 2.0 * n * c * c * 9 * hw * hw * (3 if train else 1)
    what = "fwd+bwd" if train else "forward"
    return [Bench(case, f"3x3 pad 1, N={n} {c}->{c} {hw}x{hw} {what}", impls, flops=flops)]


def conv_fwd(ctx):
    return _conv_bench(ctx, "conv_fwd", train=False)


def conv_train(ctx):
    return _conv_bench(ctx, "conv_train", train=True)


def _maxpool(lib, x, g):
    L, wrap = _lib(lib)
    pool = L.nn.MaxPool2d(2, 2)
    X, G = wrap(x), wrap(g)
    X.requires_grad = True

    def step():
        X.grad = None
        pool(X).backward(G)
    return step


def maxpool(ctx):
    n, c, hw = (2, 64, 56) if ctx.quick else (8, 64, 112)
    x, g = randn(ctx.rng, n, c, hw, hw), randn(ctx.rng, n, c, hw // 2, hw // 2)
    impls = [Impl(lib, partial(_maxpool, lib, x, g)) for lib in ("fastnn", "torch")]
    return [Bench("maxpool", f"2x2, N={n} C={c} {hw}x{hw} fwd+bwd", impls)]


def _cnn(nn):
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def _cnn_step(lib, state, x, y):
    L, wrap = _lib(lib)
    if lib == "fastnn":
        from fastnn.optim import SGD
    else:
        from torch.optim import SGD
    model = _cnn(L.nn)
    model.load_state_dict({k: wrap(v) for k, v in state.items()})
    opt = SGD(model.parameters(), lr=0.01)
    loss_fn = L.nn.CrossEntropyLoss()
    X, Y = wrap(x), wrap(y)

    def step():
        opt.zero_grad()
        loss_fn(model(X), Y).backward()
        opt.step()
    return step


def cnn_step(ctx):
    batch = 64
    state = {}
    for i, (cin, cout) in ((0, (1, 16)), (3, (16, 32))):
        state.update({f"{i}.{k}": v for k, v in _conv_state(ctx.rng, cin, cout, 3).items()})
    for i, (fin, fout) in ((7, (32 * 7 * 7, 128)), (9, (128, 10))):
        bound = fin ** -0.5
        state[f"{i}.weight"] = ctx.rng.uniform(-bound, bound, (fout, fin)).astype("float32")
        state[f"{i}.bias"] = ctx.rng.uniform(-bound, bound, (fout,)).astype("float32")
    x = ctx.rng.random((batch, 1, 28, 28), dtype="float32")  # pixel-like values in [0, 1)
    y = ctx.rng.integers(0, 10, batch).astype("int64")
    impls = [Impl(lib, partial(_cnn_step, lib, state, x, y)) for lib in ("fastnn", "torch")]
    return [Bench("cnn_step", f"conv16-pool-conv32-pool-128-10 B={batch} 28x28 SGD", impls)]
