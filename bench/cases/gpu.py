"""GPU cases (issue 6's table): fastnn's CUDA backend beside PyTorch CUDA, on one device.

gpu_gemm (4096^3 at each matmul precision), gpu_softmax_ce (8192x32000 cross-entropy fwd+bwd,
with a device copy of the same bytes as the bandwidth yardstick) and gpu_mlp_step (the
digits MLP's training step). Every timed call ends with a device synchronize, so a sample
measures finished GPU work, not queued launches. Without a CUDA device (or without a CUDA
build of either library) the rows say "unavailable" and why.
"""
from functools import partial

from . import Bench, Impl, linear_state, randn

PRECISIONS = ("highest", "high", "medium")   # fp32 SIMT, TF32, BF16 (torch's names)


def _fastnn_cuda():
    import fastnn
    if not fastnn.cuda.is_available():
        raise NotImplementedError(f"fastnn CUDA: {fastnn.cuda._unavailable_reason()}")
    return fastnn


def _torch_cuda():
    import torch
    if not torch.cuda.is_available():
        raise NotImplementedError("PyTorch has no CUDA device here (CPU build or no GPU)")
    return torch


def _synced(fn, sync):
    def call():
        fn()
        sync()
    return call


def _fastnn_gemm(a, b, precision):
    L = _fastnn_cuda()
    L.cuda.set_matmul_precision(precision)
    A, B = L.tensor(a, device="cuda"), L.tensor(b, device="cuda")
    return _synced(partial(L.matmul, A, B), L.cuda.synchronize)


def _torch_gemm(a, b, precision):
    torch = _torch_cuda()
    torch.set_float32_matmul_precision(precision)
    A, B = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    return _synced(partial(torch.matmul, A, B), torch.cuda.synchronize)


def gpu_gemm(ctx):
    n = 1024 if ctx.quick else 4096
    a, b = randn(ctx.rng, n, n), randn(ctx.rng, n, n)
    return [Bench("gpu_gemm", f"{n}x{n}x{n} {p}",
                  [Impl("fastnn", partial(_fastnn_gemm, a, b, p)),
                   Impl("torch", partial(_torch_gemm, a, b, p), note="cuBLAS")],
                  flops=2.0 * n ** 3, device="cuda") for p in PRECISIONS]


def _fastnn_ce(logits, target):
    L = _fastnn_cuda()
    import fastnn.nn.functional as F
    Z = L.tensor(logits, device="cuda", requires_grad=True)
    T = L.tensor(target, device="cuda")

    def step():
        Z.grad = None
        F.cross_entropy(Z, T).backward()
    return _synced(step, L.cuda.synchronize)


def _torch_ce(logits, target):
    torch = _torch_cuda()
    Z = torch.from_numpy(logits).cuda().requires_grad_()
    T = torch.from_numpy(target).cuda()

    def step():
        Z.grad = None
        torch.nn.functional.cross_entropy(Z, T).backward()
    return _synced(step, torch.cuda.synchronize)


def _torch_copy(nbytes):
    # NOTE: the fused cross-entropy must read the logits twice (forward, backward) and write
    # the gradient once: 3 logits-sized passes. A device-to-device copy of 1.5x the logits
    # moves the same bytes (1.5 read + 1.5 written), so time(copy) / time(fastnn) is the
    # fraction of the measured copy bandwidth that fastnn reaches.
    torch = _torch_cuda()
    n = int(nbytes * 1.5) // 4
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    return _synced(partial(dst.copy_, src), torch.cuda.synchronize)


def gpu_softmax_ce(ctx):
    n, classes = (1024, 4000) if ctx.quick else (8192, 32000)
    logits = randn(ctx.rng, n, classes, scale=3.0)
    target = ctx.rng.integers(0, classes, n).astype("int64")
    return [Bench("gpu_softmax_ce", f"{n}x{classes} fwd+bwd",
                  [Impl("fastnn", partial(_fastnn_ce, logits, target)),
                   Impl("torch", partial(_torch_ce, logits, target)),
                   Impl("copy", partial(_torch_copy, logits.nbytes),
                        note="device copy of the same bytes (3 logits passes): the bandwidth "
                             "yardstick")], device="cuda")]


def _mlp_step(lib, state, x, y):
    if lib == "fastnn":
        L = _fastnn_cuda()
        import fastnn.nn  # noqa: F401
        from fastnn.optim import SGD
        sync = L.cuda.synchronize
        L.cuda.set_matmul_precision("highest")  # gpu_gemm leaves its last precision set
        X, Y = L.tensor(x, device="cuda"), L.tensor(y, device="cuda")
        state = {k: L.tensor(v, device="cuda") for k, v in state.items()}
    else:
        L = _torch_cuda()
        from torch.optim import SGD
        sync = L.cuda.synchronize
        L.set_float32_matmul_precision("highest")
        X, Y = L.from_numpy(x).cuda(), L.from_numpy(y).cuda()
        state = {k: L.from_numpy(v).cuda() for k, v in state.items()}
    model = L.nn.Sequential(L.nn.Linear(64, 128), L.nn.ReLU(), L.nn.Linear(128, 10))
    model = model.to("cuda")
    model.load_state_dict(state)
    opt = SGD(model.parameters(), lr=0.05)
    loss_fn = L.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(X), Y).backward()
        opt.step()
    return _synced(step, sync)


def gpu_mlp_step(ctx):
    # The digits example's network (64-128-10) and batch size; tiny for a GPU, so this
    # measures per-step overhead (launches, allocator, Python) against PyTorch eager.
    batch = 64
    state = linear_state(ctx.rng, (64, 128, 10), stride=2)
    x = ctx.rng.uniform(0, 1, (batch, 64)).astype("float32")
    y = ctx.rng.integers(0, 10, batch).astype("int64")
    return [Bench("gpu_mlp_step", f"64-128-10 B={batch} CE SGD",
                  [Impl(lib, partial(_mlp_step, lib, state, x, y)) for lib in ("fastnn", "torch")],
                  device="cuda")]
