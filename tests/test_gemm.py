"""The float32 GEMM kernel (_C.gemm / _C.bmm) on every ISA path: transposes, accumulation
(beta=1), edge tiles, blocking and threads, against float64 NumPy and against the generic path."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import _C
from harness import assert_close, expect_error

SIZES = [1, 2, 3, 7, 16, 17, 31, 33, 64, 65, 100]
# A spread of (m, n, k) over SIZES: every size appears in every position, paired with small
# and large partners (1, primes, around the 6/8/14/16/32 tile widths), plus k = 0.
SHAPES = sorted({(SIZES[i], SIZES[(3 * i + 4) % 11], SIZES[(7 * i + 2) % 11]) for i in range(11)}
                | {(1, 1, 1), (1, 100, 33), (100, 1, 65), (65, 33, 1), (17, 31, 0), (0, 5, 3)})
TRANS = [(False, False), (False, True), (True, False), (True, True)]


def _mx(a):
    return float(np.max(np.abs(a))) if a.size else 0.0


def gemm_scale(a, b, k):
    # NOTE (derivation): every output is a length-k sum of products bounded by
    # t = max|a|*max|b|. Partial sums of random-sign terms grow like sqrt(k)*t; each of the k
    # roundings adds up to eps*|partial sum|, and those errors add like a random walk:
    # about sqrt(k) * eps * sqrt(k) * t. assert_close allows rtol = c*eps*sqrt(k) and
    # atol = rtol*scale, so scale = sqrt(k) * t makes atol = c*eps*k*t.
    return math.sqrt(max(k, 1)) * _mx(a) * _mx(b)


def operands(rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


def reference(a, b, ta, tb):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if ta else a64) @ (b64.T if tb else b64)


def check_overwrite_and_accumulate(rng, a, b, ta, tb, what):
    """_C.gemm(a, b, ta, tb) against the float64 reference, then added onto a random C."""
    k = a.shape[0] if ta else a.shape[1]
    ref, scale = reference(a, b, ta, tb), gemm_scale(a, b, k)
    assert_close(_C.gemm(a, b, ta, tb), ref, k=k, scale=scale, what=what)
    c = np.full(ref.shape, np.nan, np.float32)  # an overwrite must not read what was there
    _C.gemm(a, b, ta, tb, out=c, accumulate=False)
    assert_close(c, ref, k=k, scale=scale, what=what + " over NaN")
    c0 = rng.standard_normal(ref.shape).astype(np.float32)
    c = c0.copy()
    _C.gemm(a, b, ta, tb, out=c, accumulate=True)
    assert_close(c, c0 + ref, k=k + 1, scale=scale + _mx(c0), what=what + " accumulate")


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_shapes(m, n, k, ta, tb, rng, isa):
    a, b = operands(rng, m, n, k, ta, tb)
    c = _C.gemm(a, b, ta, tb)
    assert c.dtype == np.float32 and c.shape == (m, n)
    assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k), what="gemm")


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 33, 17), (65, 31, 100), (17, 64, 0)])
def test_gemm_accumulate(m, n, k, ta, tb, rng, isa):
    a, b = operands(rng, m, n, k, ta, tb)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    got = _C.gemm(a, b, ta, tb, out=c, accumulate=True)
    assert got is c  # written in place
    # The existing C adds one more term of size max|c0| to each sum.
    assert_close(c, c0 + reference(a, b, ta, tb), k=k + 1,
                 scale=gemm_scale(a, b, k) + _mx(c0), what="gemm accumulate")
    # beta = 0 into an existing buffer ignores (even NaN) garbage there.
    c[...] = np.nan
    _C.gemm(a, b, ta, tb, out=c, accumulate=False)
    assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k), what="gemm out")


@pytest.mark.parametrize("ta,tb", TRANS)
def test_gemm_large_blocked_threaded(ta, tb, rng, isa, threads):
    # k = 300 > KC (256) exercises the accumulation across K blocks; m, n span several MC/NR
    # blocks with ragged edges; the size is above the threading threshold.
    m, n, k = 257, 129, 300
    a, b = operands(rng, m, n, k, ta, tb)
    c = _C.gemm(a, b, ta, tb)
    assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k), what="gemm large")


@pytest.mark.parametrize("m,n,k", [(64, 256, 784), (3, 257, 513), (64, 33, 4000)])
def test_gemm_small_path_transposed_b_threaded(m, n, k, rng, isa, threads):
    # The unpacked-A path with op(B) = Bᵀ: each thread packs the B panels it uses (a ragged
    # last panel included), so the split must not leave a panel unpacked or packed twice.
    a, b = operands(rng, m, n, k, False, True)
    c = _C.gemm(a, b, False, True)
    assert_close(c, reference(a, b, False, True), k=k, scale=gemm_scale(a, b, k),
                 what="gemm small NT")


@pytest.mark.parametrize("tb", [False, True])
def test_gemm_small_path_transposed_a_tile_heights(tb, rng, isa, threads):
    # op(A) = Aᵀ (dW = dYᵀ·X) on the unpacked-A path: its rows are contiguous, and the AVX-512
    # kernel splits M into near-equal tiles of 7-14 rows, each height a separate instantiation.
    # Every M from 1 to 30 (15 is the one that makes a 7-row tile) and a few larger ones, with
    # column counts around the 16/32 masks and K of 1, an odd size and a batch.
    for m in [*range(1, 31), 127, 128, 129, 256]:
        n, k = int(rng.choice([1, 16, 17, 32, 45, 70])), int(rng.choice([1, 5, 64]))
        a, b = operands(rng, m, n, k, True, tb)
        check_overwrite_and_accumulate(rng, a, b, True, tb, f"gemm small TN {m}x{n}x{k}")


# C = A·Bᵀ with fewer rows than columns is computed as Cᵀ = B·Aᵀ (A's rows packed, B read in
# place, each tile transposed on its way to C): M around the 8/16 (AVX2) and 16/32 (AVX-512)
# halves of a transposed tile and across panels, N around the 6-column (AVX2) and 8- and
# 12-column (AVX-512: 12 a tile while 12 columns are left, then 8) tiles, K of 1 and primes.
SMALL_T_SHAPES = [(1, 2, 1), (1, 9, 5), (2, 3, 7), (7, 8, 13), (16, 17, 3), (17, 40, 31),
                  (31, 33, 64), (32, 47, 1), (33, 100, 17), (63, 64, 101), (64, 256, 784),
                  (65, 129, 200), (100, 257, 33), (8, 13, 9), (9, 14, 300), (15, 20, 40),
                  (24, 31, 1), (48, 300, 600), (5, 12, 33), (20, 23, 50), (40, 28, 17),
                  (3, 24, 2)]


@pytest.mark.parametrize("m,n,k", SMALL_T_SHAPES)
def test_gemm_small_transposed_path(m, n, k, rng, isa, threads):
    a, b = operands(rng, m, n, k, False, True)
    ref = reference(a, b, False, True)
    scale = gemm_scale(a, b, k)
    assert_close(_C.gemm(a, b, False, True), ref, k=k, scale=scale, what="gemm small_t")
    # accumulate onto C, then overwrite a NaN-filled C
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    _C.gemm(a, b, False, True, out=c, accumulate=True)
    assert_close(c, c0 + ref, k=k + 1, scale=scale + _mx(c0), what="gemm small_t accumulate")
    c[...] = np.nan
    _C.gemm(a, b, False, True, out=c, accumulate=False)
    assert_close(c, ref, k=k, scale=scale, what="gemm small_t out")
    # The fused epilogue on the transposed store: bias per column, z, ReLU in the kernel and
    # tanh after it (linear's forward is this product).
    bias = rng.standard_normal(n).astype(np.float32)
    pre = ref + bias
    for act, f in ((1, lambda v: np.maximum(v, 0)), (3, np.tanh)):
        y, _ = _C.linear_fwd(a, b, bias, act, 1.0, 20.0)
        # tanh is 1-Lipschitz: the pre-activation's bound carries over (+1 for its own error).
        assert_close(y, f(pre), k=k + 2, scale=scale + _mx(bias), what=f"linear small_t {act}")
    y, z = _C.linear_fwd(a, b, bias, 4, 1.0, 20.0)  # gelu stores the pre-activation
    assert_close(z, pre, k=k + 1, scale=scale + _mx(bias), what="linear small_t z")


def test_gemm_small_transposed_strided_rows(rng, isa):
    # Operands that are row slices of larger arrays are copied by _C.gemm's caller, but the
    # kernel reads B rows ldb apart: a B whose K is not a multiple of 16 checks the ragged
    # row ends, and a (1, N) A the single-row panel.
    for m, n, k in [(1, 300, 1), (3, 64, 15), (5, 24, 1000)]:
        a, b = operands(rng, m, n, k, False, True)
        assert_close(_C.gemm(a, b, False, True), reference(a, b, False, True), k=k,
                     scale=gemm_scale(a, b, k), what=f"gemm small_t {m}x{n}x{k}")


def test_gemm_wide_and_tall_split(rng, threads):
    # One dimension much larger than the other: threads split M for tall, N for wide.
    for m, n, k in [(700, 5, 200), (5, 3100, 70)]:
        a, b = operands(rng, m, n, k, False, False)
        assert_close(_C.gemm(a, b), reference(a, b, False, False), k=k,
                     scale=gemm_scale(a, b, k), what=f"gemm {m}x{n}x{k}")


@pytest.mark.parametrize("m,n,k", [(3, 5, 7), (33, 65, 17), (100, 31, 300)])
def test_isa_matches_generic(m, n, k, rng, isa):
    a, b = operands(rng, m, n, k, True, False)
    got = _C.gemm(a, b, True, False)
    _C.set_isa("generic")  # the fixture restores the previous path afterwards
    want = _C.gemm(a, b, True, False)
    # Both sides carry their own rounding error of the size gemm_scale bounds.
    assert_close(got, want, k=k, scale=2 * gemm_scale(a, b, k), c=32, what=f"{isa} vs generic")


def test_isa_kernel_names(isa):
    assert _C.gemm_kernel_name().endswith("_" + isa)


@pytest.mark.parametrize("ta,tb", TRANS)
def test_bmm(ta, tb, rng, isa):
    B, m, n, k = 5, 7, 17, 33
    a = rng.standard_normal((B, k, m) if ta else (B, m, k)).astype(np.float32)
    b = rng.standard_normal((B, n, k) if tb else (B, k, n)).astype(np.float32)
    want = np.stack([reference(a[i], b[i], ta, tb) for i in range(B)])
    assert_close(_C.bmm(a, b, ta, tb), want, k=k, scale=gemm_scale(a, b, k), what="bmm")
    # A batch of 1 broadcasts against the other operand's batch.
    want1 = np.stack([reference(a[0], b[i], ta, tb) for i in range(B)])
    assert_close(_C.bmm(a[:1], b, ta, tb), want1, k=k, scale=gemm_scale(a, b, k), what="bmm bcast")
    assert _C.bmm(a[:0], b[:1], ta, tb).shape == (0, m, n)


def test_bmm_many_small_threaded(rng, threads):
    a = rng.standard_normal((64, 9, 13)).astype(np.float32)
    b = rng.standard_normal((64, 13, 11)).astype(np.float32)
    assert_close(_C.bmm(a, b), np.matmul(a.astype(np.float64), b), k=13,
                 scale=gemm_scale(a, b, 13), what="bmm small")


@pytest.mark.parametrize("ta,tb,m,n,k", [(True, True, 4, 200, 30), (True, False, 200, 3, 30),
                                         (False, False, 150, 2, 40), (True, False, 2, 90, 64)])
def test_bmm_many_skinny_threaded(ta, tb, m, n, k, rng, isa, threads):
    # Threads split the batch, each matrix a skinny product (gemv_path) on its thread, whose
    # copies of strided vectors and of C's columns must be that thread's own.
    a, b = operands(rng, m, n, k, ta, tb)
    a = np.stack([a + i for i in range(64)]).astype(np.float32)
    b = np.stack([b - i for i in range(64)]).astype(np.float32)
    want = np.stack([reference(a[i], b[i], ta, tb) for i in range(64)])
    assert_close(_C.bmm(a, b, ta, tb), want, k=k, scale=gemm_scale(a, b, k),
                 what=f"bmm skinny {m}x{n}x{k}")


def test_special_values(isa):
    # inf and NaN propagate like in the float64 product (no zero-skipping shortcuts).
    a = np.array([[1.0, np.inf], [np.nan, 1.0], [1.0, 2.0]], np.float32)
    b = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    c = _C.gemm(a, b)
    np.testing.assert_array_equal(np.isnan(c), [[False, False], [True, True], [False, False]])
    assert np.isinf(c[0]).all()
    np.testing.assert_array_equal(c[2], [7.0, 10.0])


def test_gemm_bad_input():
    f = np.ones((3, 4), np.float32)
    expect_error(TypeError, "matmul", _C.gemm, np.ones((3, 4), np.int64), f.T.copy())
    expect_error(TypeError, "matmul", _C.gemm, f, np.ones((4, 2)))  # float64
    expect_error(ValueError, "matmul", _C.gemm, f, f, match="inner dimensions")
    expect_error(ValueError, "matmul", _C.gemm, f, f.T)  # non-contiguous view
    expect_error(ValueError, "matmul", _C.gemm, np.ones(3, np.float32), f, match="2-D")
    expect_error(ValueError, "matmul", _C.gemm, f, f, False, True, out=np.ones((3, 4), np.float32),
                 match="out")
    expect_error(ValueError, "matmul", _C.bmm, np.ones((2, 3, 4), np.float32),
                 np.ones((3, 4, 5), np.float32), match="batch")
    expect_error(ValueError, "matmul", _C.bmm, np.ones((2, 3, 4), np.float32),
                 np.ones((2, 3, 5), np.float32), match="inner dimensions")
    expect_error(ValueError, "matmul", _C.bmm, f, f.T.copy(), match="3-D")


def test_gemm_blocks_override(rng):
    derived = _C.gemm_blocks(), _C.gemm_b_in_l2()
    mr, nr = _C.gemm_tile()
    a, b = operands(rng, 300, 170, 50, False, False)
    try:
        for order in (False, True):
            _C.set_gemm_blocks((100, 37, 70, order))
            assert _C.gemm_blocks() == (100 // mr * mr, 37, 70 // nr * nr)
            assert _C.gemm_b_in_l2() is order
            # ... and they are what the driver runs with (300 rows, 170 columns: the packed
            # path).
            _C.gemm_reset_last_blocks()
            c = _C.gemm(a, b)
            assert _C.gemm_last_blocks() == (100 // mr * mr, 37, 70 // nr * nr, order)
            assert_close(c, reference(a, b, False, False), k=50, scale=gemm_scale(a, b, 50),
                         what=f"gemm with forced blocks, b_in_l2={order}")
        # A block under one tile is one tile.
        _C.set_gemm_blocks((1, 1, 1, True))
        assert _C.gemm_blocks() == (mr, 1, nr)
    finally:
        _C.set_gemm_blocks(None)
    assert (_C.gemm_blocks(), _C.gemm_b_in_l2()) == derived
    _C.gemm_reset_last_blocks()
    _C.gemm(a, b)
    assert _C.gemm_last_blocks() == derived[0] + (derived[1],)
    expect_error(ValueError, "set_gemm_blocks", _C.set_gemm_blocks, (0, 8, 8, False))
    expect_error(ValueError, "set_gemm_blocks", _C.set_gemm_blocks, (2 ** 63 - 1, 8, 8, True))
    expect_error(ValueError, "set_gemm_blocks", _C.set_gemm_blocks, (8, 8, 2 ** 70, True))
    expect_error(ValueError, "set_gemm_blocks", _C.set_gemm_blocks, (8, -(2 ** 70), 8, True))
    expect_error(ValueError, "set_gemm_blocks", _C.set_gemm_blocks, (8, 2 ** 25, 8, True))
    expect_error(TypeError, "set_gemm_blocks", _C.set_gemm_blocks, (8, 8, 8))
    expect_error(TypeError, "set_gemm_blocks", _C.set_gemm_blocks, (8, 8.0, 8, True))
    expect_error(TypeError, "set_gemm_blocks", _C.set_gemm_blocks, (8, 8, 8, None))
    expect_error(TypeError, "set_gemm_blocks", _C.set_gemm_blocks, [8, 8, 8, True])
    assert (_C.gemm_blocks(), _C.gemm_b_in_l2()) == derived


def test_gemm_blocks_env():
    # FASTNN_GEMM_BLOCKS="mc,kc,nc[,order]" (a tuning aid), in a fresh process: the order
    # field picks the loop order, without it the derived order stays; absurd sizes are clamped.
    code = ("from fastnn import _C; import numpy as np; _C.set_isa('generic'); "
            "a = np.ones((300, 60), np.float32); c = _C.gemm(a, a.T.copy()); "
            "assert (c == 60).all(), c; print(_C.gemm_blocks(), _C.gemm_b_in_l2())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    mr, nr = 4, 8  # the generic kernel's tile
    for value, want in [("100,37,70,1", f"({100 // mr * mr}, 37, {70 // nr * nr}) True"),
                        ("100,37,70,0", f"({100 // mr * mr}, 37, {70 // nr * nr}) False"),
                        ("100,37,70", f"({100 // mr * mr}, 37, {70 // nr * nr}) False"),
                        (f"{2 ** 62},{2 ** 62},{2 ** 62},1", f"({2 ** 24}, {2 ** 24}, {2 ** 24}) True")]:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(env, FASTNN_GEMM_BLOCKS=value))
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want, (value, out.stdout)


def test_gemm_loop_order_choice():
    # B block in L2 only for the 32-column AVX-512 kernel on an Intel CPU (gemm_blocks). The
    # vendor comes from /proc/cpuinfo; where there is none, only the other ISAs are checked.
    vendor = None
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            vendor = next((ln.split(":")[1].strip() for ln in f if ln.startswith("vendor_id")),
                          None)
    prev = _C.get_isa()
    try:
        for isa in _C.supported_isas():
            _C.set_isa(isa)
            if isa == "avx512" and vendor is None:
                continue
            expect = isa == "avx512" and vendor == "GenuineIntel"
            if not _C.cache_sizes()["detected"]:
                expect = False
            assert _C.gemm_b_in_l2() is expect, (isa, vendor)
    finally:
        _C.set_isa(prev)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, True), (True, False)])
def test_gemm_crosses_every_cache_block(ta, tb, rng, isa, threads, gemm_order):
    # The blocks come from the cache sizes (mc, kc, nc = _C.gemm_blocks()), or the fixture's
    # small forced ones in either loop order: cross each one with a ragged remainder, with C
    # split by rows between threads (B packed once, shared) and by column panels (m too small
    # to split, or m * threads <= n: each thread packs its own panels, at offsets that move
    # from one K or N block to the next as the block's depth and panel count change). Rows
    # above 256 keep a product off the small-shape paths (checked through gemm_last_blocks);
    # with small forced blocks that is several A blocks, of uneven heights. (More than 3
    # column panels too: with fewer, an untransposed A within the kernel's K limit takes the
    # small-shape path at any height.)
    mc, kc, nc = _C.gemm_blocks()
    nr = _C.gemm_tile()[1]
    order = _C.gemm_b_in_l2()
    tall = mc + 19 if mc + 19 > 256 else 9 * mc + 19
    shapes = [(tall, 3 * nr + 13, kc + 37), (3, nc + 21, 9), (2 * tall + 5, 3 * nr + 1, 2 * kc + 1),
              (260, 1024, kc + 37), (260, nc + 300, kc // 2 + 3)]
    if gemm_order != "derived":  # (several blocks of every kind; too slow with the derived)
        shapes.append((tall + 1, 2 * nc + 7, 2 * kc + 5))
    for m, n, k in shapes:
        a, b = operands(rng, m, n, k, ta, tb)
        _C.gemm_reset_last_blocks()
        c = _C.gemm(a, b, ta, tb)
        assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k),
                     what=f"gemm {m}x{n}x{k} {isa}")
        if m > 256:
            assert _C.gemm_last_blocks() == (mc, kc, nc, order), (m, n, k)


def check_whole_or_sliced_b(rng, a, b, ta, what, tb=False):
    """check_overwrite_and_accumulate for a whole B; for a column slice of a wider row-major B
    (which _C.gemm does not take) the product through _C.mm, which reads the slice and a
    transposed A's view in place."""
    if b.flags.c_contiguous:
        check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
        return
    k = a.shape[0] if ta else a.shape[1]
    assert_close(_C.mm(a.T if ta else a, b.T if tb else b), reference(a, b, ta, tb), k=k,
                 scale=gemm_scale(a, b, k), what=what)


