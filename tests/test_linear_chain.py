"""nn.Sequential's chain of Linear(+activation) layers as one op (_C.mlp_fwd / _C.mlp_bwd):
values and every gradient against a float64 NumPy reference, layer by layer."""
import contextlib

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import reference as R
from harness import BATCHES, assert_close, expect_error

ACTS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
        "softplus": nn.Softplus}


def _chain(rng, widths, acts, bias):
    """Sequential(Linear, [act], Linear, [act], ...) with acts[i] None for no activation."""
    mods = []
    for i, (fin, fout) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(fin, fout, bias=bias[i]))
        if acts[i] is not None:
            mods.append(ACTS[acts[i]]())
    return nn.Sequential(*mods)


def _reference(x, layers, acts, g):
    """(output, dx, [dw], [db]) in float64, applying reference.linear layer by layer."""
    ins = [x]
    for (w, b), act in zip(layers, acts):
        ins.append(R.linear(ins[-1], w, b, act or "none"))
    dws, dbs = [], []
    for (w, b), act, xin in reversed(list(zip(layers, acts, ins[:-1]))):
        g, dw, db = R.linear_grad(xin, w, b, g, act or "none")
        dws.insert(0, dw)
        dbs.insert(0, db)
    return ins[-1], g, dws, dbs


def _check_chain(rng, m, x, widths, acts, what):
    """m(x) as one LinearChain op, then backward from a random gradient: the output, dx and
    every dw/db against _reference."""
    batch = x.shape[0]
    xt = fastnn.tensor(x, requires_grad=True)
    y = m(xt)
    assert y.grad_fn.name == "LinearChain"
    g = rng.standard_normal((batch, widths[-1])).astype(np.float32)
    y.backward(fastnn.tensor(g))
    lins = [l for l in m if isinstance(l, nn.Linear)]
    layers = [(l.weight.detach().numpy().astype(np.float64),
               None if l.bias is None else l.bias.detach().numpy().astype(np.float64))
              for l in lins]
    ref, dx, dws, dbs = _reference(x.astype(np.float64), layers, acts, g.astype(np.float64))
    k = max(widths) * len(lins)
    assert_close(y.detach().numpy(), ref, k=k, c=64, what="output " + what)
    assert_close(xt.grad.numpy(), dx, k=k, c=64, what="dx " + what)
    for i, l in enumerate(lins):
        assert_close(l.weight.grad.numpy(), dws[i], k=k * max(batch, 1), c=64,
                     what=f"dw[{i}] " + what)
        if l.bias is not None:
            assert_close(l.bias.grad.numpy(), dbs[i], k=k * max(batch, 1), c=64,
                         what=f"db[{i}] " + what)


@pytest.mark.parametrize("batch", BATCHES)
def test_chain_matches_reference(rng, isa, batch):
    names = list(ACTS) + [None]
    for trial in range(4):
        depth = int(rng.integers(2, 5))
        widths = [int(w) for w in rng.choice([1, 2, 5, 8, 16, 33], depth + 1)]
        acts = [names[int(rng.integers(len(names)))] for _ in range(depth)]
        bias = [bool(rng.integers(2)) for _ in range(depth)]
        m = _chain(rng, widths, acts, bias)
        x = rng.standard_normal((batch, widths[0])).astype(np.float32)
        _check_chain(rng, m, x, widths, acts,
                     f"widths {widths}, acts {acts}, bias {bias}, batch {batch}")


def test_chain_respects_requires_grad(rng):
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 2, bias=False))
    m[0].weight.requires_grad_(False)
    m[2].bias.requires_grad_(False)
    x = fastnn.tensor(rng.standard_normal((5, 3)).astype(np.float32))  # no grad wanted
    m(x).sum().backward()
    assert m[0].weight.grad is None and m[2].bias.grad is None and x.grad is None
    assert m[0].bias.grad is not None and m[2].weight.grad is not None
    assert m[3].weight.grad is not None


