"""One harness for every op (convention 5 of the architecture).

check_op(fn, ref, inputs, ref_grad=...) does, for fresh random inputs:
  1. forward: fn on fastnn float32 tensors vs ref on the same values in float64
     (shape and dtype asserted);
  2. backward: out.backward(r) for a random r vs ref_grad(inputs..., r) for every input
     that requires grad;
  3. the reference backward itself vs central finite differences of the float64 reference
     forward (so a wrong reference cannot hide a wrong kernel);
  4. optionally, fastnn's own gradient vs float32 finite differences of fastnn's forward.

Tolerances are derived, not guessed: |got - ref| <= atol + rtol*|ref| with
rtol = C * eps32 * sqrt(k), k the reduction length behind each output element (1 for
elementwise ops, K for a GEMM), and atol = rtol * scale, scale the magnitude of the terms
being summed (cancellation can leave |ref| much smaller than them).
"""
import math

import numpy as np

import fastnn

EPS32 = float(np.finfo(np.float32).eps)
# Batch sizes every op is checked with: empty, 1, odd, a non-multiple of 8/16, a multiple.
BATCHES = [0, 1, 3, 17, 64]
# Feature sizes: 1, odd, around the AVX2 (8) and AVX-512 (16) widths, not a multiple of them.
FEATURES = [1, 5, 8, 16, 33]


def tolerance(k=1, scale=1.0, c=16.0):
    rtol = c * EPS32 * math.sqrt(max(k, 1))
    return rtol * scale, rtol


def assert_close(got, ref, k=1, scale=1.0, c=16.0, what="value"):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    nan_got, nan_ref = np.isnan(got), np.isnan(ref)
    assert np.array_equal(nan_got, nan_ref), f"{what}: NaN pattern differs from the reference"
    atol, rtol = tolerance(k, scale, c)
    ok = ~nan_ref
    inf = np.isinf(ref) & ok
    assert np.array_equal(got[inf], ref[inf]), f"{what}: infinities differ from the reference"
    fin = ok & ~inf
    with np.errstate(invalid="ignore"):  # (inf - inf where both are inf: not compared)
        err = np.abs(got - ref)
    bad = fin & (err > atol + rtol * np.abs(ref))
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err, -1)), got.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {got.size} elements off; worst at {tuple(map(int, i))}: "
            f"got {got[i]!r}, reference {ref[i]!r} (atol={atol:.3g}, rtol={rtol:.3g})")


def fd_check_reference(ref, inputs, r, grads, which, n_samples=12, h=1e-6, rng=None):
    """The reference backward vs central differences of the float64 reference forward, on a
    sample of coordinates of every differentiable input."""
    rng = rng or np.random.default_rng(0)
    inputs = [np.array(x, dtype=np.float64) if i in which else x for i, x in enumerate(inputs)]
    for i in which:
        x = inputs[i]
        if x.size == 0:
            continue
        flat = x.reshape(-1)
        for j in rng.choice(x.size, size=min(n_samples, x.size), replace=False):
            orig = flat[j]
            flat[j] = orig + h
            fp = np.sum(ref(*inputs) * r)
            flat[j] = orig - h
            fm = np.sum(ref(*inputs) * r)
            flat[j] = orig
            num = (fp - fm) / (2 * h)
            ana = grads[i].reshape(-1)[j]
            # NOTE: float64 central differences are accurate to about h^2 + eps64/h ~ 1e-10
            # relative to the function's scale; 1e-5 leaves room for curvature.
            scale = max(1.0, abs(num), float(np.max(np.abs(ref(*inputs) * r))) if r.size else 1.0)
            assert abs(num - ana) <= 1e-5 * scale, (
                f"reference gradient of input {i} wrong at flat index {j}: analytic {ana!r}, "
                f"finite difference {num!r}")


