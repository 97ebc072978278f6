"""NumPy float64 references for every fastnn op: the truth the kernels are checked against.

Each op has a forward `<op>(...)` and a backward `<op>_grad(..., g)` that returns the
gradient of sum(forward * g) with respect to each input (None where there is none).
Sections follow csrc/ops/: activation, dense, softmax, loss, elementwise, reduce, optim.
"""
import numpy as np
from math import erf as _erf

_verf = np.vectorize(_erf, otypes=[np.float64])


# ---- activation -------------------------------------------------------------------------

def relu(x):
    return np.where(x < 0, 0.0, x)


def relu_grad(x, g):
    return [np.where(x > 0, g, 0.0)]  # relu'(0) = 0


def sigmoid(x):
    # NOTE: evaluated on the side where exp cannot overflow.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(x, g):
    s = sigmoid(x)
    return [g * s * (1 - s)]


def tanh(x):
    return np.tanh(x)


def tanh_grad(x, g):
    return [g * (1 - np.tanh(x) ** 2)]


def gelu(x):
    return 0.5 * x * (1 + _verf(x / np.sqrt(2.0)))


def gelu_grad(x, g):
    cdf = 0.5 * (1 + _verf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return [g * (cdf + x * pdf)]


def softplus(x, beta=1.0, threshold=20.0):
    z = beta * x
    # log1p(exp(z)) written as max(z, 0) + log1p(exp(-|z|)) cannot overflow
    soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) / beta
    return np.where(z > threshold, x, soft)


def softplus_grad(x, g, beta=1.0, threshold=20.0):
    z = beta * x
    return [g * np.where(z > threshold, 1.0, sigmoid(z))]


# ---- dense ------------------------------------------------------------------------------

_ACT_FWD = {"none": lambda z: z, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "gelu": gelu,
            "softplus": softplus}
_ACT_GRAD = {"none": lambda z, g: [g], "relu": relu_grad, "sigmoid": sigmoid_grad,
             "tanh": tanh_grad, "gelu": gelu_grad, "softplus": softplus_grad}


def linear(x, w, b=None, act="none"):
    z = x @ w.T
    if b is not None:
        z = z + b
    return _ACT_FWD[act](z)


def linear_grad(x, w, b, g, act="none"):
    """[dx, dw, db] of sum(linear(x, w, b, act) * g); x (*, in) with any leading dims."""
    x2 = x.reshape(-1, x.shape[-1])
    z = x2 @ w.T + (0.0 if b is None else b)
    dz = _ACT_GRAD[act](z, g.reshape(z.shape))[0]
    return [(dz @ w).reshape(x.shape), dz.T @ x2, None if b is None else dz.sum(0)]


def matmul(a, b):
    return np.matmul(a, b)