def test_chain_equals_layer_by_layer(rng):
    """Same values and gradients as calling the layers one at a time (the unfused path)."""
    m = nn.Sequential(nn.Linear(6, 9), nn.Softplus(beta=0.5, threshold=3), nn.Linear(9, 4),
                      nn.ReLU(), nn.Linear(4, 3))
    x = rng.standard_normal((7, 6)).astype(np.float32)
    xa, xb = fastnn.tensor(x, requires_grad=True), fastnn.tensor(x, requires_grad=True)
    ya = m(xa)
    yb = xb
    for layer in m:
        yb = layer(yb)
    assert ya.grad_fn.name == "LinearChain" and yb.grad_fn.name != "LinearChain"
    assert_close(ya.detach().numpy(), yb.detach().numpy(), k=9, c=64, what="output")
    ya.sum().backward()
    grads_a = [xa.grad.numpy()] + [p.grad.numpy().copy() for p in m.parameters()]
    m.zero_grad()
    yb.sum().backward()
    grads_b = [xb.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for i, (a, b) in enumerate(zip(grads_a, grads_b)):
        assert_close(a, b, k=9 * 7, c=64, what=f"gradient {i}")


def test_chain_falls_back_for_other_inputs(rng):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x3 = fastnn.tensor(rng.standard_normal((2, 5, 3)).astype(np.float32))
    y = m(x3)  # 3-D input: the layers run one by one (linear handles leading dims)
    assert tuple(y.shape) == (2, 5, 2)
    ref = R.linear(R.linear(x3.numpy().astype(np.float64), m[0].weight.detach().numpy(),
                            m[0].bias.detach().numpy(), "relu"),
                   m[2].weight.detach().numpy(), m[2].bias.detach().numpy())
    assert_close(y.detach().numpy(), ref, k=4, c=64, what="3-D input")
    # a weight whose array is a strided view (reachable only through private state): the
    # chain takes C-contiguous parameters only, so the layers run one by one
    w0 = m[0].weight.detach().numpy()
    m[0].weight._data = np.asfortranarray(w0)
    x2 = fastnn.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    y = m(x2)
    assert y.grad_fn.name != "LinearChain"
    ref = R.linear(R.linear(x2.numpy().astype(np.float64), w0, m[0].bias.detach().numpy(),
                            "relu"), m[2].weight.detach().numpy(), m[2].bias.detach().numpy())
    assert_close(y.detach().numpy(), ref, k=4, c=64, what="strided weight")


def test_chain_bad_input():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2))
    expect_error(ValueError, "linear", m, fastnn.randn(2, 3), match="layer 1")
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    expect_error(ValueError, "linear", m, fastnn.randn(2, 5), match="layer 0")
    expect_error(TypeError, "linear", m, fastnn.tensor(np.ones((2, 3), np.int64)))


def test_mlp_kernels_bad_arguments():
    from fastnn import _C
    x = np.ones((2, 3), np.float32)
    w = np.ones((4, 3), np.float32)
    expect_error(ValueError, "linear", _C.mlp_fwd, x, [], [], [], [], [])
    expect_error(ValueError, "linear", _C.mlp_fwd, x, [w], [None, None], [0], [1.0], [20.0])
    expect_error(ValueError, "linear", _C.mlp_fwd, x, [w], [None], [9], [1.0], [20.0])
    expect_error(TypeError, "linear", _C.mlp_fwd, x, w, [None], [0], [1.0], [20.0])
    expect_error(ValueError, "linear", _C.mlp_fwd, x, [w], [np.ones(3, np.float32)], [0], [1.0],
                 [20.0])
    ys, zs = _C.mlp_fwd(x, [w], [None], [5], [1.0], [20.0])
    g = np.ones((2, 4), np.float32)
    expect_error(ValueError, "linear", _C.mlp_bwd, g, x, [w], [None], [5], [1.0], [20.0], ys,
                 [None], True, [True], [False])  # softplus needs its pre-activation
    expect_error(ValueError, "linear", _C.mlp_bwd, g, x, [w], [None], [5], [1.0], [20.0], ys,
                 zs, True, [True, True], [False])


def test_chain_kernels_with_spec_match_list_kernels(rng):
    """_C.mlp_chain_fwd / mlp_chain_bwd (prebuilt spec, state kept in C++) give exactly
    mlp_fwd / mlp_bwd's results, strided input and gradient included (copied)."""
    from fastnn import _C
    x = rng.standard_normal((5, 3)).astype(np.float32)
    w0, b0 = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    w1 = rng.standard_normal((2, 4)).astype(np.float32)
    acts, betas, ths = [5, 2], [0.5, 1.0], [3.0, 20.0]
    ys, zs = _C.mlp_fwd(x, [w0, w1], [b0, None], acts, betas, ths)
    spec = _C.mlp_spec(acts, betas, ths)
    xt = np.asfortranarray(x)  # strided: copied inside
    y, saved = _C.mlp_chain_fwd(xt, spec, (w0, b0, w1, None))
    np.testing.assert_array_equal(y, ys[-1])
    g = rng.standard_normal((2, 5)).astype(np.float32).T  # strided gradient
    dx, dws, dbs = _C.mlp_bwd(np.ascontiguousarray(g), x, [w0, w1], [b0, None], acts, betas,
                              ths, ys, zs, True, [True, True], [True, True])
    out = _C.mlp_chain_bwd(g, saved, (True, False, True, True, True, True))
    assert len(out) == 6 and out[1] is None and out[5] is None  # no bias in layer 1
    for a, b in zip(out, (dx, None, dws[0], dbs[0], dws[1], dbs[1])):
        if b is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, b)
    # a second backward from the same saved state (retain_graph), asking for less
    out = _C.mlp_chain_bwd(g, saved, (False, False, True, False, False, True))
    assert out[0] is None and out[3] is None and out[4] is None
    np.testing.assert_array_equal(out[2], dws[0])
    # the saved state keeps its arrays alive: the input may go away
    del xt, x
    import gc
    gc.collect()
    np.testing.assert_array_equal(_C.mlp_chain_bwd(g, saved, (True,) * 6)[0], dx)


