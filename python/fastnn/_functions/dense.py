"""linear (x @ W^T + b with a fused activation) and matmul, on the C++ GEMM.

linear(x (*, in), weight (out, in), bias (out,) or None, act="none"|"relu"|"sigmoid"|"tanh"|
"gelu"|"softplus") -> (*, out): one _C.linear_fwd call (GEMM with bias and activation in its
epilogue) and one _C.linear_bwd call for all requested gradients.
matmul(a, b): NumPy/PyTorch matmul semantics (1-D, 2-D, batched with broadcasting); forward
and backward through _C.gemm / _C.bmm with transposes read in place, never materialised.
"""
import math

import numpy as np

from .. import _C
from ..autograd import Function, grad_mode
from ..tensor import Tensor, _ND, _contig, _is_host, _kernels, _same_device
from .activation import ACT_CODES, NEEDS_INPUT
from .shape import sum_to_shape
from ._check import check_tensor, named_as

_F32 = np.dtype(np.float32)


_check_float = check_tensor  # (t, op, name, optional=)


# ---- linear -------------------------------------------------------------------------------

class Linear(Function):
    @staticmethod
    def forward(ctx, x, w, b, act, beta, threshold):
        # NOTE: per-call overhead matters for small networks (the StatQuest net's whole step
        # is tens of microseconds): the 2-D case skips the reshapes, math.prod replaces
        # np.prod (~3 us through NumPy's reduction machinery).
        x2 = _contig(x)
        if x.ndim != 2:
            lead = x.shape[:-1]
            # (*, in) -> (rows, in): a view for contiguous x, so nothing is copied.
            x2 = x2.reshape((math.prod(lead), x.shape[-1]))
        w = _contig(w)
        b = None if b is None else _contig(b)
        y, z = (_C if type(x2) is _ND else _kernels(x2)).linear_fwd(x2, w, b, act, beta, threshold)
        ctx.args = (act, beta, threshold, x.shape, b is not None)
        # The activation's derivative comes from z (gelu, softplus) or from y (the others).
        saved = z if act in NEEDS_INPUT else (y if act != 0 else None)
        ctx.save_for_backward(x2, w, saved)
        return y if x.ndim == 2 else y.reshape((*x.shape[:-1], w.shape[0]))

    @staticmethod
    def backward(ctx, g):
        x2, w, saved = ctx.saved_tensors
        act, beta, threshold, xshape, has_bias = ctx.args
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g2 = _contig(g)
        if g2.ndim != 2:
            g2 = g2.reshape((x2.shape[0], w.shape[0]))
        dx, dw, db = (_C if type(g2) is _ND else _kernels(g2)).linear_bwd(g2, x2, w, saved, act, beta, threshold, need_x, need_w,
                                   need_b and has_bias)
        if dx is not None and len(xshape) != 2:
            dx = dx.reshape(xshape)
        return dx, dw, db, None, None, None


def linear(x, weight, bias=None, act="none", beta=1.0, threshold=20.0):
    """x @ weight^T + bias, then the activation `act` in the GEMM's epilogue (beta and
    threshold are softplus's parameters)."""
    code = ACT_CODES.get(act) if isinstance(act, str) else None
    if code is not None and isinstance(x, Tensor) and isinstance(weight, Tensor) \
            and x._data.dtype is _F32 and weight._data.dtype is _F32 and x._data.ndim == 2 \
            and (bias is None or (isinstance(bias, Tensor) and bias._data.dtype is _F32)) \
            and (code != 5 or beta != 0):
        # The common case, with the checks below that it passes skipped (see matmul's NOTE).
        return Linear.apply(x, weight, bias, code, float(beta), float(threshold))
    _check_float(x, "linear", "input")
    _check_float(weight, "linear", "weight")
    _check_float(bias, "linear", "bias", optional=True)
    _same_device("linear", x, weight, bias)
    if act not in ACT_CODES:
        raise ValueError(f"[linear] act must be one of {sorted(ACT_CODES)}, got {act!r}")
    if x.ndim == 0:
        raise ValueError("[linear] input must be at least 1-D (*, in), got a 0-d tensor")
    if act == "softplus" and beta == 0:
        raise ValueError("[linear] softplus beta must be non-zero, got 0")
    return Linear.apply(x, weight, bias, ACT_CODES[act], float(beta), float(threshold))


class LinearChain(Function):
    """Linear layers in a chain (each with its activation fused) as one recorded op: one C++
    call forward, one backward (_C.mlp_chain_fwd / _C.mlp_chain_bwd). nn.Sequential uses it
    for runs of Linear(+activation) layers; the arithmetic is linear's, layer by layer.

    forward(ctx, x, spec, w0, b0, w1, b1, ...): spec from chain_spec (_C.mlp_spec: the
    activations, one per layer); a missing bias is None."""

    @staticmethod
    def forward(ctx, x, spec, *params):
        # (chain_spec has checked that every weight and bias is C-contiguous float32.) The C++
        # side keeps the input, layers and intermediates for backward in `saved`.
        y, saved = _C.mlp_chain_fwd(x, spec, params)
        # (x, y and the parameters as well, which backward reads through `saved`: so that
        # backward's check for values changed in place since they were saved sees them.)
        ctx.saved_tensors = (saved, x, y) + params
        return y

    @staticmethod
    def backward(ctx, g):
        # -> (dx, None, dw0, db0, dw1, db1, ...), None where needs_input_grad is False
        return _C.mlp_chain_bwd(g, ctx.saved_tensors[0], ctx.needs_input_grad)