def _small_path_packs_b(m, k, ta, ld):
    """gemm.cpp's pack_nn: whether the small-shape path copies a row-major B (row stride ld
    floats) into panels instead of reading it in place."""
    nr = _C.gemm_tile()[1]
    return ld % 256 == 0 and ((ld % 1024 == 0 and m >= 48 and k >= 256) or
                              (k >= 128 and m >= (128 if ta or nr < 32 else 48) and (ta or k < 256)))


@pytest.mark.parametrize("ta,m,n,k,ld", [
    (False, 48, 1024, 256, 1024), (False, 50, 1024, 300, 1024), (False, 64, 2048, 257, 2048),
    (False, 48, 256, 128, 256), (False, 64, 768, 129, 768), (False, 130, 512, 200, 512),
    (False, 64, 512, 256, 512), (False, 64, 200, 128, 256), (False, 40, 256, 128, 256),
    (True, 128, 256, 128, 256), (True, 129, 768, 255, 768), (True, 256, 1024, 128, 1024),
    (True, 200, 230, 140, 512), (True, 64, 512, 128, 512), (True, 128, 512, 127, 512),
    (False, 64, 384, 128, 384), (False, 47, 256, 128, 256), (False, 127, 256, 128, 256),
    (True, 127, 256, 128, 256), (False, 64, 256, 255, 256)])
