"""Recurrent layers: lstm_train (a real-size LSTM layer, forward + backward through time), lstm_b1
(the same at batch 1) and lstm_small (the StatQuest LSTM training step: nn.LSTM(1, 1), 4 days, Adam)."""
from functools import partial

from . import Bench, Impl, randn


def _lib(lib):
    if lib == "fastnn":
        import fastnn as L
        import fastnn.nn  # noqa: F401  (not imported by `import fastnn`)
        return L, L.tensor
    import torch as L
    return L, L.from_numpy


def _lstm_train(lib, x, g, state):
    L, wrap = _lib(lib)
    model = L.nn.LSTM(x.shape[2], g.shape[2])
    model.load_state_dict({k: wrap(v) for k, v in state.items()})
    X, G = wrap(x), wrap(g)

    def step():
        for p in model.parameters():
            p.grad = None
        y, _ = model(X)
        y.backward(G)
    return step


def _lstm_state(rng, I, H):
    b = H ** -0.5
    shapes = {"weight_ih_l0": (4 * H, I), "weight_hh_l0": (4 * H, H), "bias_ih_l0": (4 * H,),
              "bias_hh_l0": (4 * H,)}
    return {k: rng.uniform(-b, b, s).astype("float32") for k, s in shapes.items()}


def _lstm_layer(ctx, case, T, N, I, H):
    x, g = randn(ctx.rng, T, N, I), randn(ctx.rng, T, N, H)
    state = _lstm_state(ctx.rng, I, H)
    # NOTE: GEMM work only: forward input projection + recurrence (2*T*N*4H*(I+H)), backward
    # the same for dW_ih/dW_hh and again for dh (no dx: the input needs no gradient).
    flops = 2.0 * T * N * 4 * H * ((I + H) + (I + H) + H)
    return Bench(case, f"T={T} N={N} I={I} H={H} fwd+bwd",
                 [Impl(lib, partial(_lstm_train, lib, x, g, state))
                  for lib in ("fastnn", "torch")], flops=flops)


def lstm_train(ctx):
    T = 100 if not ctx.quick else 20
    return [_lstm_layer(ctx, "lstm_train", T, 32, 256, 512)]


def lstm_b1(ctx):
    """LSTM layers at batch 1 (one sequence, as in online training or generation): each step's
    recurrence is a matrix-vector product with the pre-packed W_hh. H = 128 keeps W_hh (256 KiB)
    in L2; H = 512 (4 MiB) streams it from L3 every step. No target of their own."""
    T = 100 if not ctx.quick else 20
    return [_lstm_layer(ctx, "lstm_b1", T, 1, 64, 128), _lstm_layer(ctx, "lstm_b1", T, 1, 256, 512)]


def _lstm_small(lib, state, x, y):
    L, wrap = _lib(lib)
    if lib == "fastnn":
        from fastnn.optim import Adam
    else:
        from torch.optim import Adam
    model = L.nn.LSTM(input_size=1, hidden_size=1)
    model.load_state_dict({k: wrap(v) for k, v in state.items()})
    opt = Adam(model.parameters(), lr=0.1)
    X, Y = wrap(x), wrap(y)
    loss_fn = L.nn.MSELoss()  # one element: the squared residual

    def step():
        opt.zero_grad()
        out, _ = model(X)
        loss = loss_fn(out[-1], Y)
        loss.backward()
        opt.step()
    return step


def lstm_small(ctx):
    state = _lstm_state(ctx.rng, 1, 1)
    x = ctx.rng.uniform(0, 1, (4, 1)).astype("float32")   # one company's 4 days, unbatched
    y = ctx.rng.uniform(0, 1, (1,)).astype("float32")
    return [Bench("lstm_small", "StatQuest LSTM(1,1), 4 steps, squared residual, Adam",
                  [Impl(lib, partial(_lstm_small, lib, state, x, y))
                   for lib in ("fastnn", "torch")], unit="us")]