def check_op(fn, ref, inputs, ref_grad=None, k=1, scale=1.0, grad_k=None, grad_scale=None,
             requires_grad=None, c=16.0, fd=True, fd_fastnn=False, rng=None, device=None):
    """Check fn (fastnn) against ref (NumPy float64) on `inputs` (NumPy arrays).

    inputs: float arrays become float32 tensors, integer arrays int64 tensors, on `device`
    (None: the CPU; "cuda": see tests/cuda_harness.py; results are copied back with .cpu()).
    requires_grad: indices of inputs to differentiate (default: all float inputs).
    ref_grad(*inputs, r) -> list with one gradient (or None) per input.
    Returns the fastnn output tensor.
    """
    rng = rng or np.random.default_rng(0)
    if requires_grad is None:
        requires_grad = [i for i, x in enumerate(inputs) if np.asarray(x).dtype.kind == "f"]
    ts, x64 = [], []
    for i, x in enumerate(inputs):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            x32 = x.astype(np.float32)
            ts.append(fastnn.tensor(x32, device=device,
                                    requires_grad=(i in requires_grad and ref_grad is not None)))
            x64.append(x32.astype(np.float64))  # the reference sees exactly fastnn's inputs
        else:
            ts.append(fastnn.tensor(x.astype(np.int64), device=device))
            x64.append(x.astype(np.int64))
    out = fn(*ts)
    want = np.asarray(ref(*x64))
    assert tuple(out.shape) == want.shape, f"forward: shape {tuple(out.shape)}, expected {want.shape}"
    assert out.dtype is (fastnn.float32 if want.dtype.kind == "f" else fastnn.int64), \
        f"forward: dtype {out.dtype}"
    if want.dtype.kind == "f":
        assert_close(out.detach().cpu().numpy(), want, k=k, scale=scale, c=c, what="forward")
    else:
        np.testing.assert_array_equal(out.cpu().numpy(), want, err_msg="forward")
    if ref_grad is None:
        return out
    r = rng.standard_normal(want.shape)
    r32 = r.astype(np.float32)
    out.backward(fastnn.tensor(r32, device=device))
    grads = ref_grad(*x64, r32.astype(np.float64))
    for i in requires_grad:
        g = ts[i].grad
        assert g is not None, f"input {i} got no gradient"
        assert g.device == out.device, f"gradient of input {i} on {g.device}, not {out.device}"
        assert_close(g.cpu().numpy(), grads[i], k=grad_k or k, scale=grad_scale or scale, c=c,
                     what=f"gradient of input {i}")
    if fd:
        fd_check_reference(ref, x64, r32.astype(np.float64), grads, requires_grad, rng=rng)
    if fd_fastnn:
        for i in requires_grad:
            fastnn.autograd.gradcheck(lambda *a: fn(*a), ts, eps=1e-2, atol=5e-2, rtol=5e-2)
            break
    return out


def expect_error(exc, op, fn, *args, match=None, **kwargs):
    """fn(*args) must raise exc whose message starts with "[op]" (and contains `match`)."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        msg = str(e)
        assert msg.startswith(f"[{op}]"), f"message should start with [{op}]: {msg!r}"
        if match is not None:
            assert match in msg, f"message should mention {match!r}: {msg!r}"
        return msg
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"expected {exc.__name__} from {op}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {exc.__name__} from {op}, nothing was raised")


def check_dim_route_declines(fast, general, rng):
    """Calls that a fast route op(x, dim) (_C.tensor_softmax, tensor_sum, ...) must hand to its
    general route, and what they must give: a recorded call (backward reaches x), the same
    call under no_grad (nothing recorded), and a transposed view with a NumPy integer dim
    (the general route's values on a contiguous copy). Returns the transposed view's
    contiguous copy (6, 4) and a (4, 6) float32 tensor with nothing to record, for the
    caller's own checks."""
    x = fastnn.tensor(rng.standard_normal((4, 6)).astype(np.float32), requires_grad=True)
    y = fast(x, dim=1)
    assert y.requires_grad
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == (4, 6)
    with fastnn.no_grad():
        assert not fast(x, 1).requires_grad
    t = fastnn.tensor(rng.standard_normal((6, 4)).astype(np.float32)).T
    c = fastnn.tensor(t.numpy().copy())
    want = general(c, 1).numpy()
    for got in (fast(t, 1), fast(t, dim=1), fast(t, np.int64(1))):
        np.testing.assert_array_equal(got.numpy(), want)
    return c, x.detach()