def test_chain_kernels_with_spec_bad_arguments():
    from fastnn import _C
    x = np.ones((2, 3), np.float32)
    w = np.ones((4, 3), np.float32)
    spec = _C.mlp_spec([0], [1.0], [20.0])
    expect_error(ValueError, "linear", _C.mlp_spec, [], [], [])
    expect_error(ValueError, "linear", _C.mlp_spec, [9], [1.0], [20.0], match="activation")
    expect_error(ValueError, "linear", _C.mlp_spec, [0], [1.0, 2.0], [20.0])
    expect_error(TypeError, "linear", _C.mlp_spec, 0, [1.0], [20.0])
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, x, spec)
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, x, ([0], [1.0], [20.0]), (w, None),
                 match="spec")
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, x, spec, [w, None], match="tuple")
    expect_error(ValueError, "linear", _C.mlp_chain_fwd, x, spec, (w,), match="per layer")
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, x, spec, (w.astype(np.float64), None))
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, x.astype(np.int64), spec, (w, None))
    expect_error(TypeError, "linear", _C.mlp_chain_fwd, [[1.0, 2.0, 3.0]], spec, (w, None))
    expect_error(ValueError, "linear", _C.mlp_chain_fwd, np.ones((2, 5), np.float32), spec,
                 (w, None), match="layer 0")
    expect_error(ValueError, "linear", _C.mlp_chain_fwd, x, spec, (w, np.ones(3, np.float32)),
                 match="bias")
    y, saved = _C.mlp_chain_fwd(x, spec, (w, None))
    g = np.ones((2, 4), np.float32)
    expect_error(TypeError, "linear", _C.mlp_chain_bwd, g, spec, (True,) * 4, match="saved")
    expect_error(TypeError, "linear", _C.mlp_chain_bwd, g, saved, (True,) * 3, match="needs")
    expect_error(TypeError, "linear", _C.mlp_chain_bwd, g, saved)
    expect_error(ValueError, "linear", _C.mlp_chain_bwd, np.ones((2, 5), np.float32), saved,
                 (True,) * 4)
    expect_error(TypeError, "linear", _C.mlp_chain_bwd, g.astype(np.float64), saved, (True,) * 4)


def test_chain_retain_graph_and_second_backward(rng):
    m = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    x = fastnn.tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    y = m(x).sum()
    y.backward(retain_graph=True)
    g1 = [p.grad.numpy().copy() for p in m.parameters()] + [x.grad.numpy().copy()]
    y.backward()
    g2 = [p.grad.numpy() for p in m.parameters()] + [x.grad.numpy()]
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(b, 2 * a)  # the same gradient twice: a + a is 2a exactly
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


@pytest.mark.parametrize("batch", [37, 256, 257])
def test_chain_threaded_regions_match_reference(rng, isa, threads, batch):
    # A chain with batch <= 256 and at least 2^20 multiply-adds runs its forward in one
    # parallel region and its backward in another, each thread on its own column slices
    # (ops/dense.cpp, run_steps); here at batch 37 and 256, with the last layer (97 -> 10)
    # too narrow to split by columns (rows forward, dw's columns backward); batch 257 takes
    # the op-by-op path. Widths off the 16-float split unit, so thread boundaries fall
    # inside tiles.
    names = list(ACTS) + [None]
    widths = [200, 161, 150, 97, 10]
    acts = [names[int(rng.integers(len(names)))] for _ in range(len(widths) - 1)]
    m = _chain(rng, widths, acts, [True, False, True, True])
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    _check_chain(rng, m, x, widths, acts, f"acts {acts}, batch {batch}, {threads} threads")