def test_gemm_small_path_aliased_b(ta, m, n, k, ld, rng, isa, threads):
    # A row-major B whose row stride is a multiple of 1 KiB (256, 512, 768, 1024, 2048 floats,
    # also as a view of a wider array: n < ld) falls into few L1 sets, and the small-shape path
    # copies it panel by panel once m and k are large enough (gemm.cpp, pack_nn); either way
    # the product is checked, overwriting and accumulating, and the path taken is the rule's.
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, ld)).astype(np.float32)[:, :n]
    what = f"gemm {'TN' if ta else 'NN'} {m}x{n}x{k} ld={ld}"
    _C.gemm_reset_last_blocks()
    check_whole_or_sliced_b(rng, a, b, ta, what)
    path = _C.gemm_last_small_b()
    if path is None:  # no small path for these shapes (generic; AVX2's TN, and NN past K 256)
        assert isa != "avx512", what
        return
    assert path == ("packed" if _small_path_packs_b(m, k, ta, ld) else "in place"), what


def _deep_product_leaves_small_path(m, n, k, ta, tb, ld):
    """gemm.cpp's use_small_path for the B-in-L2 order: deep products with a row-major B (24
    to 256 rows, 256 columns or more) run on the packed driver when the small path would read
    B in place with rows s = 1, 2 or 4 KiB apart and K >= max(512, 3/4 L2 / s), or when K >=
    1024 and there are 128 rows or rows 2 KiB apart."""
    if not _C.gemm_b_in_l2() or tb or not 24 <= m <= 256 or n < 256:
        return False
    if ld % 256 == 0 and not _small_path_packs_b(m, k, ta, ld):
        stride = 4096 if ld % 1024 == 0 else 2048 if ld % 512 == 0 else 1024
        if k >= max(512, _C.cache_sizes()["l2"] // stride * 3 // 4):
            return True
    return k >= 1024 and (m >= 128 or ld % 512 == 0)


@pytest.mark.parametrize("ta,tb,m,n,k,ld", [
    (False, False, 24, 512, 768, 512), (False, False, 23, 512, 768, 512),
    (False, False, 32, 512, 767, 512), (True, False, 40, 1024, 768, 1024),
    (False, False, 32, 256, 1536, 256), (False, False, 32, 256, 1535, 256),
    (True, False, 96, 768, 1536, 768), (True, False, 128, 768, 1023, 768),
    (False, False, 128, 300, 1024, 300), (False, False, 127, 300, 1024, 300),
    (False, False, 128, 300, 1023, 300), (False, False, 64, 1024, 1024, 1024),
    (False, False, 64, 1024, 1023, 1024), (False, False, 30, 500, 800, 512),
    (False, False, 30, 255, 800, 512), (True, False, 128, 256, 1024, 300),
    (True, False, 128, 255, 1024, 300), (False, True, 256, 256, 1024, 1024),
    (False, False, 40, 1024, 512, 1024), (True, False, 40, 1024, 511, 1024),
    (False, False, 64, 300, 1536, 300), (True, False, 128, 512, 768, 512),
    (True, False, 96, 512, 768, 512), (False, False, 256, 300, 1024, 300),
    (False, False, 256, 512, 768, 512)])
def test_gemm_deep_products_leave_the_small_path(ta, tb, m, n, k, ld, rng, isa, threads,
                                                 gemm_order):
    # In the B-in-L2 order (Intel, AVX-512; or forced) a deep product runs on the packed driver
    # instead of the small-shape path (gemm.cpp, use_small_path): each side of every limit, a
    # column slice of a wider B (n < ld), TN and NT; the products are checked either way, and
    # on AVX-512 the path taken is the rule's.
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, ld)).astype(np.float32)
    b = b if tb else b[:, :n]
    what = f"gemm {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k} ld={ld} {gemm_order}"
    _C.gemm_reset_last_blocks()
    check_whole_or_sliced_b(rng, a, b, ta, what, tb)
    if isa != "avx512":
        return
    packed_driver = _C.gemm_last_blocks() is not None
    assert packed_driver == _deep_product_leaves_small_path(m, n, k, ta, tb, ld), what
    assert packed_driver != (_C.gemm_last_small_b() is not None), what
    if not tb and n == ld:
        # A pre-packed B (an RNN's weights) stays on the small path, whose panels it is.
        _C.gemm_reset_last_blocks()
        c, _ = _C.gemm_packed_test(a, b, ta, False, prepack=True)
        assert_close(c, reference(a, b, ta, False), k=k, scale=gemm_scale(a, b, k),
                     what=what + " pre-packed")
        assert (_C.gemm_last_blocks() is None) == (m <= 256), what + " pre-packed"


@pytest.mark.parametrize("ta,tb,m,n,k", [
    (False, False, 8, 100, 1025), (False, False, 37, 300, 1536), (True, False, 100, 33, 2049),
    (True, False, 37, 100, 1024), (False, True, 100, 33, 2049), (False, True, 37, 33, 1537),
    (False, False, 100, 100, 3001), (False, False, 64, 1000, 2048)])
def test_gemm_small_path_deep_k_chunks(ta, tb, m, n, k, rng, isa, threads, gemm_order):
    # On the small-shape path a product deeper than 1024 runs over K in chunks of at most 512
    # in the B-in-L2 order (forced by the fixture on any machine), each chunk adding onto C and
    # the epilogue (bias, the pre-activation z, the activation) applied with the last one only:
    # B read in place (A as it is, or its transposed copy: 64x1000), packed from a transposed
    # B, and pre-packed; overwriting and accumulating; K on both sides of 1024 and off the
    # chunk size.
    a, b = operands(rng, m, n, k, ta, tb)
    what = f"gemm {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k} {gemm_order}"
    _C.gemm_reset_last_blocks()
    check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
    assert isa != "avx512" or _C.gemm_last_blocks() is None, what  # the small path ran
    bias = rng.standard_normal(n).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    for prepack in (False, True):
        for act, fn in [(1, lambda v: np.maximum(v, 0)), (3, np.tanh)]:
            pre = reference(a, b, ta, tb) + bias + c0
            scale = gemm_scale(a, b, k) + _mx(bias) + _mx(c0)
            c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0, bias=bias, act=act, want_z=True,
                                       prepack=prepack)
            tag = f"{what} prepack={prepack} act={act}"
            assert_close(z, pre, k=k + 2, scale=scale, what="z " + tag)
            assert_close(c, fn(pre), k=k + 3, scale=scale, what=tag)


# Products with at most 4 rows or columns run as 1-4 matrix-vector products (gemm.cpp,
# gemv_path): dot products of R's rows (4 at a time on AVX-512, 2 on AVX2; two registers each
# for one vector; the last k % W floats one by one; not below K = 16) or sums of R's rows
# (64-row chunks, y's columns in blocks of registers; the last n % W as one overlapping
# register summed apart, or one by one when n < W). Counts of 1-4
# and 5 (the tiled paths) on either side, lengths around the row steps and the 8/16-float
# registers, K of 1 and across a register pair and a chunk, and sizes over the threading
# threshold (a share of y each, in 16-float units).
GEMV_LENGTHS = [1, 3, 4, 5, 8, 16, 17, 31, 33, 100, 1000]
GEMV_DEPTHS = [1, 2, 7, 15, 16, 17, 32, 33, 65, 100, 784]