def _unbroadcast(g, shape):
    """Sum g down to `shape` over the dims broadcasting added (leading) or stretched (1s)."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def matmul_grad(a, b, g):
    """[da, db] of sum(matmul(a, b) * g), 1-D operands promoted as np.matmul does."""
    A = a[None, :] if a.ndim == 1 else a
    B = b[:, None] if b.ndim == 1 else b
    G = g.reshape(np.matmul(A, B).shape)  # put back the dims a 1-D operand dropped
    da = _unbroadcast(G @ np.swapaxes(B, -1, -2), A.shape)
    db = _unbroadcast(np.swapaxes(A, -1, -2) @ G, B.shape)
    return [da.reshape(a.shape), db.reshape(b.shape)]


# ---- softmax ----------------------------------------------------------------------------

def _shifted(x, dim):
    """x - max(x) along dim and log(sum(exp(x - max))): the stable log-sum-exp pieces.
    NOTE: the max propagates NaN and an all -inf row gives -inf - -inf = NaN, so such rows
    come out NaN, as in PyTorch."""
    with np.errstate(invalid="ignore"):
        z = x - np.max(x, axis=dim, keepdims=True)
        return z, np.log(np.sum(np.exp(z), axis=dim, keepdims=True))


def softmax(x, dim):
    if x.size == 0:
        return np.array(x, dtype=np.float64)
    z, ls = _shifted(x, dim)
    with np.errstate(invalid="ignore"):
        return np.exp(z - ls)


def softmax_grad(x, dim, g):
    y = softmax(x, dim)
    return [y * (g - np.sum(g * y, axis=dim, keepdims=True))]


def log_softmax(x, dim):
    if x.size == 0:
        return np.array(x, dtype=np.float64)
    z, ls = _shifted(x, dim)
    with np.errstate(invalid="ignore"):
        return z - ls


def log_softmax_grad(x, dim, g):
    return [g - softmax(x, dim) * np.sum(g, axis=dim, keepdims=True)]


def argmax(x, dim=None, keepdim=False):
    # np.argmax: first index on ties, and a NaN counts as the maximum (the first NaN wins).
    if dim is None:
        i = np.argmax(x)
        return np.full((1,) * x.ndim if keepdim else (), i, dtype=np.int64)
    if x.ndim == 0:
        return np.zeros((), np.int64)
    return np.argmax(x, axis=dim, keepdims=keepdim).astype(np.int64)


# ---- loss -------------------------------------------------------------------------------

def _ce_rows(x, t, ignore_index):
    """(logits (N, C), targets (N,), mask of counted rows, unbatched?)"""
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None, :], np.reshape(t, (1,))
    mask = t != ignore_index
    return x, np.where(mask, t, 0), mask, unbatched


def cross_entropy(x, t, reduction="mean", ignore_index=-100):
    x, tt, mask, unbatched = _ce_rows(x, t, ignore_index)
    lsm = log_softmax(x, 1)
    picked = lsm[np.arange(len(tt)), tt] if len(tt) else np.zeros(0)
    losses = np.where(mask, -picked, 0.0)
    if reduction == "none":
        return losses[0] if unbatched else losses
    if reduction == "sum":
        return np.sum(losses)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(losses) / np.sum(mask)  # no counted targets: 0/0 = NaN, as PyTorch


def cross_entropy_grad(x, t, g, reduction="mean", ignore_index=-100):
    shape = x.shape
    x, tt, mask, unbatched = _ce_rows(x, t, ignore_index)
    d = softmax(x, 1)
    d[np.arange(len(tt)), tt] -= 1.0
    d *= mask[:, None]
    g = np.asarray(g, dtype=np.float64)
    if reduction == "none":
        d *= np.reshape(g, (-1, 1))
    else:
        # all rows ignored: every row's gradient is 0 (not 0 * 1/0)
        d *= g / (max(int(np.sum(mask)), 1) if reduction == "mean" else 1.0)
    return [d.reshape(shape), None]


def mse_loss(x, y, reduction="mean"):
    d = (x - y) ** 2
    if reduction == "none":
        return d
    if reduction == "sum":
        return np.sum(d)
    with np.errstate(invalid="ignore"):
        return np.sum(d) / d.size if d.size else np.float64(np.nan)


def mse_loss_grad(x, y, g, reduction="mean"):
    s = 2.0 * (x - y) * g / (x.size if reduction == "mean" else 1.0)
    return [s, -s]


# ---- elementwise ------------------------------------------------------------------------

def unbroadcast(g, shape):
    """Sum a gradient at the broadcast shape back down to an input's shape."""
    g = np.asarray(g, dtype=np.float64)
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


def add(a, b):
    return a + b


def add_grad(a, b, g):
    return [unbroadcast(g, np.shape(a)), unbroadcast(g, np.shape(b))]


def sub(a, b):
    return a - b


def sub_grad(a, b, g):
    return [unbroadcast(g, np.shape(a)), unbroadcast(-g, np.shape(b))]


def mul(a, b):
    return a * b


def mul_grad(a, b, g):
    return [unbroadcast(g * b, np.shape(a)), unbroadcast(g * a, np.shape(b))]


def div(a, b):
    return a / b


def div_grad(a, b, g):
    return [unbroadcast(g / b, np.shape(a)), unbroadcast(-g * a / (b * b), np.shape(b))]


