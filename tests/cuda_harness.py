"""The common harness on a CUDA device (issue 6, item 4).

check_cuda_op runs an op on device "cuda" (1) against the NumPy float64 reference with
harness.check_op's derived tolerances, and (2) against fastnn's CPU backend on the same
float32 inputs and the same backward seed: outputs and gradients of the two backends must
agree within twice the reference tolerance (each lies within one tolerance of the reference),
exactly for integer outputs.

The ``cuda_device`` fixture skips (reported as skipped, with the reason fastnn.cuda gives)
unless a real GPU and the compiled backend are present. Developer switch: with
FASTNN_TEST_CUDA_FAKE=1 it installs the fake backend (tests/fake_cuda.py) instead, which
exercises these tests' own logic on a machine without a GPU -- it says nothing about the CUDA
kernels, since the fake runs the CPU kernels.
"""
import os

import numpy as np
import pytest

import fastnn
from harness import assert_close, check_op

FAKE = os.environ.get("FASTNN_TEST_CUDA_FAKE") == "1"


@pytest.fixture(scope="module")
def cuda_device():
    """Yields "cuda" when a CUDA device is usable, else skips the test with the reason."""
    prev = None
    if FAKE:
        import fake_cuda
        prev = fastnn.cuda._install(fake_cuda)
    try:
        if not fastnn.cuda.is_available():
            pytest.skip(f"no CUDA device: {fastnn.cuda._unavailable_reason()}")
        yield "cuda"
    finally:
        if prev is not None:
            fastnn.cuda._restore(prev)


def _tensors(inputs, requires_grad, device, track):
    ts = []
    for i, x in enumerate(inputs):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            ts.append(fastnn.tensor(x.astype(np.float32), device=device,
                                    requires_grad=track and i in requires_grad))
        else:
            ts.append(fastnn.tensor(x.astype(np.int64), device=device))
    return ts


def check_cuda_op(fn, ref, inputs, ref_grad=None, k=1, scale=1.0, grad_k=None, grad_scale=None,
                  requires_grad=None, c=16.0, rng=None):
    """Check fn on "cuda" against ref (as check_op does), then against the CPU backend."""
    rng = rng or np.random.default_rng(0)
    seed = int(rng.integers(2 ** 31))
    # fd=False: the CPU test files already check each reference backward by finite differences.
    out = check_op(fn, ref, inputs, ref_grad=ref_grad, k=k, scale=scale, grad_k=grad_k,
                   grad_scale=grad_scale, requires_grad=requires_grad, c=c, fd=False,
                   rng=np.random.default_rng(seed), device="cuda")
    assert out.is_cuda, f"result on {out.device}, expected cuda"
    if requires_grad is None:
        requires_grad = [i for i, x in enumerate(inputs) if np.asarray(x).dtype.kind == "f"]
    got = {}
    for dev in ("cpu", "cuda"):
        ts = _tensors(inputs, requires_grad, dev, ref_grad is not None)
        o = fn(*ts)
        grads = []
        if ref_grad is not None and o.dtype is fastnn.float32:
            r = np.random.default_rng(seed + 1).standard_normal(tuple(o.shape))
            o.backward(fastnn.tensor(r.astype(np.float32), device=dev))
            grads = [ts[i].grad.cpu().numpy() for i in requires_grad]
        got[dev] = (o.detach().cpu().numpy(), grads)
    (oc, gc), (og, gg) = got["cpu"], got["cuda"]
    if oc.dtype.kind == "f":
        assert_close(og, oc, k=k, scale=scale, c=2 * c, what="cuda vs cpu forward")
    else:
        np.testing.assert_array_equal(og, oc, err_msg="cuda vs cpu forward")
    for i, (a, b) in enumerate(zip(gg, gc)):
        assert_close(a, b, k=grad_k or k, scale=grad_scale or scale, c=2 * c,
                     what=f"cuda vs cpu gradient of input {requires_grad[i]}")
    return out