@pytest.mark.parametrize("ta,tb", TRANS)
def test_gemm_matrix_vector_products(ta, tb, rng, isa, threads):
    shapes = [(v, n, GEMV_DEPTHS[(3 * i + v) % len(GEMV_DEPTHS)])
              for v in (1, 2, 3, 4, 5) for i, n in enumerate(GEMV_LENGTHS)]
    shapes += [(m, n, k) for (n, m, k) in shapes]
    shapes += [(1, 1, 1), (1, 1, 1000), (2, 3, 40), (4, 4, 16), (3, 1, 15), (1, 700, 1300),
               (900, 2, 1100), (4, 520, 300), (700, 3, 129)]
    for m, n, k in shapes:
        a, b = operands(rng, m, n, k, ta, tb)
        what = f"gemm {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k}"
        check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
    # The epilogue after the product (bias, the pre-activation z, ReLU / sigmoid), into C and
    # z with a row stride past their width (a C column 4 floats apart), accumulating or not.
    # (A pre-packed B: test_gemm_prepacked_matrix_vector_products.)
    for m, n, k in [(1, 37, 50), (3, 16, 3), (45, 1, 70), (1, 1, 20), (17, 2, 1), (4, 33, 70),
                    (50, 3, 20)]:
        a, b = operands(rng, m, n, k, ta, tb)
        bias = rng.standard_normal(n).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        for act, fn in [(1, lambda v: np.maximum(v, 0)), (2, lambda v: 1 / (1 + np.exp(-v)))]:
            for acc in (False, True):
                pre = reference(a, b, ta, tb) + bias + (c0 if acc else 0)
                scale = gemm_scale(a, b, k) + _mx(bias) + (_mx(c0) if acc else 0)
                c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0 if acc else None, bias=bias,
                                           act=act, want_z=True, prepack=False, ldc_pad=3)
                tag = f"{m}x{n}x{k} {'T' if ta else 'N'}{'T' if tb else 'N'} act={act} acc={acc}"
                assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag
                assert_close(z[:, :n], pre, k=k + 2, scale=scale, what="z " + tag)
                assert_close(c[:, :n], fn(pre), k=k + 3, scale=scale, what=tag)


# With a pre-packed B (an RNN's recurrence) and at most 4 rows, C's rows are sums of B's rows
# read from its NR-wide panels (gemm.cpp, gemv_panels_path): blocks of two registers, a block
# past the last column summed apart and only its first columns stored, one or two vectors with
# two sets of sums over alternate rows (K odd leaves one row), threads splitting the panels.
# Counts of 1-4 (5: the tiled path) against N around the registers and panels of every ISA
# (8/16/32 floats), K of 1 and odd, A transposed (its columns copied first), the pack reused.
@pytest.mark.parametrize("ta,tb", TRANS)
def test_gemm_prepacked_matrix_vector_products(ta, tb, rng, isa, threads):
    lengths = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 257]
    depths = [1, 2, 3, 16, 17, 100, 784]
    shapes = [(v, n, depths[(5 * i + v) % len(depths)])
              for v in (1, 2, 3, 4, 5) for i, n in enumerate(lengths)]
    shapes += [(1, 2000, 300), (2, 700, 257), (3, 1000, 129), (4, 520, 300), (1, 64, 2048)]
    for m, n, k in shapes:
        a, b = operands(rng, m, n, k, ta, tb)
        what = f"pre-packed {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k}"
        ref, scale = reference(a, b, ta, tb), gemm_scale(a, b, k)
        # (Each rep first fills C and its pad with 1e30, which an overwrite must not read; A's
        # rows 3 floats longer than its width, the gap NaN.)
        _C.gemm_reset_last_blocks()
        c, _ = _C.gemm_packed_test(a, b, ta, tb, reps=2, ldc_pad=5, lda_pad=3)
        # Neither the small-shape path nor the packed driver ran (both do at 5 rows).
        took_panels = _C.gemm_last_small_b() is None and _C.gemm_last_blocks() is None
        assert took_panels == (m <= 4), what
        assert np.all(c[:, n:] == 1e30), what + " pad"
        assert_close(c[:, :n], ref, k=k, scale=scale, what=what)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for act, fn in [(0, lambda v: v), (1, lambda v: np.maximum(v, 0)), (3, np.tanh)]:
            pre = ref + bias + c0
            tag = f"{what} accumulate act={act}"
            c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0, bias=bias, act=act, want_z=True,
                                       ldc_pad=3)
            assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag + " pad"
            assert_close(z[:, :n], pre, k=k + 2, scale=scale + _mx(bias) + _mx(c0),
                         what="z " + tag)
            assert_close(c[:, :n], fn(pre), k=k + 3, scale=scale + _mx(bias) + _mx(c0),
                         what=tag)


# K = 1 (C = a·bᵀ, a Linear layer's weight gradient at batch 1) with 32 columns or more, or
# accumulating, runs row by row (gemm.cpp, outer_path): C's rows a_i times b in whole registers,
# 4 at a time, then the last n % W floats one by one; b copied first when it is a column of B
# (B transposed, its rows ldb apart); threads split the rows (one row: the columns), each
# applying the epilogue to its own. Columns around the registers (8/16) and the 32-column
# limit, operands that are columns of wider arrays, C wider than N, and sizes over the
# threading threshold.
@pytest.mark.parametrize("ta,tb", TRANS)
def test_gemm_rank_one_products(ta, tb, rng, isa, threads):
    shapes = [(1, 1), (1, 32), (3, 2), (5, 8), (7, 16), (2, 17), (9, 31), (4, 32), (6, 33),
              (33, 47), (100, 64), (17, 100), (3, 1000), (600, 300), (2000, 33), (1000, 5),
              (1, 150001)]
    for m, n in shapes:
        a, b = operands(rng, m, n, 1, ta, tb)
        what = f"rank-1 {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x1"
        check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
        # Neither the small-shape path nor the packed driver ran, overwriting 32 columns or more
        # or accumulating (the gemv path does not set them either, but takes at most 4 rows or
        # columns: with K = 1 and accumulating, 4 rows or a TN product with at most 4 columns).
        for acc in (False, True):
            _C.gemm_reset_last_blocks()
            _C.gemm(a, b, ta, tb, out=np.zeros((m, n), np.float32), accumulate=acc)
            took_rank_one = _C.gemm_last_small_b() is None and _C.gemm_last_blocks() is None
            assert took_rank_one or not (acc or n >= 32), f"{what} accumulate={acc}"
        # a's and b's elements ld floats apart: columns of wider arrays (copied or strided).
        aw = np.zeros((a.shape[0], a.shape[1] + 6), np.float32)
        bw = np.zeros((b.shape[0], b.shape[1] + 4), np.float32)
        aw[:, 2:2 + a.shape[1]], bw[:, 3:3 + b.shape[1]] = a, b
        av, bv = aw[:, 2:2 + a.shape[1]], bw[:, 3:3 + b.shape[1]]
        assert_close(_C.mm(av.T if ta else av, bv.T if tb else bv), reference(a, b, ta, tb), k=1,
                     scale=gemm_scale(a, b, 1), what=what + " strided")
        bias = rng.standard_normal(n).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        for act, fn in [(0, lambda v: v), (1, lambda v: np.maximum(v, 0)), (3, np.tanh)]:
            for acc in (False, True):
                pre = reference(a, b, ta, tb) + bias + (c0 if acc else 0)
                scale = gemm_scale(a, b, 1) + _mx(bias) + (_mx(c0) if acc else 0)
                c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0 if acc else None, bias=bias,
                                           act=act, want_z=True, prepack=False, ldc_pad=3)
                tag = f"{what} act={act} acc={acc}"
                assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag + " pad"
                assert_close(z[:, :n], pre, k=3, scale=scale, what="z " + tag)
                assert_close(c[:, :n], fn(pre), k=4, scale=scale, what=tag)
        # The epilogue without a bias or without z (each thread's share of it on its own).
        for use_bias, want_z in ((False, True), (True, False), (False, False)):
            pre = reference(a, b, ta, tb) + (bias if use_bias else 0)
            scale = gemm_scale(a, b, 1) + (_mx(bias) if use_bias else 0)
            c, z = _C.gemm_packed_test(a, b, ta, tb, bias=bias if use_bias else None, act=3,
                                       want_z=want_z, prepack=False, ldc_pad=3)
            tag = f"{what} tanh bias={use_bias} z={want_z}"
            assert np.all(c[:, n:] == 1e30), tag + " pad"
            assert_close(c[:, :n], np.tanh(pre), k=4, scale=scale, what=tag)
            if want_z:
                assert_close(z[:, :n], pre, k=3, scale=scale, what="z " + tag)


@pytest.mark.parametrize("ta,tb,m,n,k", [
    (False, True, 512, 10, 784), (False, False, 1024, 8, 64), (True, False, 300, 24, 120),
    (True, True, 300, 3, 400), (True, False, 64, 10, 1024), (True, False, 40, 10, 700),
    (False, True, 300, 25, 100), (False, False, 200, 10, 784), (False, True, 1000, 1, 300)])
def test_gemm_narrow_products_as_their_transpose(ta, tb, m, n, k, rng, isa, threads):
    # A product with few columns (n <= 3/4 of the kernel's panel) and many rows (more than 256,
    # or any A transposed) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ and transposed into C (gemm.cpp,
    # gemm_driver), then the epilogue: each layout, the column limit, overwriting and
    # accumulating, bias, the pre-activation z and the activations after the kernel.
    a, b = operands(rng, m, n, k, ta, tb)
    what = f"gemm {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k}"
    check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
    bias = rng.standard_normal(n).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    for act, fn in [(0, lambda v: v), (1, lambda v: np.maximum(v, 0)),
                    (2, lambda v: 1 / (1 + np.exp(-v)))]:
        for acc in (False, True):
            pre = reference(a, b, ta, tb) + bias + (c0 if acc else 0)
            scale = gemm_scale(a, b, k) + _mx(bias) + (_mx(c0) if acc else 0)
            c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0 if acc else None, bias=bias, act=act,
                                       want_z=True, prepack=False)
            tag = f"{what} act={act} acc={acc}"
            assert_close(z, pre, k=k + 2, scale=scale, what="z " + tag)
            assert_close(c, fn(pre), k=k + 3, scale=scale, what=tag)
    # Linear's forward (x·Wᵀ with bias and ReLU fused) on the same shapes.
    if not ta and tb:
        y, _ = _C.linear_fwd(a, b, bias, 1, 1.0, 20.0)
        assert_close(y, np.maximum(reference(a, b, False, True) + bias, 0), k=k + 2,
                     scale=gemm_scale(a, b, k) + _mx(bias), what="linear " + what)