def chain_spec(layers):
    """(spec, params) for LinearChain.apply(x, spec, *params) from linear layers [(weight,
    bias or None, act, beta, threshold), ...], or None when they are not the chain's
    (a parameter that is not a C-contiguous float32 host tensor, an unknown activation,
    softplus with beta 0). nn.Sequential keeps the result between calls."""
    params, acts, betas, ths = [], [], [], []
    for w, b, act, beta, threshold in layers:
        if w is None:
            return None
        for p in (w, b):
            if p is None:
                params.append(None)
                continue
            if not isinstance(p, Tensor):
                return None
            d = p._data
            if type(d) is not _ND or d.dtype is not _F32 or not d.flags.c_contiguous:
                return None
            params.append(p)
        code = ACT_CODES.get(act) if isinstance(act, str) else None
        if code is None or (code == 5 and beta == 0):
            return None
        acts.append(code)
        betas.append(float(beta))
        ths.append(float(threshold))
    return _C.mlp_spec(acts, betas, ths), tuple(params)


# ---- matmul -------------------------------------------------------------------------------

def _as3d(m, batch):
    """m (*mb, r, c) as a contiguous (B, r, c) for _C.bmm, B = prod(batch) or 1 (broadcast
    inside the kernel by a zero stride). Only a partial broadcast (e.g. (2, 1) against
    (2, 3)) needs a real copy."""
    mb = m.shape[:-2]
    nb = int(np.prod(mb, dtype=np.int64))
    if tuple(mb) == tuple(batch) or (nb == 1 and int(np.prod(batch, dtype=np.int64)) != 0):
        return _contig(m).reshape((nb, *m.shape[-2:]))
    full = _contig(_broadcast(m, tuple(batch) + m.shape[-2:]))
    return full.reshape((-1, *m.shape[-2:]))


def _broadcast(m, shape):
    """m broadcast to shape: a NumPy view on the host, the backend's expand kernel (a copy)
    for a CUDA array, which has no strided views."""
    if _is_host(m):
        return np.broadcast_to(m, shape)
    if tuple(m.shape) == tuple(shape):
        return m
    lead = (1,) * (len(shape) - m.ndim)
    return _kernels(m).expand(m.reshape(lead + tuple(m.shape)), list(shape), 1.0)


def _mt_flip(m, trans):
    """(m, trans), or m with its last two axes swapped and trans flipped when only that is
    C-contiguous: a .mT / transpose(-2, -1) view is then read in place by the kernels rather
    than copied."""
    if m.ndim >= 2 and _is_host(m) and not m.flags.c_contiguous:
        s = m.swapaxes(-1, -2)
        if s.flags.c_contiguous:
            return s, not trans
    return m, trans


def _batched(a, b, trans_a, trans_b, batch):
    """op(a)·op(b) per batch element, batch dims broadcast -> (*batch, M, N)."""
    M = a.shape[-1] if trans_a else a.shape[-2]
    N = b.shape[-2] if trans_b else b.shape[-1]
    a, trans_a = _mt_flip(a, trans_a)
    b, trans_b = _mt_flip(b, trans_b)
    if b.ndim == 2 and not trans_a:
        # b is shared by every batch element: stack a's batch into rows, one 2-D GEMM.
        a2 = _contig(a).reshape((-1, a.shape[-1]))
        return (_C if type(a2) is _ND else _kernels(a2)).gemm(a2, _contig(b), False, trans_b).reshape((*batch, M, N))
    a3 = _as3d(a, batch)
    c = (_C if type(a3) is _ND else _kernels(a3)).bmm(a3, _as3d(b, batch), trans_a, trans_b)
    return c.reshape((*batch, M, N))


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"[matmul] both arguments must be at least 1-D, got shapes "
                             f"{a.shape} and {b.shape}")
        va, vb = a.ndim == 1, b.ndim == 1
        A = a.reshape((1, -1)) if va else a  # a vector on the left is a row ...
        B = b.reshape((-1, 1)) if vb else b  # ... on the right a column; both dropped at the end
        if A.shape[-1] != B.shape[-2]:
            raise ValueError(f"[matmul] inner dimensions must match: a {a.shape} has "
                             f"{A.shape[-1]} columns, b {b.shape} has {B.shape[-2]} rows")
        try:
            batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        except ValueError:
            raise ValueError(f"[matmul] batch dimensions do not broadcast: a {a.shape}, "
                             f"b {b.shape}") from None
        C = _batched(A, B, False, False, batch)
        ctx.save_for_backward(A, B)
        ctx.meta = (batch, a.shape, b.shape)
        out_shape = C.shape[:-2] + (() if va else C.shape[-2:-1]) + (() if vb else C.shape[-1:])
        return C.reshape(out_shape)

    @staticmethod
    def backward(ctx, g):
        A, B = ctx.saved_tensors
        batch, ashape, bshape = ctx.meta
        M, N = A.shape[-2], B.shape[-1]
        G = _contig(g).reshape((*batch, M, N))
        ga = gb = None
        if ctx.needs_input_grad[0]:  # dA = G·Bᵀ
            ga = sum_to_shape(_batched(G, B, False, True, batch), A.shape).reshape(ashape)
        if ctx.needs_input_grad[1]:  # dB = Aᵀ·G
            if B.ndim == 2:
                # B shared across the batch: Σ_i A_iᵀ G_i is one GEMM over the stacked rows.
                A2 = _contig(_broadcast(A, tuple(batch) + A.shape[-2:])).reshape((-1, A.shape[-1]))
                gb = (_C if type(A2) is _ND else _kernels(A2)).gemm(A2, G.reshape((-1, N)), True, False)
            else:
                gb = sum_to_shape(_batched(A, G, True, False, batch), B.shape)
            gb = gb.reshape(bshape)
        return ga, gb


