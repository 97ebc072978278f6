"""Whole training steps: mlp_step, tiny_step (zero_grad, forward, loss, backward, SGD step)."""
from functools import partial

from . import Bench, Impl, aligned, linear_state, randn


def _train_step(lib, make_model, make_loss, state, x, y, lr):
    if lib == "fastnn":
        import fastnn as L
        import fastnn.nn  # noqa: F401  (not imported by `import fastnn`)
        from fastnn.optim import SGD   # ImportError until fastnn.optim lands -> "unavailable"
        X, Y = L.tensor(x), L.tensor(y)
    else:
        import torch as L
        from torch.optim import SGD
        X, Y = L.from_numpy(x), L.from_numpy(y)
        state = {k: L.from_numpy(v) for k, v in state.items()}
    model, loss_fn = make_model(L.nn), make_loss(L.nn)
    model.load_state_dict(state)
    opt = SGD(model.parameters(), lr=lr)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(X), Y)
        loss.backward()
        opt.step()
    return step


def _impls(*args):
    return [Impl(lib, partial(_train_step, lib, *args)) for lib in ("fastnn", "torch")]


def _mlp(nn):
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def mlp_step(ctx):
    batch, dims = 64, (784, 256, 128, 10)
    state = linear_state(ctx.rng, dims, stride=2)   # Linear layers at Sequential index 0, 2, 4
    x = aligned(ctx.rng.random((batch, dims[0]), dtype="float32"))   # pixel-like, in [0, 1)
    y = ctx.rng.integers(0, dims[-1], batch).astype("int64")
    # NOTE: GEMM work only (forward, grad-input except the first layer, grad-weight); at
    # batch 64 overhead matters too, so GFLOP/s here is a utilisation figure, not a kernel one.
    mac = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    flops = 2.0 * batch * (3 * mac - dims[0] * dims[1])
    return [Bench("mlp_step", f"784-256-128-10 B={batch} SGD",
                  _impls(_mlp, lambda nn: nn.CrossEntropyLoss(), state, x, y, 0.01), flops=flops)]


def _tiny(nn):
    # StatQuest's 1-2-1 net: softplus(x*w1+b1)*w3 + softplus(x*w2+b2)*w4 + b3.
    return nn.Sequential(nn.Linear(1, 2), nn.Softplus(), nn.Linear(2, 1))


def tiny_step(ctx):
    state = linear_state(ctx.rng, (1, 2, 1), stride=2)
    x = ctx.rng.uniform(0.05, 1.0, (3, 1)).astype("float32")   # dosages, never zero
    y = ctx.rng.uniform(0.0, 1.0, (3, 1)).astype("float32")    # efficacies
    ssr = lambda nn: nn.MSELoss(reduction="sum")               # noqa: E731
    return [Bench("tiny_step", "1-2-1 softplus, 3 samples, SSR, SGD",
                  _impls(_tiny, ssr, state, x, y, 0.1), unit="us")]