def _tall_product_on_small_path(isa, ta, m, n, k):
    """Whether gemm.cpp's use_small_path takes a product with more than 256 rows and at most
    3 column panels (and no narrow-product rule applies): A as it is, K within the kernel's
    limit; or any tiny one."""
    if isa == "generic":  # (no small-shape kernel)
        return False
    nr = _C.gemm_tile()[1]
    if m * n * k <= 64 * 64 * 64:
        return True
    if ta or n > 3 * nr:
        return False
    return k <= 256 if isa == "avx2" else k * nr * 4 <= _C.cache_sizes()["l2"] // 4


@pytest.mark.parametrize("ta,tb,m,n,k", [
    (False, False, 257, 96, 300), (False, True, 2048, 32, 64), (False, False, 513, 33, 1100),
    (False, True, 300, 25, 3), (False, False, 700, 97, 50), (True, False, 400, 40, 200),
    (True, True, 300, 64, 70), (False, True, 1000, 48, 256), (False, False, 290, 64, 4097),
    (False, True, 272, 49, 129), (False, False, 4100, 30, 9), (False, False, 368, 40, 200),
    (False, True, 600, 40, 1100), (False, True, 2048, 96, 300)])
def test_gemm_tall_products_with_few_panels(ta, tb, m, n, k, rng, isa, threads):
    # More than 256 rows, at most 3 column panels (n <= 3 NR) and A as it is: the small-shape
    # path, each thread's share of the rows (16-row units) in blocks of at most 256 rows
    # (gemm.cpp, gemm_driver). Each side of the column and row limits, a transposed A (the
    # packed driver), K past the kernel's limit, K chunks (1100), overwriting and
    # accumulating, a pre-packed B, the epilogue (bias, the pre-activation z at each block's
    # rows, activations in and after the kernel), C and z with a row stride past their width,
    # A with a row stride past K; the shares even, moved by uneven weights, and on 3 threads
    # (up to 368 rows, 23 units: fewer than a balanced region needs, an even split).
    a, b = operands(rng, m, n, k, ta, tb)
    small = _tall_product_on_small_path(isa, ta, m, n, k)
    bias = rng.standard_normal(n).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    splits = [(threads, [])] + ([(2, [1, 3]), (3, [])] if threads > 1 else [])
    for nt, w in splits:
        _C.set_num_threads(nt)
        _C._set_balance_weights(w)
        try:
            what = f"gemm {'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k} T={nt} w={w}"
            _C.gemm_reset_last_blocks()
            check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
            assert (_C.gemm_last_blocks() is None) == small, what
            if not ta:  # A as a column slice of a wider array, read in place by _C.mm
                wide = np.zeros((m, k + 7), np.float32)
                wide[:, :k] = a
                assert_close(_C.mm(wide[:, :k], b.T if tb else b), reference(a, b, False, tb),
                             k=k, scale=gemm_scale(a, b, k), what=what + " lda > k")
            if tb and not ta:  # B as a row slice of a wider array (packed from a stride past K)
                wide_b = np.zeros((n, k + 3), np.float32)
                wide_b[:, :k] = b
                assert_close(_C.mm(a, wide_b[:, :k].T), reference(a, b, False, True), k=k,
                             scale=gemm_scale(a, b, k), what=what + " ldb > k")
            for prepack, pad in [(False, 0), (True, 0), (False, 5), (True, 17)]:
                for act, fn in [(1, lambda v: np.maximum(v, 0)), (3, np.tanh)]:
                    pre = reference(a, b, ta, tb) + bias + c0
                    scale = gemm_scale(a, b, k) + _mx(bias) + _mx(c0)
                    _C.gemm_reset_last_blocks()
                    c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0, bias=bias, act=act,
                                               want_z=True, prepack=prepack, ldc_pad=pad)
                    tag = f"{what} prepack={prepack} act={act} ldc=n+{pad}"
                    assert (_C.gemm_last_blocks() is None) == small, tag
                    assert c.shape == z.shape == (m, n + pad), tag
                    assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag
                    assert_close(z[:, :n], pre, k=k + 2, scale=scale, what="z " + tag)
                    assert_close(c[:, :n], fn(pre), k=k + 3, scale=scale, what=tag)
        finally:
            _C._set_balance_weights([])
            _C.set_num_threads(threads)


@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("n", [16, 48, 80, 15, 17])
def test_gemm_sixteen_column_panels(n, tb, rng, isa, threads):
    # A last panel of exactly 16 columns with A's rows strided (A as it is; K > 1) runs in
    # 16-row tiles on AVX-512 (small_tile_half16), rows 8-15 read at 8 rows' stride from rows
    # 0-7, and any rows left over in the 8-row tiles: heights on each side of 16 and 32, a B
    # read in place (NN, row stride n), packed (NT with m >= n; fewer rows take the C = A·Bᵀ
    # path) and pre-packed, more than 256 rows (row blocks; 16 columns there are a narrow
    # product), overwriting and accumulating, and the epilogue into C and z with a row stride
    # past their width. 15 and 17 columns keep the 8-row tiles (masked panels).
    for m, k in [(16, 9), (17, 7), (23, 300), (24, 64), (31, 5), (32, 130), (40, 257),
                 (255, 33), (300, 96)]:
        a, b = operands(rng, m, n, k, False, tb)
        what = f"gemm N{'T' if tb else 'N'} {m}x{n}x{k}"
        check_overwrite_and_accumulate(rng, a, b, False, tb, what)
        bias = rng.standard_normal(n).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        pre = reference(a, b, False, tb) + bias + c0
        scale = gemm_scale(a, b, k) + _mx(bias) + _mx(c0)
        for prepack in (False, True):
            c, z = _C.gemm_packed_test(a, b, False, tb, c=c0, bias=bias, act=1, want_z=True,
                                       prepack=prepack, ldc_pad=3)
            tag = f"{what} prepack={prepack}"
            assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag
            assert_close(z[:, :n], pre, k=k + 2, scale=scale, what="z " + tag)
            assert_close(c[:, :n], np.maximum(pre, 0), k=k + 3, scale=scale, what=tag)


@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("n", [33, 40, 47, 48, 49, 80, 100, 113])
def test_gemm_last_columns_in_one_pass(n, tb, rng, isa, threads):
    # With A's rows read in place (A as it is), the last 33-48 columns of a range (a 32-column
    # panel and 1-16 of the next) run in one pass of 8-row tiles x 3 registers on AVX-512
    # (small_tile3; the driver packs a transposed B's last two panels together for it): n
    # with such a tail (33-48, 80 = 32 + 48, 100 = 64 + 36) and without (49, 113: 17 past a
    # panel), heights around 8 (row edges re-read the last row), K of 2 and past 256, B in
    # place (NN), packed (NT with m >= n; fewer rows take the C = A·Bᵀ path, and one row the
    # matrix-vector path) and pre-packed (gemm_packed_test), more than 256 rows (row blocks,
    # up to 3 column panels: n <= 96), overwriting (C full of NaN) and accumulating, and the
    # epilogue (bias, z, ReLU in the kernel, tanh after it) into C and z with a row stride
    # past their width; on 1-3 threads (2 threads split 80 columns as 64 + 16 or 32 + 48).
    for m, k in [(1, 5), (7, 64), (8, 2), (9, 300), (23, 33), (64, 257), (300, 40)]:
        a, b = operands(rng, m, n, k, False, tb)
        what = f"gemm N{'T' if tb else 'N'} {m}x{n}x{k}"
        for nt in sorted({threads, 3}):
            _C.set_num_threads(nt)
            try:
                check_overwrite_and_accumulate(rng, a, b, False, tb, f"{what} T={nt}")
            finally:
                _C.set_num_threads(threads)
        bias = rng.standard_normal(n).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        pre = reference(a, b, False, tb) + bias + c0
        scale = gemm_scale(a, b, k) + _mx(bias) + _mx(c0)
        for prepack in (False, True):
            for act, fn in [(1, lambda v: np.maximum(v, 0)), (3, np.tanh)]:
                c, z = _C.gemm_packed_test(a, b, False, tb, c=c0, bias=bias, act=act,
                                           want_z=True, prepack=prepack, ldc_pad=5)
                tag = f"{what} prepack={prepack} act={act}"
                assert np.all(c[:, n:] == 1e30) and np.all(z[:, n:] == 1e30), tag
                assert_close(z[:, :n], pre, k=k + 2, scale=scale, what="z " + tag)
                assert_close(c[:, :n], fn(pre), k=k + 3, scale=scale, what=tag)
            c, _ = _C.gemm_packed_test(a, b, False, tb, bias=bias, act=1, prepack=prepack)
            assert_close(c, np.maximum(pre - c0, 0), k=k + 2, scale=scale,
                         what=f"{what} prepack={prepack} overwrite")


@pytest.mark.parametrize("c,oc,h,wd,stride", [(2500, 300, 7, 7, 2), (600, 400, 5, 5, 1),
                                               (200, 260, 5, 81, 2)])