def power(a, b):
    return np.power(a, b)


def power_grad(a, b, g):
    # d/db = a^b log a; 0 where a == 0 and b >= 0 (PyTorch), NaN for a < 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        ga = np.where(b == 0, 0.0, g * b * np.power(a, b - 1))
        gb = np.where((a == 0) & (b >= 0), 0.0, g * np.power(a, b) * np.log(a))
    return [unbroadcast(ga, np.shape(a)), unbroadcast(gb, np.shape(b))]


def maximum(a, b):
    return np.maximum(a, b)


def maximum_grad(a, b, g):
    # the gradient goes to the larger input, half/half on ties (PyTorch)
    ga = np.where(a == b, g / 2, np.where(a > b, g, 0.0))
    gb = np.where(a == b, g / 2, np.where(a < b, g, 0.0))
    return [unbroadcast(ga, np.shape(a)), unbroadcast(gb, np.shape(b))]


def minimum(a, b):
    return np.minimum(a, b)


def minimum_grad(a, b, g):
    ga = np.where(a == b, g / 2, np.where(a < b, g, 0.0))
    gb = np.where(a == b, g / 2, np.where(a > b, g, 0.0))
    return [unbroadcast(ga, np.shape(a)), unbroadcast(gb, np.shape(b))]


def neg(x):
    return -x


def neg_grad(x, g):
    return [-g]


def absolute(x):
    return np.abs(x)


def absolute_grad(x, g):
    return [g * np.sign(x)]  # abs'(0) = 0


def exp(x):
    return np.exp(x)


def exp_grad(x, g):
    return [g * np.exp(x)]


def log(x):
    return np.log(x)


def log_grad(x, g):
    return [g / x]


def sqrt(x):
    return np.sqrt(x)


def sqrt_grad(x, g):
    return [g / (2 * np.sqrt(x))]


# ---- reduce -----------------------------------------------------------------------------

def _axes(x, dim):
    if np.ndim(x) == 0:  # a 0-d input reduces over nothing (dim 0 / -1 are still accepted)
        return ()
    if dim is None:
        return tuple(range(np.ndim(x)))
    return tuple(d % max(np.ndim(x), 1) for d in (dim if isinstance(dim, tuple) else (dim,)))


def reduce_sum(x, dim=None, keepdim=False):
    return np.sum(x, axis=_axes(x, dim), keepdims=keepdim)


def reduce_sum_grad(x, g, dim=None, keepdim=False):
    g = np.asarray(g) if keepdim else np.expand_dims(g, _axes(x, dim))
    return [np.broadcast_to(g, np.shape(x)).astype(np.float64)]


def reduce_mean(x, dim=None, keepdim=False):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(x, axis=_axes(x, dim), keepdims=keepdim) / _count(x, dim)


def _count(x, dim):
    n = 1
    for a in _axes(x, dim):
        n *= np.shape(x)[a] if np.ndim(x) else 1
    return n


def reduce_mean_grad(x, g, dim=None, keepdim=False):
    return [reduce_sum_grad(x, g, dim, keepdim)[0] / max(_count(x, dim), 1)]


def max_all(x):
    return np.max(x)


def max_all_grad(x, g):
    m = x == np.max(x)
    return [m * (g / m.sum())]  # ties share the gradient evenly (PyTorch)


def min_all(x):
    return np.min(x)


def min_all_grad(x, g):
    m = x == np.min(x)
    return [m * (g / m.sum())]


def max_dim(x, dim, keepdim=False):
    """(values, indices) along dim; the first index on ties."""
    i = np.argmax(x, axis=dim)
    v = np.take_along_axis(x, np.expand_dims(i, dim), dim)
    return (v if keepdim else np.squeeze(v, dim)), (np.expand_dims(i, dim) if keepdim else i)


def min_dim(x, dim, keepdim=False):
    i = np.argmin(x, axis=dim)
    v = np.take_along_axis(x, np.expand_dims(i, dim), dim)
    return (v if keepdim else np.squeeze(v, dim)), (np.expand_dims(i, dim) if keepdim else i)