@pytest.mark.parametrize("threads_n", [2, 3, 4])
def test_chain_narrow_layers_in_region(rng, threads_n):
    # Layers with fewer 16-float column units than threads (ops/dense.cpp, narrow()) split
    # rows in the forward and dw's columns in the backward, after a barrier that phase 1's dZ
    # must pass. 40 and 33 columns (3 units) are narrow at 4 threads, 10 and 7 at every
    # count. In the last two chains the first layer is narrow (33 at 4 threads, 10 always)
    # and x does not require grad, so its dw is the only work of its phase 2. More threads
    # than cores is fine for correctness.
    prev = fastnn.get_num_threads()
    fastnn.set_num_threads(threads_n)
    try:
        names = list(ACTS)
        for widths, batch, x_grad in (([300, 40, 200, 10], 64, True),
                                      ([700, 33, 10], 61, False),
                                      ([1000, 10, 150, 7], 200, False)):
            acts = [names[int(rng.integers(len(names)))] for _ in range(len(widths) - 1)]
            m = _chain(rng, widths, acts, [True] * (len(widths) - 1))
            x = rng.standard_normal((batch, widths[0])).astype(np.float32)
            what = f"widths {widths}, acts {acts}, {threads_n} threads"
            if x_grad:
                _check_chain(rng, m, x, widths, acts, what)
                continue
            y = m(fastnn.tensor(x))
            assert y.grad_fn.name == "LinearChain"
            g = rng.standard_normal((batch, widths[-1])).astype(np.float32)
            y.backward(fastnn.tensor(g))
            lins = [l for l in m if isinstance(l, nn.Linear)]
            layers = [(l.weight.detach().numpy().astype(np.float64),
                       l.bias.detach().numpy().astype(np.float64)) for l in lins]
            ref, _, dws, dbs = _reference(x.astype(np.float64), layers, acts,
                                          g.astype(np.float64))
            k = max(widths) * len(lins)
            assert_close(y.detach().numpy(), ref, k=k, c=64, what="output " + what)
            for i, l in enumerate(lins):
                assert_close(l.weight.grad.numpy(), dws[i], k=k * batch, c=64,
                             what=f"dw[{i}] " + what)
                assert_close(l.bias.grad.numpy(), dbs[i], k=k * batch, c=64,
                             what=f"db[{i}] " + what)
    finally:
        fastnn.set_num_threads(prev)


@pytest.mark.parametrize("threads_n", [2, 3])
def test_chain_dx_through_4k_strided_weight(rng, threads_n):
    # The first layer's dx = dZ·W with W (256, 1024): a 4 KiB row stride, so the small-shape
    # GEMM copies W's panels (gemm.cpp, pack_nn); at 3 threads each thread's columns of dx
    # (336, 336, 352) end inside a 32-column panel.
    prev = fastnn.get_num_threads()
    fastnn.set_num_threads(threads_n)
    try:
        widths, acts = [1024, 256, 10], ["relu", None]
        m = _chain(rng, widths, acts, [True, True])
        x = rng.standard_normal((50, widths[0])).astype(np.float32)
        _check_chain(rng, m, x, widths, acts, f"widths {widths}, {threads_n} threads")
    finally:
        fastnn.set_num_threads(prev)


@pytest.mark.parametrize("threads_n,widths", [(1, [800, 256, 10]), (2, [800, 256, 10]),
                                              (3, [1200, 300, 10])])
def test_chain_dx_through_transposed_dz(rng, threads_n, widths):
    # The first layer's dx = dZ·W (batch 50, K = 256 or 300) with >= 384 columns per thread:
    # on AVX-512 the small-shape GEMM transposes dZ into each thread's own copy (gemm.cpp) and
    # runs the tall contiguous-A tiles; the chain's threads each call the GEMM for their own
    # columns of dx (800, 400 + 400, 400 x 3).
    prev = fastnn.get_num_threads()
    fastnn.set_num_threads(threads_n)
    try:
        acts = ["relu", None]
        m = _chain(rng, widths, acts, [True, True])
        x = rng.standard_normal((50, widths[0])).astype(np.float32)
        _check_chain(rng, m, x, widths, acts, f"widths {widths}, {threads_n} threads")
    finally:
        fastnn.set_num_threads(prev)


# Balanced regions (core/parallel.h, parallel_run_balanced): the chain regions, the optimizer's
# per-tensor split and the x·Wᵀ small path split their work by per-thread weights that follow
# each thread's measured speed. Pinned uneven weights (_C._set_balance_weights) stand in for a
# slow core: every split boundary moves, and the results must not change.
UNEVEN = {2: [[3, 1], [1, 3], [1, 1.3]], 3: [[1, 2, 1], [5, 1, 2]]}