def test_gemm_narrow_product_into_a_strided_c(c, oc, h, wd, stride, rng, isa):
    # A convolution with few output pixels (3x3 here) and many channels runs its GEMM as a
    # narrow product written into C with a row stride larger than its width (the narrow path
    # transposes into C row by row at that stride, and the bias lands there too). With 2x40
    # outputs and 1800 inputs per pixel, one output row (40 columns) per GEMM: a tall product
    # with few panels (260 rows), on the small-shape path in row blocks at that stride.
    from fastnn._functions.conv import conv2d
    import fastnn
    x = rng.standard_normal((1, c, h, wd)).astype(np.float32)
    w = (rng.standard_normal((oc, c, 3, 3)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(oc).astype(np.float32)
    y = conv2d(fastnn.tensor(x), fastnn.tensor(w), fastnn.tensor(bias), stride=stride).numpy()
    win = np.lib.stride_tricks.sliding_window_view(x[0].astype(np.float64), (3, 3), axis=(1, 2))
    win = win[:, ::stride, ::stride]
    ref = np.einsum("cijkl,ockl->oij", win, w.astype(np.float64)) + bias[:, None, None]
    assert_close(y[0], ref, k=9 * c + 1, scale=math.sqrt(9 * c) * _mx(x) * _mx(w) + _mx(bias),
                 what=f"conv2d {c}->{oc} {h}x{wd} stride {stride} {isa}")


@pytest.mark.parametrize("m,n,k", [(32, 384, 256), (33, 400, 257), (47, 784, 300),
                                   (64, 784, 256), (100, 785, 271), (256, 800, 256)])
def test_gemm_small_path_transposed_row_major_a(m, n, k, rng, isa, threads, gemm_order):
    # On the small-shape path a row-major A is transposed into a per-thread copy (AVX-512,
    # gemm.cpp: m >= 32, k >= 256 and >= 384 columns per thread) and read by the tall tiles
    # of a contiguous A: m and k off the 16x16 transpose blocks, column counts that leave a
    # ragged last panel, and (at 2 threads) each thread's own copy; in the B-in-L2 order, one
    # row tile at a time (its copy in L1) over all the columns. Then with the epilogue (bias,
    # z, the in-kernel ReLU or another activation applied after the kernel) on the same path,
    # overwriting and accumulating.
    a, b = operands(rng, m, n, k, False, False)
    check_overwrite_and_accumulate(rng, a, b, False, False, f"gemm row-major A {m}x{n}x{k}")
    bias = rng.standard_normal(n).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    for act, fn in [(1, lambda v: np.maximum(v, 0)), (2, lambda v: 1 / (1 + np.exp(-v))),
                    (3, np.tanh)]:
        acc = act != 2
        pre = reference(a, b, False, False) + bias + (c0 if acc else 0)
        scale = gemm_scale(a, b, k) + _mx(bias) + (_mx(c0) if acc else 0)
        c, z = _C.gemm_packed_test(a, b, c=c0 if acc else None, bias=bias, act=act,
                                   want_z=True, prepack=False)
        assert_close(z, pre, k=k + 2, scale=scale, what=f"z {m}x{n}x{k}")
        assert_close(c, fn(pre), k=k + 3, scale=scale, what=f"act {act} {m}x{n}x{k}")


def test_gemm_packed_short_row_tiles(rng, isa, threads, gemm_order):
    # Above the small-shape path (m > 256) the threads split the rows evenly, so each one's
    # last tile can be short, and the AVX-512 kernel runs a short tile at its own height
    # (4, 6, ..., 12 rows of arithmetic): m over every remainder mod 14 (and mod 6, 4), with
    # ragged columns, accumulation and the fused bias + ReLU of linear. (n and k large enough
    # that two threads do split the rows: over 2^20 multiply-adds.)
    for m in range(257, 285):
        n, k = int(rng.choice([97, 128, 141])), int(rng.choice([40, 65]))
        ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
        a, b = operands(rng, m, n, k, ta, tb)
        ref, scale = reference(a, b, ta, tb), gemm_scale(a, b, k)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = c0.copy()
        _C.gemm(a, b, ta, tb, out=c, accumulate=True)
        assert_close(c, c0 + ref, k=k + 1, scale=scale + _mx(c0),
                     what=f"gemm packed {m}x{n}x{k} ta={ta} tb={tb}")
        w = rng.standard_normal((n, k)).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        y, _ = _C.linear_fwd(x, w, bias, 1, 1.0, 20.0)
        pre = x.astype(np.float64) @ w.astype(np.float64).T + bias
        assert_close(y, np.maximum(pre, 0), k=k + 2, scale=gemm_scale(x, w, k) + _mx(bias),
                     what=f"linear packed relu {m}x{n}x{k}")


@pytest.mark.parametrize("k", [1, 15, 16, 17, 33, 48])
def test_gemm_packed_a_column_tails(k, rng, isa):
    # A row-major A taller than the small-shape path (> 256 rows) is packed 16 columns at a
    # time on AVX-512 (a register transpose): k around 16 checks the vector part, the scalar
    # tail and the masked store of a panel's last column; 300 rows leave a ragged last panel.
    # (n = 900 keeps even k = 1 above the small-shape path's 64^3 multiply-adds.)
    a, b = operands(rng, 300, 900, k, False, False)
    assert_close(_C.gemm(a, b), reference(a, b, False, False), k=k, scale=gemm_scale(a, b, k),
                 what=f"gemm 300x900x{k}")


def test_gemm_blocks_from_caches():
    cs = _C.cache_sizes()
    assert cs["l1d"] >= 4096 and cs["l2"] >= cs["l1d"] and cs["l3"] >= 0
    mc, kc, nc = _C.gemm_blocks()
    assert mc > 0 and kc > 0 and nc > 0
    mr, nr = _C.gemm_tile()
    assert mc % mr == 0 and nc % nr == 0
    if cs["detected"] and _C.gemm_b_in_l2():
        # B block in L2: an A micro-panel (mr x kc floats) fits in L1d, the packed B block
        # (kc x nc) in half of L2 and the A block (mc x kc) in a quarter of L3 (kc >= 128 and
        # nc >= nr, mc >= mr however small the caches): derived from the caches.
        assert mr * kc * 4 <= max(cs["l1d"], 128 * mr * 4)
        assert kc * nc * 4 <= max(cs["l2"] // 2, kc * nr * 4)
        assert mc * kc * 4 <= max(cs["l3"] // 4, kc * mr * 4)
    elif cs["detected"]:
        # The packed A block must fit in half of L2 and the B micro-panel (kc x nr floats) in
        # an eighth (kc is at least 128): the sizes were derived from the caches, not
        # hard-wired.
        assert mc * kc * 4 <= cs["l2"] // 2 and kc * nr * 4 <= max(cs["l2"] // 8, 128 * nr * 4)


def test_peak_probe(isa):
    one = _C.peak_gflops(1)
    # Any x86-64 core does at least a few GFLOP/s; the 1e5 cap catches a unit error (flop/s).
    assert 1.0 < one < 1e5
    two = _C.peak_gflops(2)
    assert two > 0.0
    expect_error(ValueError, "peak_gflops", _C.peak_gflops, 0)


def test_peak_probe_isa_order():
    # The widest path must measure faster than the generic one (probe picks the active ISA).
    isas = _C.supported_isas()
    if len(isas) < 2:
        pytest.skip("only the generic path on this CPU")
    prev = _C.get_isa()
    try:
        _C.set_isa("generic")
        g = _C.peak_gflops(1)
        _C.set_isa(isas[-1])
        w = _C.peak_gflops(1)
    finally:
        _C.set_isa(prev)
    # NOTE: 8- or 16-wide FMAs vs 4-wide mul+add: >= 2x even on a loaded machine.
    assert w > 1.5 * g


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (16, 16, 16), (7, 33, 17), (64, 64, 64), (65, 3, 100),
                                   (17, 64, 0), (0, 4, 3)])
def test_mm_fast_path(m, n, k, rng, isa):
    # _C.mm: the low-overhead 2-D entry (NumPy-allocated output, small-shape kernel).
    a, b = operands(rng, m, n, k, False, False)
    c = _C.mm(a, b)
    assert c.dtype == np.float32 and c.shape == (m, n) and c.flags.c_contiguous
    assert_close(c, reference(a, b, False, False), k=k, scale=gemm_scale(a, b, k), what="mm")


def test_mm_views_and_errors(rng):
    a = rng.standard_normal((8, 12)).astype(np.float32)
    b = rng.standard_normal((12, 6)).astype(np.float32)
    # Strided views are copied, not rejected (matmul accepts them).
    assert_close(_C.mm(a[:, ::2], b[::2]), reference(a[:, ::2], b[::2], False, False), k=6,
                 scale=gemm_scale(a, b, 6), what="mm views")
    expect_error(ValueError, "matmul", _C.mm, a, a, match="inner dimensions")
    expect_error(TypeError, "matmul", _C.mm, a.astype(np.float64), b)
    expect_error(TypeError, "matmul", _C.mm, a, [[1.0]])
    expect_error(ValueError, "matmul", _C.mm, a[0], b, match="2-D")
    # mm is a raw CPython function: a wrong argument count reaches the general route, which
    # rejects it like any pybind11 function; big-endian float32 is not "plain" either.
    with pytest.raises(TypeError):
        _C.mm(a)
    with pytest.raises(TypeError):
        _C.mm(a, b, b)
    expect_error(TypeError, "matmul", _C.mm, a, b.astype(">f4"))
    # A product large enough to release the GIL, and an empty one.
    big_a = rng.standard_normal((70, 90)).astype(np.float32)
    big_b = rng.standard_normal((90, 40)).astype(np.float32)
    assert_close(_C.mm(big_a, big_b), reference(big_a, big_b, False, False), k=90,
                 scale=gemm_scale(big_a, big_b, 90), what="mm GIL released")
    e = _C.mm(np.zeros((0, 5), np.float32), np.zeros((5, 3), np.float32))
    assert e.shape == (0, 3) and e.dtype == np.float32
    z = _C.mm(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32))
    assert z.shape == (2, 3) and not z.any()


# ---- pre-packed B (gemm_pack_b_f32 + gemm_f32_packed, through _C.gemm_packed_test) ----------

PACKED_SHAPES = [(1, 1, 1), (1, 33, 7), (7, 1, 65), (3, 17, 0), (0, 5, 3), (32, 100, 64),
                 (31, 65, 33), (65, 31, 100), (14, 32, 17), (15, 33, 2)]


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", PACKED_SHAPES)
def test_gemm_packed_shapes(m, n, k, ta, tb, rng, isa):
    a, b = operands(rng, m, n, k, ta, tb)
    c, z = _C.gemm_packed_test(a, b, ta, tb, reps=2)  # the second use reads the same pack
    assert c.dtype == np.float32 and c.shape == (m, n) and z is None
    assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k), what="packed")


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 33, 17), (32, 65, 100), (17, 64, 0)])
def test_gemm_packed_accumulate_epilogue(m, n, k, ta, tb, rng, isa):
    a, b = operands(rng, m, n, k, ta, tb)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    pre = c0 + reference(a, b, ta, tb) + bias
    scale = gemm_scale(a, b, k) + _mx(c0) + _mx(bias)
    # accumulate, no epilogue
    c, _ = _C.gemm_packed_test(a, b, ta, tb, c=c0)
    assert_close(c, c0 + reference(a, b, ta, tb), k=k + 1, scale=gemm_scale(a, b, k) + _mx(c0),
                 what="packed accumulate")
    # accumulate + bias + ReLU (in the kernel) with the pre-activation stored
    c, z = _C.gemm_packed_test(a, b, ta, tb, c=c0, bias=bias, act=1, want_z=True)
    assert_close(z, pre, k=k + 2, scale=scale, what="packed z")
    assert_close(c, np.maximum(pre, 0), k=k + 2, scale=scale, what="packed relu")
    # overwrite + bias + tanh (applied by the driver after the kernel)
    c, _ = _C.gemm_packed_test(a, b, ta, tb, bias=bias, act=3)
    # tanh is 1-Lipschitz, so the pre-activation's error bound carries over (+1 for tanh's own).
    assert_close(c, np.tanh(pre - c0), k=k + 2, scale=scale, what="packed tanh")


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, True)])
def test_gemm_packed_blocked_threaded(ta, tb, rng, isa, threads, gemm_order):
    # The blocked driver on a pre-packed B: K blocks (partial sums over several kc), rows split
    # between threads (m > mc), column panels split (short m) and more columns than one nc.
    mc, kc, nc = _C.gemm_blocks()
    for m, n, k in [(mc + 19, 45, kc + 37), (32, 300, 2 * kc + 1), (300, nc + 21, 9)]:
        a, b = operands(rng, m, n, k, ta, tb)
        c, _ = _C.gemm_packed_test(a, b, ta, tb)
        assert_close(c, reference(a, b, ta, tb), k=k, scale=gemm_scale(a, b, k),
                     what=f"packed {m}x{n}x{k} {isa}")