def extreme_dim_grad(x, g, dim, keepdim=False, is_max=True):
    """The gradient of the values goes to the selected index only."""
    _, i = (max_dim if is_max else min_dim)(x, dim, keepdim=True)
    gx = np.zeros(np.shape(x))
    np.put_along_axis(gx, i, g if keepdim else np.expand_dims(g, dim), dim)
    return [gx]


# ---- optim ------------------------------------------------------------------------------


def sgd_step(p, g, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False):
    """One SGD step of PyTorch's rule on float64 arrays. buf=None means "no buffer yet" (the
    first step with momentum). Returns (new_p, new_buf or None)."""
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    new_buf = None
    if momentum != 0:
        new_buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
        g = g + momentum * new_buf if nesterov else new_buf
    return p - lr * g, new_buf


def adam_step(p, g, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              maximize=False):
    """One Adam step (Kingma & Ba with PyTorch's eps placement) on float64 arrays; t counts
    this step (1 on the first). Returns (new_p, new_m, new_v)."""
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
    return p - (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps), m, v


# ---- rnn --------------------------------------------------------------------------------
# One recurrent layer unrolled step by step in float64, time-major x (T, N, I), gate order
# i, f, g, o. Forward and gradient return the outputs flattened and joined as
# [y (T*N*H), h_n (N*H), c_n (N*H)] (RNN: no c_n), so one seed r covers every output.