@contextlib.contextmanager
def _pool(threads_n):
    """threads_n pool threads for the block; then the previous count and learnt weights."""
    from fastnn import _C
    prev = fastnn.get_num_threads()
    fastnn.set_num_threads(threads_n)
    try:
        yield _C
    finally:
        _C._set_balance_weights([])
        fastnn.set_num_threads(prev)


@pytest.mark.parametrize("threads_n", [2, 3])
def test_balanced_split_covers_the_range(threads_n):
    with _pool(threads_n) as _C:
        for w in UNEVEN[threads_n] + [[]]:
            _C._set_balance_weights(w)
            got_w = _C._balance_weights()
            assert len(got_w) == threads_n and abs(sum(got_w) - 1) < 1e-12
            for n, unit in ((0, 16), (1, 16), (10, 16), (256, 16), (257, 16), (784, 16),
                            (1000, 1), (7, 1)):
                parts = _C._balanced_split_test(n, unit)
                assert parts[0][0] == 0 and parts[-1][1] == n, (w, n, unit, parts)
                for (lo, hi), (lo2, _) in zip(parts, parts[1:]):
                    assert lo <= hi == lo2, (w, n, unit, parts)
                for lo, hi in parts:  # whole units, except where clamped to n
                    assert lo in (n,) or lo % unit == 0, (w, n, unit, parts)
                    assert hi in (n,) or hi % unit == 0, (w, n, unit, parts)
                if w and n >= 100 * unit:  # the shares follow the weights, to a unit each
                    ws = np.array(w) / sum(w)
                    sizes = np.array([hi - lo for lo, hi in parts]) / n
                    assert np.all(np.abs(sizes - ws) <= 2 * unit / n), (w, n, parts)
        with pytest.raises(ValueError, match="one weight per thread"):
            _C._set_balance_weights([1.0] * (threads_n + 1))
        with pytest.raises(ValueError, match="positive"):
            _C._set_balance_weights([1.0] + [0.0] * (threads_n - 1))


@pytest.mark.parametrize("threads_n", [2, 3])
def test_chain_and_sgd_with_uneven_shares(rng, threads_n):
    # The chain's forward and backward regions skip barriers where a thread reads back only
    # what it wrote; with uneven shares every such slice still has to match. Widths off the
    # 16-float unit, a narrow last layer, and an SGD step (its per-tensor split) checked
    # against the update computed from the reference gradients.
    with _pool(threads_n) as _C:
        for w in UNEVEN[threads_n]:
            _C._set_balance_weights(w)
            widths, acts = [300, 161, 150, 10], ["relu", "tanh", None]
            m = _chain(rng, widths, acts, [True, True, True])
            x = rng.standard_normal((64, widths[0])).astype(np.float32)
            _check_chain(rng, m, x, widths, acts, f"weights {w}, {threads_n} threads")
            lins = [l for l in m if isinstance(l, nn.Linear)]
            before = [l.weight.detach().numpy().copy() for l in lins]
            grads = [l.weight.grad.numpy().copy() for l in lins]
            fastnn.optim.SGD(m.parameters(), lr=0.1).step()
            for l, w0, g in zip(lins, before, grads):
                np.testing.assert_allclose(l.weight.detach().numpy(), w0 - np.float32(0.1) * g,
                                           rtol=1e-6, atol=1e-6)
            # x·Wᵀ on the small path (fewer rows than columns), split by the same shares.
            a = rng.standard_normal((20, 300)).astype(np.float32)
            b = rng.standard_normal((700, 300)).astype(np.float32)
            assert_close(_C.gemm(a, b, False, True), a.astype(np.float64) @ b.T.astype(np.float64),
                         k=300, scale=np.sqrt(300) * 25, what=f"x·Wᵀ weights {w}")


def test_balance_weights_learn_and_reset():
    # Learnt weights stay within [0.5, 1.5] x an equal share and sum to 1; set_num_threads
    # makes them equal again.
    with _pool(2) as _C:
        m = _chain(np.random.default_rng(0), [400, 256, 10], ["relu", None], [True, True])
        x = fastnn.tensor(np.random.default_rng(1).standard_normal((64, 400)).astype(np.float32))
        for _ in range(30):
            m.zero_grad()
            m(x).sum().backward()
        w = _C._balance_weights()
        assert abs(sum(w) - 1) < 1e-12 and all(0.25 - 1e-12 <= v <= 0.75 + 1e-12 for v in w)
        fastnn.set_num_threads(2)
        assert _C._balance_weights() == [0.5, 0.5]