def test_gemm_packed_bad_input():
    f = np.ones((3, 4), np.float32)
    expect_error(ValueError, "gemm_packed_test", _C.gemm_packed_test, f, f, match="inner")
    expect_error(ValueError, "gemm_packed_test", _C.gemm_packed_test, f, f.T.copy(),
                 c=np.ones((2, 2), np.float32))
    expect_error(TypeError, "gemm_packed_test", _C.gemm_packed_test, f.astype(np.float64),
                 f.T.copy())


# ---- reads stop at the operand's last float (a PROT_NONE page right after it) ----------------
@pytest.fixture
def guarded_arrays():
    """guarded(rows, cols, ld, values): a (rows, cols) float32 view with row stride ld (gaps NaN)
    whose last float ends at a page that any read faults on, so a masked load or copy that
    reads past an operand's end crashes the test instead of passing unnoticed."""
    import ctypes
    import mmap
    if not sys.platform.startswith("linux"):
        pytest.skip("needs mmap/mprotect through the C library (Linux)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page, maps = mmap.PAGESIZE, []

    def guarded(rows, cols, ld, values):
        n = (rows - 1) * ld + cols
        pages = (n * 4 + page - 1) // page + 1
        addr = libc.mmap(None, pages * page, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value)
        maps.append((addr, pages * page))
        guard = addr + (pages - 1) * page
        assert libc.mprotect(guard, page, 0) == 0
        flat = np.ctypeslib.as_array((ctypes.c_float * n).from_address(guard - n * 4))
        flat[:] = np.nan
        view = np.lib.stride_tricks.as_strided(flat, shape=(rows, cols), strides=(ld * 4, 4))
        view[...] = values
        return view

    yield guarded
    for addr, size in maps:
        libc.munmap(addr, size)


def test_gemm_packing_reads_stop_at_the_operand_end(guarded_arrays, rng, isa, threads,
                                                    gemm_order):
    # Packing copies rows of a row-major B (NR-wide panels) and of a transposed A (MR-wide)
    # with masked vector loads on the ragged last panel: N and M around the panel widths
    # (32, 16, 8; 14, 6, 4), contiguous and with a longer row stride, on the packed path (over
    # 256 rows), the small path's copy of a 1024-float-strided B, and a pre-packed B; and A's
    # rows read in place by the small kernel's tiles.
    def check(c, a, b, what):
        k = a.shape[1]
        assert_close(c, a.astype(np.float64) @ b.astype(np.float64), k=k,
                     scale=gemm_scale(a, b, k), what=what)

    for n in (1, 15, 16, 17, 31, 33):
        for ld in (n, n + 5):
            a = rng.standard_normal((300, 40)).astype(np.float32)
            b = guarded_arrays(40, n, ld, rng.standard_normal((40, n)))
            check(_C.mm(a, b), a, b, f"NN n={n} ld={ld}")
    for m in (266, 267, 279, 281):
        for ld in (m, m + 3):
            at = guarded_arrays(30, m, ld, rng.standard_normal((30, m)))
            b = rng.standard_normal((30, 40)).astype(np.float32)
            check(_C.mm(at.T, b), at.T, b, f"TN m={m} ld={ld}")
    for n in (17, 1000):
        a = rng.standard_normal((64, 256)).astype(np.float32)
        b = guarded_arrays(256, n, 1024, rng.standard_normal((256, n)))
        check(_C.mm(a, b), a, b, f"NN 1024-strided b n={n}")
    # The small path reading B in place, full 32-column panels up to B's last float (n a
    # multiple of 32 and not), the per-tile copy of A and the transposed one; and C ending at
    # the guard, accumulated onto (full tiles read C unmasked).
    for m, n in [(32, 384), (64, 800), (64, 785), (48, 49)]:
        a = rng.standard_normal((m, 256)).astype(np.float32)
        for ld in (n, n + 3):
            b = guarded_arrays(256, n, ld, rng.standard_normal((256, n)))
            check(_C.mm(a, b), a, b, f"NN small path {m}x{n}x256 ld={ld}")
        b = rng.standard_normal((256, n)).astype(np.float32)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = guarded_arrays(m, n, n, c0)
        _C.gemm(a, b, out=c, accumulate=True)
        assert_close(c, c0 + reference(a, b, False, False), k=257,
                     scale=gemm_scale(a, b, 256) + _mx(c0), what=f"C at the guard {m}x{n}")
    for n in (17, 33):
        a = rng.standard_normal((300, 40)).astype(np.float32)
        b = guarded_arrays(40, n, n, rng.standard_normal((40, n)))
        c, _ = _C.gemm_packed_test(a, b, False, False)
        check(c, a, b, f"pre-packed n={n}")
    # The small kernel's 16-row tiles of a 16-column panel (rows 8-15 through 8 rows' stride)
    # with A's last row at the guard: heights that leave 8-row tiles after them or not.
    for m, n in [(16, 16), (17, 48), (31, 16), (33, 48), (32, 80)]:
        for ld in (40, 45):
            a = guarded_arrays(m, 40, ld, rng.standard_normal((m, 40)))
            b = guarded_arrays(40, n, n, rng.standard_normal((40, n)))
            check(_C.mm(a, b), a, b, f"NN 16-column panel {m}x{n}x40 lda={ld}")
    # A transposed B packed by the small path with its last row (of n) at the guard: the last
    # two panels packed together (n = 33-48 past whole panels, m >= n), and a tall product
    # (more than 256 rows, row blocks) whose panels are packed once for every block.
    for m, n in [(64, 40), (48, 33), (100, 80), (64, 17)]:
        a = rng.standard_normal((m, 40)).astype(np.float32)
        b = guarded_arrays(n, 40, 40, rng.standard_normal((n, 40)))
        check(_C.mm(a, b.T), a, b.T, f"NT small path {m}x{n}")
    for n in (33, 40, 48, 64):
        a = rng.standard_normal((300, 40)).astype(np.float32)
        b = guarded_arrays(n, 40, 40, rng.standard_normal((n, 40)))
        check(_C.mm(a, b.T), a, b.T, f"NT tall n={n}")
    # The last 33-48 columns in one pass (small_tile3): B's third register loaded masked up to
    # its last float, A's last row at the guard, and C ending at the guard, accumulated onto.
    for m, n in [(9, 33), (16, 40), (23, 48), (8, 80), (17, 100)]:
        for ld in (n, n + 3):
            a = guarded_arrays(m, 40, 43, rng.standard_normal((m, 40)))
            b = guarded_arrays(40, n, ld, rng.standard_normal((40, n)))
            check(_C.mm(a, b), a, b, f"NN last columns {m}x{n}x40 ldb={ld}")
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = guarded_arrays(m, n, n, c0)
        _C.gemm(a, b, out=c, accumulate=True)
        assert_close(c, c0 + reference(a, b, False, False), k=41,
                     scale=gemm_scale(a, b, 40) + _mx(c0),
                     what=f"last columns, C at the guard {m}x{n}")


def test_gemm_small_transposed_reads_stop_at_the_operand_end(guarded_arrays, rng, isa,
                                                             threads):
    # The C = A·Bᵀ small path (Cᵀ = B·Aᵀ, AVX-512 tiles of 12 and then 8 of B's rows) reads
    # only B's rows of its tiles (the last tile's rows clamped), and C and the bias through
    # masks: each of them ending at a PROT_NONE page, N around the 12- and 8-column tiles.
    for m, n, k in [(5, 13, 7), (9, 12, 33), (17, 23, 1), (33, 25, 40), (6, 28, 17),
                    (40, 47, 5), (20, 29, 64)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        w = guarded_arrays(n, k, k, rng.standard_normal((n, k)))
        ref = reference(a, w, False, True)
        scale = gemm_scale(a, w, k)
        assert_close(_C.gemm(a, w, False, True), ref, k=k, scale=scale,
                     what=f"small_t {m}x{n}x{k} B at the guard")
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        c = guarded_arrays(m, n, n, c0)
        _C.gemm(a, np.ascontiguousarray(w), False, True, out=c, accumulate=True)
        assert_close(c, c0 + ref, k=k + 1, scale=scale + _mx(c0),
                     what=f"small_t {m}x{n}x{k} C at the guard")
        bias = guarded_arrays(1, n, n, rng.standard_normal((1, n)))[0]
        y, _ = _C.linear_fwd(a, np.ascontiguousarray(w), bias, 1, 1.0, 20.0)
        assert_close(y, np.maximum(ref + bias, 0), k=k + 2, scale=scale + _mx(bias),
                     what=f"small_t {m}x{n}x{k} bias at the guard")


def test_gemm_matrix_vector_reads_stop_at_the_operand_end(guarded_arrays, rng, isa, threads):
    # The skinny products' loops read R's rows up to their last float (dot products: K off the
    # register width; sums of R's rows: N off it), R with a row stride past its width, 1-4
    # vectors ending at the guard or strided (columns of a wider array, copied first); C's
    # rows end at the guard too.
    def check(c, a, b, what):
        k = a.shape[1]
        assert_close(c, a.astype(np.float64) @ b.astype(np.float64), k=k,
                     scale=gemm_scale(a, b, k), what=what)

    for (n, k), v in zip([(5, 33), (37, 17), (100, 784), (1000, 3), (70, 130)], [1, 3, 4, 2, 1]):
        for ld in (k, k + 3):
            x = rng.standard_normal((v, k)).astype(np.float32)
            w = guarded_arrays(n, k, ld, rng.standard_normal((n, k)))  # (n, k): x·wᵀ
            check(_C.mm(x, w.T), x, w.T, f"{v}x{n}x{k} NT ld={ld}")
            check(_C.mm(w, x.T), w, x.T, f"{n}x{v}x{k} NN ld={ld}")
            xg = guarded_arrays(v, k, ld, x)  # the vectors' last float at the guard
            check(_C.mm(xg, w.T), xg, w.T, f"{v}x{n}x{k} NT x at the guard")
        for ld in (n, n + 5):
            x = rng.standard_normal((v, k)).astype(np.float32)
            w = guarded_arrays(k, n, ld, rng.standard_normal((k, n)))  # (k, n): x·w
            check(_C.mm(x, w), x, w, f"{v}x{n}x{k} NN ld={ld}")
            check(_C.mm(w.T, x.T), w.T, x.T, f"{n}x{v}x{k} TN ld={ld}")
        cols = guarded_arrays(k, v, 7, rng.standard_normal((k, v)))  # vectors 7 floats apart
        w = rng.standard_normal((n, k)).astype(np.float32)
        check(_C.mm(w, cols), w, cols, f"{n}x{v}x{k} strided b")
        check(_C.mm(cols.T, w.T), cols.T, w.T, f"{v}x{n}x{k} strided a")
        check(_C.mm(cols.T, cols), cols.T, cols, f"{v}x{v}x{k} two strided operands")
        b = rng.standard_normal((k, n)).astype(np.float32)
        c0 = rng.standard_normal((v, n)).astype(np.float32)
        c = guarded_arrays(v, n, n, c0)
        _C.gemm(x, b, out=c, accumulate=True)
        assert_close(c, c0 + reference(x, b, False, False), k=k + 1,
                     scale=gemm_scale(x, b, k) + _mx(c0), what=f"C at the guard {v}x{n}x{k}")
        # K = 1 (outer_path): a, b and C ending at the guard, b as a column 3 floats apart.
        a1 = guarded_arrays(v, 1, 1, rng.standard_normal((v, 1)))
        b1 = guarded_arrays(1, n, n, rng.standard_normal((1, n)))
        bc = guarded_arrays(n, 1, 3, rng.standard_normal((n, 1)))
        check(_C.mm(a1, b1), a1, b1, f"{v}x{n}x1 at the guard")
        check(_C.mm(a1, bc.T), a1, bc.T, f"{v}x{n}x1 a column of b at the guard")
        c1 = guarded_arrays(v, n, n, c0)
        _C.gemm(a1, b1, out=c1, accumulate=True)
        assert_close(c1, c0 + reference(a1, b1, False, False), k=2,
                     scale=gemm_scale(a1, b1, 1) + _mx(c0), what=f"rank-1 C at the guard {v}x{n}")
        # A pre-packed B (gemv_panels_path): the vectors' last float at the guard, as they are
        # or transposed (columns of a (k, v) array, copied first).
        xg = guarded_arrays(v, k, k, x)
        c, _ = _C.gemm_packed_test(xg, b, ldc_pad=1)
        check(c[:, :n], x, b, f"{v}x{n}x{k} pre-packed, x at the guard")
        xt = guarded_arrays(k, v, v, x.T)
        c, _ = _C.gemm_packed_test(xt, b, trans_a=True, ldc_pad=1)
        check(c[:, :n], x, b, f"{v}x{n}x{k} pre-packed, xᵀ at the guard")


@pytest.mark.parametrize("threads_n", [2, 3])
@pytest.mark.parametrize("weights", ["even", "uneven", "extreme"])
def test_gemm_packed_driver_uneven_shares(threads_n, weights, rng, gemm_order):
    # The packed driver runs as a balanced region: its row split, column-panel split and the
    # cooperative packing of B follow per-thread weights (core/parallel.h). Pinned uneven
    # weights stand in for a slow core; every boundary moves and the products must not change:
    # split by rows (M * T > N) and by columns, several K and N blocks (forced small blocks),
    # accumulate, and a pre-packed B with a fused epilogue.
    w = {"even": [], "uneven": [3, 1, 2][:threads_n], "extreme": [1, 40, 1][:threads_n]}[weights]
    prev = _C.get_num_threads()
    _C.set_num_threads(threads_n)
    try:
        _C._set_balance_weights(w)
        for ta, tb, m, n, k in [(False, False, 300, 260, 300), (True, False, 301, 1100, 97),
                                (False, True, 520, 190, 130), (True, True, 290, 700, 515)]:
            a, b = operands(rng, m, n, k, ta, tb)
            what = f"{'T' if ta else 'N'}{'T' if tb else 'N'} {m}x{n}x{k} T={threads_n} w={w}"
            _C.gemm_reset_last_blocks()
            check_overwrite_and_accumulate(rng, a, b, ta, tb, what)
            assert _C.gemm_last_blocks() is not None, what  # the packed driver ran
            bias = rng.standard_normal(n).astype(np.float32)
            c, _ = _C.gemm_packed_test(a, b, ta, tb, bias=bias, act=1)
            ref = reference(a, b, ta, tb) + bias
            assert_close(c, np.maximum(ref, 0), k=k + 1, scale=gemm_scale(a, b, k) + _mx(bias),
                         what=what + " pre-packed relu")
    finally:
        _C._set_balance_weights([])
        _C.set_num_threads(prev)


def test_gemm_coarse_splits_leave_the_thread_weights_alone(rng):
    # A region whose split has only a few units per thread (2 column panels of a pre-packed
    # TN 512x48x48 product on the packed driver; 6 column tiles of a 40x96x4000 x·Wᵀ) does
    # not follow or teach the pool's per-thread speeds: its shares could not move
    # the work, and learning from it drove the shared weights to their 0.25 / 0.75 limit,
    # slowing every later region (core/parallel.h, kBalancedMinUnitsPerThread).
    prev = _C.get_num_threads()
    _C.set_num_threads(2)
    try:
        _C._set_balance_weights([])
        a, b = operands(rng, 512, 48, 48, True, False)
        for _ in range(300):
            _C.gemm_packed_test(a, b, True, c=np.empty((512, 48), np.float32), prepack=True)
        a, b = operands(rng, 40, 96, 4000, False, True)
        for _ in range(300):
            _C.gemm(a, b, False, True)
        assert _C._balance_weights() == pytest.approx([0.5, 0.5], abs=1e-12)
    finally:
        _C._set_balance_weights([])
        _C.set_num_threads(prev)


def test_gemm_while_another_thread_sets_the_thread_count(rng):
    # A GEMM reads the thread count before its region starts; set_num_threads from another
    # Python thread in between gave the region fewer threads than its barrier counted, and they
    # waited forever. Now such a region runs on one thread. bmm runs its products' regions
    # back to back without the GIL, so the other thread's set_num_threads (waiting on the
    # pool) lands between them: before the fix this hung in 1 of 4 runs of 2 s, 2 of 2 of 10 s
    # (a review's count). (A hang fails the join below.)
    import threading
    import time
    prev = _C.get_num_threads()
    a = rng.standard_normal((32, 600, 200)).astype(np.float32)  # packed driver, split by rows
    b = rng.standard_normal((32, 200, 100)).astype(np.float32)
    ref = np.einsum("bmk,bkn->bmn", a.astype(np.float64), b.astype(np.float64))
    tol = 1e-5 * math.sqrt(200) * float(np.abs(a).max() * np.abs(b).max()) * 200
    stop = time.monotonic() + 4.0
    bad = []

    def products():
        while time.monotonic() < stop:
            err = float(np.abs(_C.bmm(a, b, False, False) - ref).max())
            if not err <= tol:
                bad.append(err)

    def counts():
        i = 0
        while time.monotonic() < stop:
            _C.set_num_threads(2 + i % 2)
            i += 1

    try:
        ts = [threading.Thread(target=products, daemon=True),
              threading.Thread(target=counts, daemon=True)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in ts), "a GEMM hung while the thread count changed"
        assert not bad, bad[:3]
    finally:
        _C.set_num_threads(prev)