def _sig64(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_unrolled(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """(ys (T, N, H), cs (T, N, H), gates [(i, f, g, o)] per step)."""
    H = w_hh.shape[1]
    h, c = h0, c0
    ys, cs, gs = [], [], []
    for t in range(x.shape[0]):
        z = x[t] @ w_ih.T + h @ w_hh.T + b_ih + b_hh
        i, f = _sig64(z[:, :H]), _sig64(z[:, H:2 * H])
        g, o = np.tanh(z[:, 2 * H:3 * H]), _sig64(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
        cs.append(c)
        gs.append((i, f, g, o))
    return np.array(ys).reshape(x.shape[0], x.shape[1], H), np.array(cs).reshape(
        x.shape[0], x.shape[1], H), gs


def lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    ys, cs, _ = lstm_unrolled(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    return np.concatenate([ys.reshape(-1), ys[-1].reshape(-1), cs[-1].reshape(-1)])


def lstm_grad(x, h0, c0, w_ih, w_hh, b_ih, b_hh, r):
    """Back-propagation through time of sum(lstm(...) * r): [dx, dh0, dc0, dw_ih, dw_hh,
    db_ih, db_hh]."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    ys, cs, gs = lstm_unrolled(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    ny = T * N * H
    dys = r[:ny].reshape(T, N, H)
    dh = r[ny:ny + N * H].reshape(N, H).copy()
    dc = r[ny + N * H:].reshape(N, H).copy()
    dx, dwi, dwh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(4 * H)
    for t in range(T - 1, -1, -1):
        i, f, g, o = gs[t]
        dh = dh + dys[t]
        tc = np.tanh(cs[t])
        cprev = cs[t - 1] if t else c0
        hprev = ys[t - 1] if t else h0
        dct = dc + dh * o * (1 - tc ** 2)
        dz = np.concatenate([dct * g * i * (1 - i), dct * cprev * f * (1 - f),
                             dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dx[t] = dz @ w_ih
        dwi += dz.T @ x[t]
        dwh += dz.T @ hprev
        db += dz.sum(0)
        dh = dz @ w_hh
        dc = dct * f
    return [dx, dh, dc, dwi, dwh, db, db.copy()]


def rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    act = np.tanh if nonlinearity == "tanh" else (lambda z: np.maximum(z, 0.0))
    h, ys = h0, []
    for t in range(x.shape[0]):
        h = act(x[t] @ w_ih.T + h @ w_hh.T + b_ih + b_hh)
        ys.append(h)
    ys = np.array(ys).reshape(x.shape[0], x.shape[1], w_hh.shape[1])
    return np.concatenate([ys.reshape(-1), ys[-1].reshape(-1)])


def rnn_grad(x, h0, w_ih, w_hh, b_ih, b_hh, r, nonlinearity="tanh"):
    """[dx, dh0, dw_ih, dw_hh, db_ih, db_hh] of sum(rnn(...) * r)."""
    T, N, _ = x.shape
    H = w_hh.shape[1]
    ys = rnn(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity)[:T * N * H].reshape(T, N, H)
    dys = r[:T * N * H].reshape(T, N, H)
    dh = r[T * N * H:].reshape(N, H).copy()
    dx, dwi, dwh, db = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(H)
    for t in range(T - 1, -1, -1):
        dh = dh + dys[t]
        dz = dh * ((1 - ys[t] ** 2) if nonlinearity == "tanh" else (ys[t] > 0))
        hprev = ys[t - 1] if t else h0
        dx[t] = dz @ w_ih
        dwi += dz.T @ x[t]
        dwh += dz.T @ hprev
        db += dz.sum(0)
        dh = dz @ w_hh
    return [dx, dh, dwi, dwh, db, db.copy()]
# ---- conv -------------------------------------------------------------------------------


def _conv_geom(x, w, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    kh, kw = w.shape[2], w.shape[3]
    oh = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return oh, ow


def _conv_taps(x, w, stride, padding, dilation):
    """(kh, kw, window slices of the padded input) for every kernel tap."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = _conv_geom(x, w, stride, padding, dilation)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            yield i, j, (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                         slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
           relu=False):
    """Direct definition: y[n, o] = b[o] + sum over the group's channels and kernel taps of
    w[o, c, i, j] * xpad[n, c, oh*s + i*d, ow*s + j*d]."""
    n, c = x.shape[:2]
    oc, cg = w.shape[:2]
    ocg = oc // groups
    oh, ow = _conv_geom(x, w, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((n, oc, oh, ow))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * ocg:(g + 1) * ocg]
        for i, j, (rs, cs) in _conv_taps(x, w, stride, padding, dilation):
            y[:, g * ocg:(g + 1) * ocg] += np.einsum("nchw,oc->nohw", xg[:, :, rs, cs],
                                                     wg[:, :, i, j])
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return np.maximum(y, 0) if relu else y


def conv2d_grad(x, w, b, g, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                relu=False):
    """[dx, dw, db] of sum(conv2d(...) * g): each tap's forward einsum transposed."""
    if relu:
        g = g * (conv2d(x, w, b, stride, padding, dilation, groups) > 0)
    cg, ocg = w.shape[1], w.shape[0] // groups
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for gr in range(groups):
        cs_, os_ = slice(gr * cg, (gr + 1) * cg), slice(gr * ocg, (gr + 1) * ocg)
        gg = g[:, os_]
        for i, j, (rs, cs) in _conv_taps(x, w, stride, padding, dilation):
            dxp[:, cs_, rs, cs] += np.einsum("nohw,oc->nchw", gg, w[os_, :, i, j])
            dw[os_, :, i, j] += np.einsum("nohw,nchw->oc", gg, xp[:, cs_, rs, cs])
    H, W = x.shape[2:]
    dx = dxp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]
    db = None if b is None else g.sum(axis=(0, 2, 3))
    return [dx, dw, db]


# ---- pool -------------------------------------------------------------------------------


def pool_out(n, k, s, p, d=1, ceil_mode=False):
    """PyTorch's pooling output size (ceil_mode drops a window starting in the right pad)."""
    span = n + 2 * p - d * (k - 1) - 1
    o = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _pool_windows(shape, k, s, p, d=(1, 1), ceil_mode=False):
    """(oh, ow, [(ih, iw) inside the input], padded window size h*w) per output position."""
    H, W = shape[2:]
    OH = pool_out(H, k[0], s[0], p[0], d[0], ceil_mode)
    OW = pool_out(W, k[1], s[1], p[1], d[1], ceil_mode)
    for oh in range(OH):
        for ow in range(OW):
            h0, w0 = oh * s[0] - p[0], ow * s[1] - p[1]
            cells = [(h0 + i * d[0], w0 + j * d[1]) for i in range(k[0]) for j in range(k[1])]
            inside = [(a, b) for a, b in cells if 0 <= a < H and 0 <= b < W]
            # PyTorch's avg divisor with count_include_pad: the window clipped at the padded
            # input's end (H + p), not at the input's.
            hp = min(h0 + k[0], H + p[0]) - h0
            wp = min(w0 + k[1], W + p[1]) - w0
            yield oh, ow, OH, OW, inside, hp * wp


def max_pool2d(x, k, s, p=(0, 0), d=(1, 1), ceil_mode=False):
    out = None
    for oh, ow, OH, OW, cells, _ in _pool_windows(x.shape, k, s, p, d, ceil_mode):
        if out is None:
            out = np.empty(x.shape[:2] + (OH, OW))
        out[:, :, oh, ow] = np.max(np.stack([x[:, :, a, b] for a, b in cells]), axis=0)
    return out


def max_pool2d_grad(x, g, k, s, p=(0, 0), d=(1, 1), ceil_mode=False):
    """dx: each output's gradient goes to the first maximum of its window (row-major)."""
    dx = np.zeros_like(x)
    n_idx, c_idx = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    for oh, ow, _, _, cells, _ in _pool_windows(x.shape, k, s, p, d, ceil_mode):
        vals = np.stack([x[:, :, a, b] for a, b in cells])
        first = np.argmax(vals, axis=0)
        rows = np.array([a for a, _ in cells])[first]
        cols = np.array([b for _, b in cells])[first]
        np.add.at(dx, (n_idx, c_idx, rows, cols), g[:, :, oh, ow])
    return [dx]


def avg_pool2d(x, k, s, p=(0, 0), ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    out = None
    for oh, ow, OH, OW, cells, padded in _pool_windows(x.shape, k, s, p, ceil_mode=ceil_mode):
        if out is None:
            out = np.empty(x.shape[:2] + (OH, OW))
        div = divisor_override or (padded if count_include_pad else len(cells))
        out[:, :, oh, ow] = sum(x[:, :, a, b] for a, b in cells) / div
    return out


def avg_pool2d_grad(x, g, k, s, p=(0, 0), ceil_mode=False, count_include_pad=True,
                    divisor_override=None):
    dx = np.zeros_like(x)
    for oh, ow, _, _, cells, padded in _pool_windows(x.shape, k, s, p, ceil_mode=ceil_mode):
        div = divisor_override or (padded if count_include_pad else len(cells))
        for a, b in cells:
            dx[:, :, a, b] += g[:, :, oh, ow] / div
    return [dx]


def var(x, dim=None, correction=1, keepdim=False, take_sqrt=False):
    """Variance (std with take_sqrt) over dim, dividing by max(n - correction, 0) (PyTorch)."""
    ax = _axes(x, dim)
    n = _count(x, dim)
    d = x - np.mean(x, axis=ax, keepdims=True) if n else x
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.sum(d * d, axis=ax, keepdims=keepdim) / max(n - correction, 0)
    return np.sqrt(v) if take_sqrt else v


def var_grad(x, g, dim=None, correction=1, keepdim=False, take_sqrt=False):
    """d/dx of sum(var(x) * g): 2 (x - mean) g / (n - c); for std (x - mean) g / ((n - c) std),
    0 where std is 0 (PyTorch's std backward)."""
    ax = _axes(x, dim)
    n = _count(x, dim)
    d = x - np.mean(x, axis=ax, keepdims=True)
    g = np.asarray(g) if keepdim else np.expand_dims(g, ax)
    denom = max(n - correction, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if not take_sqrt:
            return [2.0 * d * g / denom]
        s = var(x, dim, correction, True, True)
        return [np.where(s == 0, 0.0, d * g / (denom * s))]
