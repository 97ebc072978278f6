"""Benchmark cases.

A case is a function ``case(ctx) -> list[Bench]``. A Bench is one row group of the table
(one shape of one case); it lists the implementations to time side by side. Each Impl has a
``build()`` that creates its inputs/model and returns the zero-argument callable to time, so
that a missing piece (torch not installed, fastnn.optim not merged yet) raises ImportError or
AttributeError inside build() and becomes an "unavailable" row instead of a crash.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional


@dataclass
class Impl:
    name: str                                   # "fastnn", "torch", "numpy", ...
    build: Optional[Callable] = None            # () -> callable to time
    context: Optional[Callable] = None          # () -> context manager held while sampling
    # Measured elsewhere (a subprocess): () -> {"samples": [s per call], "inner": n, "note": ..}
    external: Optional[Callable] = None
    note: str = ""


@dataclass
class Bench:
    case: str
    label: str                                  # shape/config shown in the table
    impls: List[Impl] = field(default_factory=list)
    flops: Optional[float] = None               # per call; set only for arithmetic-bound work
    unit: Optional[str] = None                  # force a time unit ("us" for op_overhead)
    best_of: tuple = ()                         # impl names of which the faster gets a note
    best_note: str = ""
    device: str = "cpu"                         # "cuda": no CPU peak fraction for its rows


def aligned(a, alignment=64):
    """A copy of array a whose data starts on an `alignment`-byte boundary.

    Every library in a row gets the same array, so all of them read the same aligned memory.
    This is the memory a tensor from fastnn's or PyTorch's own allocator has (both align to 64
    bytes). NumPy's allocator aligns to 16 bytes only. On such an array, every 64-byte vector
    load of a row splits across two cache lines.
    NOTE: on an Intel Xeon (AVX-512, 2026-12-06, 1 thread), misaligned operands cost fastnn's
    in-place-B GEMMs 5-10% (64x784x256 NN: 132 us aligned, 148 us at a 16-byte offset, best of
    30 interleaved samples). PyTorch did not change.
    """
    import numpy as np
    a = np.asarray(a)
    buf = np.empty(a.nbytes + alignment, dtype=np.uint8)
    off = (-buf.ctypes.data) % alignment
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def randn(rng, *shape, scale=1.0):
    """Fresh float32 normal data (never zeros: zeros can take fast paths that real data does not),
    64-byte aligned (see aligned)."""
    return aligned((rng.standard_normal(shape) * scale).astype("float32"))


def linear_state(rng, dims, stride=1):
    """PyTorch-style U(-1/sqrt(in), 1/sqrt(in)) weights for a chain of Linear layers, keyed as
    in Sequential (layer i at index i*stride), loaded into both libraries so that they compute
    on identical values (same ReLU sparsity, same softplus branches)."""
    state = {}
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        bound = fan_in ** -0.5
        state[f"{i * stride}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype("float32")
        state[f"{i * stride}.bias"] = rng.uniform(-bound, bound, (fan_out,)).astype("float32")
    return state


# Exceptions that mean "this implementation is not available here", not "the harness broke".
UNAVAILABLE = (ImportError, AttributeError, NotImplementedError)

from . import dense, softmax, training, overhead  # noqa: E402  (they import Bench/Impl)

# Names are the public ones (`--cases NAME`); order is the table's order.
CASES = {
    "gemm": dense.gemm,
    "gemm_mlp": dense.gemm_mlp,
    "gemm_deep": dense.gemm_deep,
    "gemm_narrow": dense.gemm_narrow,
    "gemm_skinny": dense.gemm_skinny,
    "gemm_small": dense.gemm_small,
    "linear_relu": dense.linear_relu,
    "softmax_ce": softmax.softmax_ce,
    "softmax_dim": softmax.softmax_dim,
    "mlp_step": training.mlp_step,
    "tiny_step": training.tiny_step,
    "op_overhead": overhead.op_overhead,
}

from . import rnn  # noqa: E402
CASES["lstm_train"] = rnn.lstm_train
CASES["lstm_small"] = rnn.lstm_small
CASES["lstm_b1"] = rnn.lstm_b1
from . import conv  # noqa: E402
CASES.update({"conv_fwd": conv.conv_fwd, "conv_train": conv.conv_train,
              "maxpool": conv.maxpool, "cnn_step": conv.cnn_step})
from . import elementwise  # noqa: E402
CASES.update({"activations": elementwise.activations, "op_small": elementwise.op_small,
              "op_tensor": elementwise.op_tensor})
from . import gpu  # noqa: E402
CASES.update({"gpu_gemm": gpu.gpu_gemm, "gpu_softmax_ce": gpu.gpu_softmax_ce,
              "gpu_mlp_step": gpu.gpu_mlp_step})