def _col_major(m):
    """True for a 2-D host array stored column by column and not row by row (a transposed
    view of a C-contiguous matrix)."""
    f = m.flags
    return f.f_contiguous and not f.c_contiguous


class MatMul2D(Function):
    """The common case, 2-D x 2-D, without matmul's broadcasting bookkeeping. On the host,
    transposed views and row or column slices (x @ w.T, a.T @ b, x[:, :k] @ w) are read in
    place forward and backward, never copied."""

    @staticmethod
    def forward(ctx, a, b):
        # mm reads C-contiguous arrays, transposed views and slices in place (and copies
        # other layouts itself).
        ctx.save_for_backward(a, b)
        return (_C if type(a) is _ND else _kernels(a)).mm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        g = _contig(g)
        ga = gb = None
        if type(g) is _ND:
            # dA = G·Bᵀ, dB = Aᵀ·G with the transposes as views (see forward). An operand that
            # is a transposed view (w.T) gets its gradient in the same layout, computed as the
            # transpose of (Gᵀ·A) or (B·Gᵀ): the Permute that made the view then hands its
            # source a C-contiguous gradient, which a leaf adopts without a copy (as PyTorch's
            # mm backward does for column-major operands).
            if ctx.needs_input_grad[0]:
                ga = _C.mm(b, g.T).T if _col_major(a) else _C.mm(g, b.T)
            if ctx.needs_input_grad[1]:
                gb = _C.mm(g.T, a).T if _col_major(b) else _C.mm(a.T, g)
        else:  # CUDA arrays: always C-contiguous, transposes by flag
            K = _kernels(g)
            ga = K.gemm(g, b, False, True) if ctx.needs_input_grad[0] else None
            gb = K.gemm(a, g, True, False) if ctx.needs_input_grad[1] else None
        return ga, gb


@named_as("matmul")
def _matmul_py(a, b):
    """matmul's general route. fastnn.matmul is _C.tensor_matmul, which does the common call
    (two 2-D C-contiguous float32 host Tensors, nothing to record) itself and passes every
    other call here unchanged."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        ad, bd = a._data, b._data
        # NOTE: per-call overhead matters at the sizes this path serves (16^3 is ~0.05 us of
        # arithmetic; what reaches it here is strided host views and CUDA arrays, the C route
        # took the rest): 2-D float32 operands skip the Function machinery when nothing needs a
        # gradient, and _C.mm tests its arguments itself (non-contiguous ones are copied,
        # wrong shapes raise), so nothing else is checked here. `is` on the dtype: NumPy's
        # native float32 descriptor is a singleton; any other spelling takes the checked path.
        # Both host arrays or both CUDA arrays (the backend checks their device indices);
        # a mixed pair takes the checked path below, which names the devices.
        ta = type(ad)
        if ad.dtype is _F32 and bd.dtype is _F32 and ad.ndim == 2 and bd.ndim == 2 \
                and ta is type(bd):
            if not ((a._requires_grad or b._requires_grad) and grad_mode.enabled):
                return Tensor._make((_C if ta is _ND else _kernels(ad)).mm(ad, bd))
            if ad.shape[1] == bd.shape[0]:
                return MatMul2D.apply(a, b)
    _check_float(a, "matmul", "a")
    _check_float(b, "matmul", "b")
    _same_device("matmul", a, b)
    return MatMul.apply(a, b)


# matmul(a, b): NumPy/PyTorch semantics (1-D, 2-D, batched with broadcasting), with autograd.
matmul = _C.tensor_matmul
