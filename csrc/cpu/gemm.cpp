// GEMM driver: threading, cache blocking, packing, edge tiles and the fused epilogue around
// the per-ISA micro-kernels in kernels/. Compiled at baseline; only the micro-kernels use SIMD.
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/parallel.h"
#include "core/tensor.h"
#include "cpu/isa.h"

namespace fastnn {

const GemmKernelInfo& gemm_kernel() {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return gemm_kernel_avx512();
    case Isa::avx2: return gemm_kernel_avx2();
    case Isa::generic: break;
  }
#endif
  return gemm_kernel_generic();
}

namespace {

// Below this many multiply-adds per thread, waking the pool costs more than it saves
// (2^19 MACs is ~10 us on one AVX2 core, about the cost of a pool round trip).
constexpr int64_t kMinMacsPerThread = int64_t(1) << 19;
// Up to 64x64x64: below this the packing (O(M*K + K*N)) and blocking bookkeeping cost about
// as much as the arithmetic, so the unpacked small-shape kernel wins (kernels that have one).
constexpr int64_t kSmallMacs = int64_t(64) * 64 * 64;
// A skinny product (gemv_path) streams its matrix once: a thread for every 64K of its
// elements (256 KiB). NOTE (speed): Intel Xeon VM, 2 threads against 1 at 200K elements (the
// 128K before), in-process, median of 5 interleaved pairs, us: NT 1x256x784 12.1 -> 7.6,
// 4x256x784 16.1 -> 9.9, NN 1x784x256 13.7 -> 8.7, 256x1x784 11.5 -> 8.1 (PyTorch 9-16).
constexpr int64_t kMinGemvPerThread = int64_t(1) << 16;
// The small-shape path (A unpacked) runs products taller than this in row blocks.
constexpr int64_t kSmallPathRows = 256;

// Packing buffers live per thread and only grow, so steady-state training allocates nothing.
// Pool threads are persistent, which makes thread_local the natural owner.
struct PackBuffer {
  float* p = nullptr;
  size_t n = 0;
  ~PackBuffer() { aligned_free(p); }
  float* get(size_t need) {
    if (need > n) {
      aligned_free(p);
      p = nullptr;
      n = 0;
      p = static_cast<float*>(aligned_alloc_bytes(need * sizeof(float)));
      n = need;
    }
    return p;
  }
};
thread_local PackBuffer t_apack, t_bpack;
thread_local PackBuffer t_cswap;  // Cᵀ of a narrow product (gemm_driver)
// gemv_path's contiguous copies of its vectors and of C's columns.
thread_local PackBuffer t_gemv_x, t_gemv_y;

// Gather `R` strided rows into R-wide interleaved panels: dst[p*R + r] = src[r*ld + p] for
// p < kc (r < rows; rows <= r < R are zero). Walking p outermost keeps the stores contiguous
// (the panel is L2-resident and a strided store would touch a new line each time) while the
// loads come from `rows` sequential streams the prefetcher follows. R is a template
// parameter so the r loop unrolls into straight-line code.
template <int R>
void gather_panel(const float* src, int64_t ld, int rows, int64_t kc, float* dst) {
  const float* s[R];
  for (int r = 0; r < R; ++r) s[r] = src + (r < rows ? r : 0) * ld;
  if (rows == R) {
    for (int64_t p = 0; p < kc; ++p, dst += R)
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) dst[r] = s[r][p];
  } else {
    for (int64_t p = 0; p < kc; ++p, dst += R)
      for (int r = 0; r < R; ++r) dst[r] = r < rows ? s[r][p] : 0.f;
  }
}

void gather_panel_any(int R, const float* src, int64_t ld, int rows, int64_t kc, float* dst) {
  switch (R) {
    case 4: return gather_panel<4>(src, ld, rows, kc, dst);
    case 6: return gather_panel<6>(src, ld, rows, kc, dst);
    case 8: return gather_panel<8>(src, ld, rows, kc, dst);
    case 14: return gather_panel<14>(src, ld, rows, kc, dst);
    case 16: return gather_panel<16>(src, ld, rows, kc, dst);
    case 32: return gather_panel<32>(src, ld, rows, kc, dst);
    default: break;
  }
  for (int64_t p = 0; p < kc; ++p, dst += R)
    for (int r = 0; r < R; ++r) dst[r] = r < rows ? src[r * ld + p] : 0.f;
}

// Copy `cols` consecutive floats of each of kc rows into R-wide panels: dst[p*R + c] =
// src[p*ld + c] (zero past cols). The layout already matches; this is a strided memcpy.
void copy_panel(int R, const float* src, int64_t ld, int cols, int64_t kc, float* dst) {
  for (int64_t p = 0; p < kc; ++p, dst += R) {
    const float* sp = src + p * ld;
    int c = 0;
    for (; c < cols; ++c) dst[c] = sp[c];
    for (; c < R; ++c) dst[c] = 0.f;
  }
}

// The same panels as copy_panel over every R-wide column group of `cols` at once: dst panel q
// (at dst + q*kc*R) gets dst[p*R + c] = src[p*ld + q*R + c] (zero past cols).
// NOTE (speed): row by row, not panel by panel: each source row is read once, as one
// contiguous run the prefetcher streams, instead of being revisited once per panel at a
// large stride (for a transposed A of an RNN weight gradient, 8 KB apart: a new page per
// row, every time). The stores go to the L2-resident pack buffer, R floats at a time.
template <int R>
void copy_panels_rows(const float* src, int64_t ld, int64_t cols, int64_t kc, float* dst) {
  const int64_t full = cols / R, rem = cols % R, ps = kc * R;
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = src + p * ld;
    float* d = dst + p * R;
    for (int64_t q = 0; q < full; ++q) std::memcpy(d + q * ps, s + q * R, R * sizeof(float));
    if (rem) {
      float* dr = d + full * ps;
      const float* sr = s + full * R;
      for (int c = 0; c < R; ++c) dr[c] = c < rem ? sr[c] : 0.f;
    }
  }
}

void copy_panels_rows_any(int R, const float* src, int64_t ld, int64_t cols, int64_t kc,
                          float* dst) {
  switch (R) {
    case 4: return copy_panels_rows<4>(src, ld, cols, kc, dst);
    case 6: return copy_panels_rows<6>(src, ld, cols, kc, dst);
    case 8: return copy_panels_rows<8>(src, ld, cols, kc, dst);
    case 14: return copy_panels_rows<14>(src, ld, cols, kc, dst);
    case 16: return copy_panels_rows<16>(src, ld, cols, kc, dst);
    case 32: return copy_panels_rows<32>(src, ld, cols, kc, dst);
    default: break;
  }
  for (int64_t c0 = 0; c0 < cols; c0 += R, dst += kc * R)
    copy_panel(R, src + c0, ld, (int)std::min<int64_t>(R, cols - c0), kc, dst);
}

// Pack rows [0, mc) x columns [0, kc) of op(A) into MR-row panels: panel r0 holds, for each
// p, the MR values op(A)(r0..r0+MR, p) consecutively; rows past mc are zero so the kernel can
// always run a full tile. A already points at op(A)(0, 0) of this block.
void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc,
            const GemmKernelInfo& kr, float* dst) {
  const int mr = kr.mr;
  if (trans) {  // op(A)(i, p) = A[p*lda + i]
    if (kr.copy_panels) return kr.copy_panels(mr, A, lda, mc, kc, dst);
    return copy_panels_rows_any(mr, A, lda, mc, kc, dst);
  }
  for (int64_t r0 = 0; r0 < mc; r0 += mr, dst += kc * mr)  // op(A)(i, p) = A[i*lda + p]
    gather_panel_any(mr, A + r0 * lda, lda, (int)std::min<int64_t>(mr, mc - r0), kc, dst);
}

// Pack rows [0, kc) x columns [0, nc) of op(B) into NR-column panels (zero-padded), the mirror
// image of pack_a. B already points at op(B)(0, 0) of this block.
void pack_b(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc,
            const GemmKernelInfo& kr, float* dst) {
  const int nr = kr.nr;
  if (!trans) {  // op(B)(p, j) = B[p*ldb + j]
    if (kr.copy_panels) return kr.copy_panels(nr, B, ldb, nc, kc, dst);
    return copy_panels_rows_any(nr, B, ldb, nc, kc, dst);
  }
  for (int64_t c0 = 0; c0 < nc; c0 += nr, dst += kc * nr)  // op(B)(p, j) = B[j*ldb + p]
    gather_panel_any(nr, B + c0 * ldb, ldb, (int)std::min<int64_t>(nr, nc - c0), kc, dst);
}

// Columns [0, nc) of op(B), all K rows (B at op(B)(0, 0)), into NR-wide zero-padded panels at
// dst (panel q at dst + q*K*NR): with the kernel's own transposing copy where it has one.
void pack_b_panels(const GemmKernelInfo& kr, bool trans, const float* B, int64_t ldb, int64_t K,
                   int64_t nc, float* dst) {
  if (trans && kr.pack_bt) kr.pack_bt(B, ldb, K, nc, dst);
  else pack_b(trans, B, ldb, K, nc, kr, dst);
}

bool epilogue_is_trivial(const GemmEpilogue* ep) {
  return !ep || (!ep->bias && !ep->z && ep->act.act == Act::none);
}

// The whole epilogue on a rows x cols block of C, where no kernel tile applied it (K = 0, a
// narrow product computed as its transpose, and the skinny and rank-1 paths).
// c, z: (rows, cols) with leading dimension ldc; bias: (cols,) or null.
void apply_epilogue(const GemmEpilogue& ep, float* c, float* z, const float* bias, int64_t ldc,
                    int64_t rows, int64_t cols) {
  dispatch_act(ep.act.act, [&]<Act A>() {
    const float beta = ep.act.beta, thr = ep.act.threshold;
    for (int64_t i = 0; i < rows; ++i) {
      float* ci = c + i * ldc;
      float* zi = z ? z + i * ldc : nullptr;
      for (int64_t j = 0; j < cols; ++j) {
        const float v = bias ? ci[j] + bias[j] : ci[j];
        if (zi) zi[j] = v;
        ci[j] = act_fwd<A>(v, beta, thr);
      }
    }
  });
}

// The activation alone on finished C (bias and z were done by the kernel), row by row at the
// active ISA's vector width: on one tile still in L1 in the packed driver, on a thread's whole
// share of C on the small-shape paths.
void apply_act(const ActParams& act, float* c, int64_t ldc, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i) act_fwd_span(act, c + i * ldc, c + i * ldc, cols);
}

// parallel_for(n, grain, fn), except that a problem of one grain runs fn directly: the
// small-shape paths serve products of a few hundred nanoseconds, where wrapping fn in a
// std::function (a heap allocation for a lambda with this many captures) and asking the pool
// for a thread count are a measurable part of the call.
template <class F>
void run_split(int64_t n, int64_t grain, F& fn) {
  if (n <= grain || threads_here() <= 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  parallel_for(n, grain, fn);
}

int64_t round_down(int64_t v, int64_t m) { return std::max(m, v / m * m); }

// Whether the small-shape path copies a row-major B (row stride ldb floats) into NR-wide
// panels instead of reading it in place (see the NOTEs at its use in gemm_driver).
bool small_path_packs_b(const GemmKernelInfo& kr, bool trans_a, int64_t ldb, int64_t M,
                        int64_t K) {
  return ldb % 256 == 0 &&
         ((ldb % 1024 == 0 && M >= 48 && K >= 256) ||
          (K >= 128 && M >= (trans_a || kr.nr < 32 ? 128 : 48) && (trans_a || K < 256)));
}

// The unpacked small-shape kernel wins when the products are tiny (packing costs as much as
// the arithmetic) and, on measurement, for the short-and-wide GEMMs of small-batch training:
// few row tiles, so packing A buys little, while each B panel (K x NR) it re-reads for every
// row tile stays in L2. Measured on Zen 5, 1 thread: 64x784x256 NN 202 -> 244 GFLOP/s,
// 256x784x64 TN 237 -> 258 GFLOP/s.
// It wins as well for tall products with few column panels (at most 3), where the packed
// driver would copy A (M x K) for the sake of 1-3 passes over it: run in row blocks of 256
// (gemm_driver), each a product this rule takes on its own (measured on Zen 5 as above).
// NOTE (speed): measured on an Intel Xeon VM (AVX-512, 48 KiB L1d, 2 MiB L2), in-process,
// median of 5 interleaved pairs, packed driver -> row blocks of 256 here, GFLOP/s on 1 thread
// / 2 threads: NT 2048x32x512 91 -> 130 / 159 -> 233 (PyTorch 124 / 189), NN 2048x32x512 90
// -> 117 / 179 -> 240, NT 1024x32x1024 89 -> 144 / 180 -> 271, NT 4096x48x256 89 -> 120 /
// 193 -> 239, NT 2048x64x512 123 -> 150 / 236 -> 291, NT 400x40x784 77 -> 106 / 148 -> 212,
// NN 300x32x256 110 -> 134 / 147 -> 273, NN 8192x32x128 88 -> 129 / 195 -> 240, NT
// 2048x96x512 132 -> 145 / 254 -> 272, NN 1024x96x256 132 -> 138 / 248 -> 264; a pre-packed
// B (an RNN step at a large batch), NN 512x48x48 93 -> 119 / 99 -> 122, 2048x32x32 98 -> 109 /
// 70 -> 110. From 4 panels on it is even or slower (NN 2048x128x512 139 -> 136 on 1 thread,
// 2048x160x512 147 -> 140, NT 1024x384x512 157 -> 142), and a transposed A loses (its
// columns are rows lda floats apart: TN 2048x64x512 102 -> 84). The AVX2 kernel (16-column
// panels, K <= 256 here) on the same machine: NT 2048x32x256 86 -> 91 / 178 -> 190, NN
// 1024x48x128 97 -> 97 / 168 -> 194; NN 1024x64x256 (4 panels) 100 -> 94. (The whole tall
// product against the packed driver was not measured on AMD.)
// NOTE (speed): with the B-in-L2 blocking (Intel, AVX-512: see gemm_blocks) deep products
// with a row-major B run faster on the packed driver, which blocks K. The small path keeps
// all of K in one B panel (K x 32 floats: 96 KiB at K = 768, twice L1d), so each row tile
// re-reads it from L2. Read in place with rows s bytes apart (s a multiple of 1 KiB), a
// panel's rows (2 lines each) fall into a fraction of the L2's sets that holds L2 / s rows
// (whatever the associativity: 1024 rows for s = 2 KiB in 2 MiB), and from about 3/4 of that
// on the panel comes from L3. Measured on an Intel Xeon VM (48 KiB L1d, 2 MiB L2),
// in-process, median of 5 interleaved pairs, old rule -> this one, 1 thread / 2 threads:
// over 140 random shapes (M 8-256, N 64-2048, K 512-2500, NN and TN) the 50 that change
// gain 1.62x / 1.53x (geometric mean; worst 0.93x, NN 32x256x1536, and 0.96x, NN
// 64x1024x1200); the other 90 1.00x / 0.99x. E.g. NN 256x1536x1536 59 -> 185 GFLOP/s (1
// thread), 113 -> 342 (2); NN 128x512x1024 77 -> 160; NN 32x1024x768 61 -> 103; TN
// 96x512x1024 83 -> 165; NN 256x784x1024 117 -> 162. Rows 4 KiB apart (read in place below
// 48 rows) from K = 512, not 384: NN 32x1024x512 1.21x / 1.36x, TN 1.18x / 1.36x, but TN
// 32x1024x384 0.98x / 0.88x. Kept on the small path: fewer than 24 rows (NN 8x1024x768
// 0.65x; 16x1024x768 1.28x on 1 thread, 0.82x on 2); fewer than 256 columns (NN 128x100x1024
// 0.95x / 0.63x, 160x64x2048 0.99x / 0.59x); K = 512 with 2 KiB rows (NN 128x512x512 0.89x
// / 0.98x); 1 KiB rows at K = 1024 below 128 rows (0.84x-1.27x); fewer than 128 rows without
// an aliased stride (NN 64x784x1024 1.03x / 0.92x, 32x784x1024 0.93x / 0.83x); a transposed
// or pre-packed B, which the small path reads from packed panels (NT 128x128x1200 0.98x /
// 0.58x). The K >= 1024 limit (and 2 KiB rows there, packed by the small path or not) is
// this L2's measurement, not derived.
bool use_small_path(const GemmKernelInfo& kr, const GemmBlocks& blocks, bool trans_a,
                    bool trans_b, bool b_prepacked, int64_t ldb, int64_t M, int64_t N,
                    int64_t K) {
  if (M * N * K <= kSmallMacs) return true;
  if (!kr.small_wide || (trans_a && !kr.small_wide_trans_a)) return false;
  // More than kSmallPathRows rows: only a few column panels, A as it is (gemm_driver runs
  // them in row blocks of at most kSmallPathRows).
  if (M > kSmallPathRows && (trans_a || N > 3 * kr.nr)) return false;
  if (blocks.b_in_l2 && M >= 24 && N >= 256 && !trans_b && !b_prepacked) {
    if (ldb % 256 == 0 && !small_path_packs_b(kr, trans_a, ldb, M, K)) {
      const int64_t stride = ldb % 1024 == 0 ? 4096 : ldb % 512 == 0 ? 2048 : 1024;  // bytes
      if (K >= std::max<int64_t>(512, cache_sizes().l2 / stride * 3 / 4)) return false;
    }
    if (K >= 1024 && (M >= 128 || ldb % 512 == 0)) return false;
  }
  return kr.small_wide_max_k > 0 ? K <= kr.small_wide_max_k
                                 : K * kr.nr * 4 <= cache_sizes().l2 / 4;
}

// The transposed small path (C = A·Bᵀ as Cᵀ = B·Aᵀ, packing only A) on the same terms as the
// wide small path, but with no kernel-specific K limit: its K loop reads a 6-, 8- or 12-row
// strip of B (in L1 up to K of about 1000 on a 48 KiB L1, in L2 past that) and one packed
// panel of A that stays in L2.
bool use_small_t_path(const GemmKernelInfo& kr, int64_t M, int64_t N, int64_t K) {
  if (M * N * K <= kSmallMacs) return true;
  return kr.small_wide && M <= 256 && K * kr.nr * 4 <= cache_sizes().l2 / 4;
}

}  // namespace

namespace {

// The test hook's blocks (set_gemm_blocks_override) and a generation count that tells every
// thread's cached blocks (blocks_for) to re-derive.
std::atomic<int> g_blocks_gen{0};
std::atomic<bool> g_blocks_forced{false};
GemmBlocks g_blocks_forced_value{};
// What the packed driver last ran with on this thread (gemm_last_blocks).
thread_local GemmBlocks t_last_blocks;
thread_local bool t_last_blocks_set = false;
// How the small-shape path (A unpacked) last read B on this thread (gemm_last_small_b): 1 from
// NR-wide panels (packed by the call, or pre-packed), 0 in place; -1 when it has not run since
// gemm_reset_last_blocks. (The C = A·Bᵀ path that packs A instead does not set it.)
thread_local int t_last_small_b = -1;

}  // namespace

const GemmBlocks* gemm_last_blocks() { return t_last_blocks_set ? &t_last_blocks : nullptr; }
void gemm_reset_last_blocks() {
  t_last_blocks_set = false;
  t_last_small_b = -1;
}
int gemm_last_small_b() { return t_last_small_b; }

void set_gemm_blocks_override(const GemmBlocks* b) {
  // Callers (tests) do this between GEMMs; the value is written before the flag that
  // publishes it and the generation that makes threads read it.
  if (b) g_blocks_forced_value = *b;
  g_blocks_forced.store(b != nullptr, std::memory_order_release);
  g_blocks_gen.fetch_add(1, std::memory_order_release);
}

GemmBlocks gemm_blocks(const GemmKernelInfo& kr) {
  auto clamp_block = [](int64_t v) { return std::clamp<int64_t>(v, 1, kGemmBlockMax); };
  if (g_blocks_forced.load(std::memory_order_acquire)) {
    GemmBlocks b = g_blocks_forced_value;
    b.mc = round_down(clamp_block(b.mc), kr.mr);
    b.nc = round_down(clamp_block(b.nc), kr.nr);
    b.kc = clamp_block(b.kc);
    return b;
  }
  const CacheSizes& cs = cache_sizes();
  GemmBlocks b;
  // B block in L2 for the AVX-512 kernel (32 columns a panel) on Intel cores. NOTE (speed):
  // measured on a 2-core Intel Xeon VM (AVX-512, 48 KiB L1d, 2 MiB L2), 1 thread, the blocked
  // loop nest alone (no packing), best of 12 interleaved rounds: 1008x1024x1024 83.5% of the
  // FMA peak with A in L2 (mc, kc, nc = 252, 512, 8192; 252, 1024, 8192 and 252, 256, 8192
  // within 1 point of it) against 89% with B in L2 (1008, 256..512, 512..1024);
  // 2044x2048x2048 75% against 95%. The B micro-panel of the other order (kc x 32 floats,
  // 128 KiB at its kc = 1024) does not fit L1, and each one comes from L3 for its first row
  // tile; in this order the A micro-panel (14 x kc, 28 KiB at kc = 512) does fit. The AVX2
  // kernel (6x16) on the same machine is faster in the other order (121 against 114
  // GFLOP/s), and AMD's Zen 4 and Zen 5 ran the other order at 87-94% of the peak (see
  // bench/RESULTS.md), so only this combination switches.
  b.b_in_l2 = kr.nr >= 32 && cpu_is_intel();
  if (!cs.detected) {
    b = {kr.mc, kr.kc, kr.nc, false};
  } else if (b.b_in_l2) {
    // kc: an A micro-panel (MR x kc) takes ~60% of L1d; the B panels stream through the rest.
    // nc: the packed B block (kc x nc), which every A micro-panel reads, takes half of L2.
    // NOTE (speed): on the Intel Xeon above, 2048^3, in-process interleaved, best of 6:
    // (kc, nc) = (512, 512) 211 GFLOP/s, (384, 672) 208; the loop nest alone put (256, 1024),
    // (384, 768) and (512, 512) within 1% of each other, (1024, 256) 3% and (768, 512) 5%
    // behind.
    b.kc = std::clamp<int64_t>(round_down(cs.l1d * 3 / 5 / (kr.mr * 4), 64), 128, 1024);
    b.nc = std::clamp<int64_t>(round_down(cs.l2 / 2 / (b.kc * 4), kr.nr), kr.nr, 8192);
    // mc: the packed A block (mc x kc) is read once per B block, from L3: a quarter of L3 and
    // at most 8 MiB. Each A block packs the B blocks again, so fewer, taller A blocks pack B
    // fewer times. (Split by rows, each thread packs its share of a block; split by columns,
    // the whole block. The driver reserves a whole block per thread either way.)
    b.mc = std::max<int64_t>(
        round_down(std::min<int64_t>(cs.l3 / 4, int64_t(8) << 20) / (b.kc * 4), kr.mr), kr.mr);
  } else {
    // kc: as deep as the B micro-panel (kc x NR) can go while staying a small part of L2
    // (1/8). Deeper K blocks mean fewer read-modify-write passes over C, and a modern L2 feeds
    // the micro-kernel's B stream fast enough that keeping it in L1 does not pay: measured on
    // Zen 5 (48 KiB L1d, 1 MiB L2), 1024x1024x1024 single-thread: kc = 256 -> 88% of the FMA
    // peak, 512 -> 89%, 1024 -> 92%.
    b.kc = std::clamp<int64_t>(round_down(cs.l2 / 8 / (kr.nr * 4), 64), 128, 1024);
    // mc: the packed A block (mc x kc) fills half of L2; the other half holds the B
    // micro-panels as they stream through and the C tiles.
    b.mc = std::clamp<int64_t>(round_down(cs.l2 / 2 / (b.kc * 4), kr.mr), kr.mr, 1024);
    // nc: the packed B block (kc x nc), shared by all threads, takes a quarter of L3.
    b.nc = std::clamp<int64_t>(round_down(cs.l3 / 4 / (b.kc * 4), kr.nr), kr.nr * 4, 8192);
  }
  if (const char* e = std::getenv("FASTNN_GEMM_BLOCKS")) {  // tuning aid: "mc,kc,nc[,order]"
    long mc, kc, nc;
    int order = -1;
    const int got = std::sscanf(e, "%ld,%ld,%ld,%d", &mc, &kc, &nc, &order);
    if (got >= 3 && mc > 0 && kc > 0 && nc > 0) {
      b.mc = round_down(clamp_block(mc), kr.mr);
      b.kc = clamp_block(kc);
      b.nc = round_down(clamp_block(nc), kr.nr);
      if (got == 4 && (order == 0 || order == 1)) b.b_in_l2 = order == 1;
    }
  }
  return b;
}

namespace {

// Where the driver gets op(B) from: the caller's matrix (packed block by block as it goes),
// or a GemmPackedB (panel q of the whole K at packed + q*K*NR: nothing to pack).
struct BSource {
  bool trans = false;
  const float* B = nullptr;
  int64_t ldb = 0;
  const float* packed = nullptr;
};

// Blocks depend only on the kernel (and the caches): derived once per thread and kernel (and
// again after set_gemm_blocks_override).
const GemmBlocks& blocks_for(const GemmKernelInfo& kr) {
  static thread_local const GemmKernelInfo* t_kr = nullptr;
  static thread_local int t_gen = -1;
  static thread_local GemmBlocks t_blocks;
  const int gen = g_blocks_gen.load(std::memory_order_acquire);
  if (t_kr != &kr || t_gen != gen) {
    t_blocks = gemm_blocks(kr);
    t_kr = &kr;
    t_gen = gen;
  }
  return t_blocks;
}

// The part of ep a micro-kernel applies (bias, pre-activation store, ReLU), at C's origin.
MicroEpilogue micro_epilogue(const GemmEpilogue& ep) {
  return MicroEpilogue{ep.bias, ep.z, ep.act.act == Act::relu};
}

// Whether a skinny product takes C's rows (op(A)'s rows) as its vectors, not C's columns:
// the smaller count of the two when both are small.
bool gemv_by_rows(int64_t M, int64_t N) {
  return M <= kGemvVectors && (M <= N || N > kGemvVectors);
}

// Whether gemm_driver runs a product as skinny (gemv_path): at most kGemvVectors rows or
// columns. Not when the dot products would be shorter than an AVX-512 register (K < 16 with
// B's rows, or A's, as the dot products' other side), where the tiled paths do better.
bool use_gemv_path(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  const bool by_rows = gemv_by_rows(M, N);
  if (!by_rows && N > kGemvVectors) return false;
  const bool dot = by_rows ? trans_b : !trans_a;
  return !dot || K >= 16;
}

// nv vectors of K floats stored as the columns of x (vector m's element p at x[p*ld + m]),
// copied into rows of this thread's buffer (t_gemv_x) for the skinny and rank-1 loops; xs = K.
const float* contiguous_vectors(int nv, int64_t K, const float* x, int64_t ld, int64_t& xs) {
  float* xc = t_gemv_x.get(size_t(nv * K));
  for (int m = 0; m < nv; ++m)
    for (int64_t p = 0; p < K; ++p) xc[m * K + p] = x[p * ld + m];
  xs = K;
  return xc;
}

// A skinny product (see use_gemv_path) as nv <= kGemvVectors matrix-vector products over one
// matrix R:
//   by rows (M = nv): C's row m = a_m·op(B), a_m op(A)'s row m; op(B)'s columns are B's rows
//     when trans_b (dot products: gemv_rows), else C's rows are sums of B's rows (gemv_cols);
//   by columns (N = nv): C's column m = op(A)·b_m, b_m op(B)'s column m; op(A)'s rows are A's
//     rows unless trans_a (gemv_rows), else C's columns are sums of A's rows (gemv_cols).
// (Both counts small: the rows if M <= N.) Vectors that are not contiguous rows are copied
// first; C's columns as sums of rows (contiguous registers) go through a contiguous copy.
// Threads split the n outputs of each vector in units of 16 (64 bytes of a C row, or 16 of C's
// rows when the vectors are its columns), each its share of R's rows (gemv_rows) or columns
// (gemv_cols).
// NOTE (speed): the tiled paths reuse each loaded value across a register tile; here there
// is little to reuse, and they ran a third as fast as these loops or less. Measured on an
// Intel Xeon VM (AVX-512), 1 thread, in-process, median of 7, us, tiled -> here (PyTorch):
// NT 1x256x784 (Linear(784, 256) at batch 1) 57.3 -> 11.1 (15.9), 2x256x784 53.6 -> 10-12
// (12-14), 4x256x784 53.6 -> 14-15 (21-25), NN 1x784x256 27.0 -> 12-14 (11-14), 256x1x784
// 52.5 -> 10.9 (17.1), 4x300x500 24.1 -> 12.5 (12.7), TN 784x1x256 67.0 -> 11.6 (17.4), NT
// 1x1024x1024 (4 MiB, past L2) 289 -> 173 (211), NT 1x1x1000 6.4 -> 0.8 (2.1).
void gemv_path(const GemmKernelInfo& kr, bool trans_a, bool trans_b, int64_t M, int64_t N,
               int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
               int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  const bool by_rows = gemv_by_rows(M, N);
  // Output (m, j), m < nv, j < n, at C[m*cm + j*cj]; vector m's element p at x[m*xs + p] when
  // xcontig, else at x[p*xs + m].
  const float* R = by_rows ? B : A;
  const float* x = by_rows ? A : B;
  const int64_t ld = by_rows ? ldb : lda, cm = by_rows ? ldc : 1, cj = by_rows ? 1 : ldc;
  const int nv = (int)(by_rows ? M : N);
  const int64_t n = by_rows ? N : M;
  const bool dot = by_rows ? trans_b : !trans_a;
  const bool xcontig = by_rows ? !trans_a : trans_b;
  int64_t xs = by_rows ? lda : ldb;
  if (!xcontig) x = contiguous_vectors(nv, K, x, xs, xs);
  // Sums of rows need each vector's outputs contiguous: C's rows are; its columns are copied.
  const bool ycopy = !dot && cj != 1;
  float* y = C;
  int64_t ym = cm;
  if (ycopy) {
    y = t_gemv_y.get(size_t(nv * n)), ym = n;
    if (accumulate)
      for (int m = 0; m < nv; ++m)
        for (int64_t j = 0; j < n; ++j) y[m * n + j] = C[m * cm + j * cj];
  }
  constexpr int64_t kUnit = 16;
  const int nt = (int)std::min<int64_t>({(int64_t)threads_here(), (n + kUnit - 1) / kUnit,
                                          std::max<int64_t>(1, n * K / kMinGemvPerThread)});
  auto run = [&](int t, int T) {
    const auto [j0, j1] = split_range(n, t, T, kUnit);
    if (j0 >= j1) return;
    if (dot)
      kr.gemv_rows(nv, j1 - j0, K, R + j0 * ld, ld, x, xs, y + j0 * cj, ym, cj, accumulate);
    else
      kr.gemv_cols(nv, j1 - j0, K, R + j0, ld, x, xs, y + j0, ym, accumulate);
  };
  if (nt <= 1) run(0, 1);
  else parallel_run(nt, run);
  if (ycopy)
    for (int m = 0; m < nv; ++m)
      for (int64_t j = 0; j < n; ++j) C[m * cm + j * cj] = y[m * n + j];
  if (!epilogue_is_trivial(ep)) apply_epilogue(*ep, C, ep->z, ep->bias, ldc, M, N);
}

// C = op(A)·B with at most kGemvVectors rows and a pre-packed B (an RNN's recurrence at a
// batch of 1-4): C's rows as sums of B's rows, read from its panels (gemv_panels); threads
// split the panels. Then the epilogue, as gemv_path.
// NOTE (speed): the small-shape kernel ran these with its 8-row tiles 1/8-1/2 full. Measured
// on an Intel Xeon VM (AVX-512), in-process, median of 7 interleaved, us, tiled -> here
// (PyTorch), 1 thread / 2 threads: NN 1x512x128 5.2 -> 1.9 (2.6) / 5.6 -> 2.1 (4.0), 1x128x512
// 5.1 -> 1.9 (2.8), 2x512x128 5.2 -> 2.0 (3.3), 4x512x128 5.7 -> 3.5 (4.5), 1x1024x256 20.6 ->
// 7.9 (14.6) / 22.2 -> 5.1 (9.6), 4x1024x256 22.1 -> 13.3 (18.4) / 14.7 -> 9.0 (12.9); past
// L2 (4 MiB) 1x2048x512 170 -> 152 (179) / 59 -> 42 (60). nn.LSTM(64, 128) at batch 1, 100
// steps forward and backward: 1.86 -> 0.77 ms (PyTorch 1.50).
void gemv_panels_path(const GemmKernelInfo& kr, bool trans_a, int64_t M, int64_t N, int64_t K,
                      const float* A, int64_t lda, const float* P, float* C, int64_t ldc,
                      bool accumulate, const GemmEpilogue* ep) {
  const int nv = (int)M;
  int64_t xs = lda;
  const float* x = trans_a ? contiguous_vectors(nv, K, A, lda, xs) : A;
  const int64_t nr = kr.nr, panels = (N + nr - 1) / nr;
  const int nt = (int)std::min<int64_t>({(int64_t)threads_here(), panels,
                                          std::max<int64_t>(1, N * K / kMinGemvPerThread)});
  auto run = [&](int t, int T) {
    const auto [q0, q1] = split_range(panels, t, T, 1);
    if (q0 >= q1) return;
    const int64_t j0 = q0 * nr, j1 = std::min(N, q1 * nr);
    kr.gemv_panels(nv, j1 - j0, K, P + q0 * K * nr, nr, x, xs, C + j0, ldc, accumulate);
  };
  if (nt <= 1) run(0, 1);
  else parallel_run(nt, run);
  if (!epilogue_is_trivial(ep)) apply_epilogue(*ep, C, ep->z, ep->bias, ldc, M, N);
}

// C = op(A)·op(B) with K = 1, i.e. C = a·bᵀ (a Linear layer's weight gradient at batch 1), with
// 32 columns or more or onto C (gemm_driver): C's rows scaled copies of b (gemv_outer), b
// first copied when its elements are strided (op(B) is Bᵀ, a column of B); threads split the
// rows (or, with fewer rows than threads, the columns), each applying the epilogue to its own.
// NOTE (speed): measured on an Intel Xeon VM, in-process, median of 7 interleaved, us, 1
// thread, tiled -> here (PyTorch): TN 256x784x1 17.7 -> 15.1 (15.8), TN 784x256x1 33.6 -> 16.7
// (19.2), TN 128x256x1 6.2 -> 3.6 (4.0), TN 1024x1024x1 331 -> 169 (186), NT 300x500x1 25.7
// -> 12.7 (17.1); accumulating, TN 2000x17x1 18.4 -> 5.7 (addmm_ 20.0), 2000x8x1 15.6 -> 6.4
// (15.2); 2 threads, TN 256x784x1 18.1 -> 9.4 (10.5), 784x256x1 36.6 -> 10.9 (15.0),
// 1024x1024x1 200 -> 84 (98), NT 300x500x1 29.5 -> 8.4 (10.6). With the AVX2 kernel (1
// thread): TN 784x256x1 55.4 -> 19.3, 1024x1024x1 657 -> 188. Not when overwriting fewer than
// 32 columns (at most two registers and a scalar tail a row, where the tiled kernels' masked
// stores of 8-14 rows at once measured faster): TN 2000x8x1 4.0 -> 6.2, 2000x17x1 4.9 -> 6.0,
// NN 500x20x1 2.1 -> 2.9.
void outer_path(const GemmKernelInfo& kr, bool trans_a, bool trans_b, int64_t M, int64_t N,
                const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                bool accumulate, const GemmEpilogue* ep) {
  const int64_t as = trans_a ? 1 : lda;
  int64_t bs = 1;
  const float* b = trans_b && ldb != 1 ? contiguous_vectors(1, N, B, ldb, bs) : B;
  const bool epi = !epilogue_is_trivial(ep);
  const int nt = (int)std::min<int64_t>({(int64_t)threads_here(), std::max(M, (N + 15) / 16),
                                          std::max<int64_t>(1, M * N / kMinGemvPerThread)});
  // Fewer rows than threads (a long b): the threads split the columns instead, in units of 16.
  // NOTE (speed): 2 threads, us, rows -> columns (PyTorch): TN 1x200000x1 24.1 -> 10.9 (20.7),
  // 1x1000000x1 274 -> 140 (213).
  const bool by_cols = M < nt;
  auto run = [&](int t, int T) {
    const auto [r0, r1] = by_cols ? std::pair<int64_t, int64_t>(0, M) : split_range(M, t, T, 1);
    const auto [j0, j1] = by_cols ? split_range(N, t, T, 16) : std::pair<int64_t, int64_t>(0, N);
    if (r0 >= r1 || j0 >= j1) return;
    float* c = C + r0 * ldc + j0;
    kr.gemv_outer(r1 - r0, j1 - j0, A + r0 * as, as, b + j0, c, ldc, accumulate);
    if (epi)
      apply_epilogue(*ep, c, ep->z ? ep->z + r0 * ldc + j0 : nullptr,
                     ep->bias ? ep->bias + j0 : nullptr, ldc, r1 - r0, j1 - j0);
  };
  if (nt <= 1) run(0, 1);
  else parallel_run(nt, run);
}

// The whole GEMM after the argument handling of gemm_f32 / gemm_f32_packed; kr is the kernel
// every thread uses (read once by the caller).
void gemm_driver(const GemmKernelInfo& kr, bool trans_a, int64_t M, int64_t N, int64_t K,
                 const float* A, int64_t lda, const BSource& src, float* C, int64_t ldc,
                 bool accumulate, const GemmEpilogue* ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    // An empty sum: C = 0 (or unchanged), then bias/activation as usual.
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, size_t(N) * sizeof(float));
    if (!epilogue_is_trivial(ep)) apply_epilogue(*ep, C, ep->z, ep->bias, ldc, M, N);
    return;
  }
  const bool trans_b = src.trans;
  const float* B = src.B;
  const int64_t ldb = src.ldb;
  const float* prepacked = src.packed;
  if (K == 1 && (N >= 32 || accumulate) && !prepacked && kr.gemv_outer) {
    outer_path(kr, trans_a, trans_b, M, N, A, lda, B, ldb, C, ldc, accumulate, ep);
    return;
  }
  if (!prepacked && kr.gemv_rows && use_gemv_path(trans_a, trans_b, M, N, K)) {
    gemv_path(kr, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, ep);
    return;
  }
  if (prepacked && kr.gemv_panels && M <= kGemvVectors) {
    gemv_panels_path(kr, trans_a, M, N, K, A, lda, prepacked, C, ldc, accumulate, ep);
    return;
  }
  if (kr.small && !prepacked && 4 * N <= 3 * kr.nr && M >= 4 * N && M * N * K > kSmallMacs &&
      (M > 256 || trans_a)) {
    // A narrow product (a few columns, many rows: a classifier layer's forward at a large
    // batch) fills a fraction of each NR-wide panel; its transpose Cᵀ = op(B)ᵀ·op(A)ᵀ has the
    // few columns as rows and many columns (the small-shape paths on AVX-512; mostly the
    // packed driver on AVX2), then C = (Cᵀ)ᵀ (+ C) and the epilogue on it, serially.
    // NOTE (speed): measured with the AVX-512 kernel on an Intel Xeon VM, in-process, median
    // of 5 interleaved pairs, GFLOP/s on 1 thread / 2 threads, direct -> transposed: NT 512x10x784
    // (Linear(784, 10) at batch 512) 33 -> 72 / 66 -> 138, NT 4096x16x256 49 -> 100 / 102 ->
    // 179, NT 2048x10x128 36 -> 72 / 75 -> 111, NN 1024x8x64 31 -> 66 / 29 -> 59, TN
    // 300x24x1200 68 -> 146 / 128 -> 251, TN 64x10x1024 78 -> 148 / 71 -> 188, TN
    // 128x16x512 128 -> 135 / 125 -> 193. Not for 256 rows or fewer unless A is transposed
    // (NN 160x16x1024 96 -> 82, NT 256x16x256 118 -> 105 on 1 thread), nor past 24 columns
    // (TN 256x31x300 157 -> 135 on 1 thread). Against the tall products' row blocks on the
    // small path (see use_small_path), which now take more than 256 rows with A as it is,
    // this measured even, so it stays first: 1 thread / 2 threads, transposed -> row blocks,
    // NT 2048x16x512 96 -> 90 / 169 -> 166, NN 2048x24x512 88 -> 97 / 164 -> 172, NT
    // 4096x16x256 97 -> 93 / 168 -> 187, NT 512x10x784 69 -> 66 / 129 -> 134. A review's check on
    // the same machine, 1 thread: AVX2 NT 512x10x784 36 -> 58-67, NN 1024x8x64 18 -> 39; the
    // generic kernel (no small path: its Cᵀ is packed as well) lost 15-20% (NT 4096x6x256
    // 14.4 -> 12.2), so only kernels with a small path take this.
    float* ct = t_cswap.get(size_t(N * M));
    BSource at;
    at.trans = !trans_a;
    at.B = A;
    at.ldb = lda;
    gemm_driver(kr, !trans_b, N, M, K, B, ldb, at, ct, M, false, nullptr);
    for (int64_t i = 0; i < M; ++i) {
      float* ci = C + i * ldc;
      if (accumulate)
        for (int64_t j = 0; j < N; ++j) ci[j] += ct[j * M + i];
      else
        for (int64_t j = 0; j < N; ++j) ci[j] = ct[j * M + i];
    }
    if (!epilogue_is_trivial(ep)) apply_epilogue(*ep, C, ep->z, ep->bias, ldc, M, N);
    return;
  }
  const GemmBlocks& t_blocks = blocks_for(kr);
  const bool epi = !epilogue_is_trivial(ep);
  const bool act_in_kernel = !epi || ep->act.act == Act::none || ep->act.act == Act::relu;

  if (kr.small_t && !prepacked && trans_b && !trans_a && M < N &&
      use_small_t_path(kr, M, N, K)) {
    // C = A·Bᵀ with fewer rows than columns (a Linear forward on a small batch): pack A
    // (M x K) instead of B (N x K) and compute Cᵀ = B·Aᵀ with B read in place. Measured on
    // Zen 5, 1 thread, 64x256x784: packing the weight was ~12% of the time (116 -> 105 us).
    const int nr = kr.nr;
    const int64_t slice = K * ((M + nr - 1) / nr) * nr;  // one packed copy of A
    const MicroEpilogue me = epi ? micro_epilogue(*ep) : MicroEpilogue{};
    const MicroEpilogue* mep = epi ? &me : nullptr;
    // Threads split C's columns in units of 16: the kernel's tiles are 6, 8 or 12 columns
    // wide, but a split inside a 64-byte line would have both threads writing that line in
    // every row.
    // (split_range: the split linear_backward's threads use too, so each reads back the
    // columns of the output it wrote.)
    constexpr int64_t kColTile = 16;
    const int64_t tiles = (N + kColTile - 1) / kColTile;
    const int64_t grain =
        std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(M * K * kColTile, 1));
    // (Inside a caller's parallel region: 1, not a serial loop over every thread's share,
    // each packing its own copy of A.)
    const int nt = (int)std::min<int64_t>(threads_here(), (tiles + grain - 1) / grain);
    // NOTE (speed): every thread packs the whole of A into its own copy. A is the small
    // operand (O(M*K) against O(M*N*K) of arithmetic), and one copy packed by the caller and
    // read by the others bounced its cache lines between cores on every call (2 threads,
    // 64x128x256: 12 -> 21 us).
    float* ap_all = t_apack.get(size_t(slice * std::max(nt, 1)));
    auto run = [&](int t, int T) {
      const auto [c0, c1] = split_range(N, t, T, kColTile);
      if (c0 >= c1) return;
      float* ap = ap_all + size_t(t) * size_t(slice);
      if (kr.pack_bt) kr.pack_bt(A, lda, K, M, ap);
      else pack_b(true, A, lda, K, M, kr, ap);
      kr.small_t(M, c0, c1, K, ap, B, ldb, C, ldc, accumulate, mep);
      if (!act_in_kernel) apply_act(ep->act, C + c0, ldc, M, c1 - c0);
    };
    if (nt <= 1) run(0, 1);
    else if (tiles >= kBalancedMinUnitsPerThread * nt) parallel_run_balanced(nt, run);
    else parallel_run(nt, run);  // (too few tiles for the shares to move the work evenly)
    return;
  }

  if (kr.small &&
      use_small_path(kr, t_blocks, trans_a, trans_b, prepacked != nullptr, ldb, M, N, K)) {
    if (M > kSmallPathRows && M * N * K > kSmallMacs) {
      // A tall product with few columns (see use_small_path): each thread takes a share of
      // the rows (in 16-row units) and runs it through this path in blocks of at most
      // kSmallPathRows rows, products this path takes on every CPU by its own rule. Each
      // column panel re-reads its block's A: 256 rows x a K chunk of at most 1024 floats (1
      // MiB) in the B-in-L2 order; elsewhere the whole K, up to L2/512 floats (see the end of
      // use_small_path), 2x L2 at most.
      const int T = (int)std::min<int64_t>(threads_here(),
                                           std::max<int64_t>(1, M * N * K / kMinMacsPerThread));
      auto rows_run = [&](int t, int nt) {
        const auto [r0, r1] = split_range(M, t, nt, 16);
        const int64_t blocks = (r1 - r0 + kSmallPathRows - 1) / kSmallPathRows;
        // A thread with several blocks packs a transposed B once, into its own buffer, and its
        // blocks read that as a pre-packed B (each block packed all of B's panels again).
        // NOTE (speed): measured on an Intel Xeon VM, in-process, median of 7 interleaved,
        // GFLOP/s, 1 thread, per block -> once: NT 4096x48x256 139 -> 150, 1000x44x300 128 ->
        // 139, 600x80x1100 135 -> 143, 2048x32x512 129 -> 133. Packed once by the caller for
        // all threads instead, a thread with a single block lost its parallel, local pack:
        // NT 512x33x512 on 2 threads 201 -> 165.
        BSource bs = src;
        if (!prepacked && trans_b && blocks > 1) {
          float* bp = t_bpack.get(size_t(K * ((N + kr.nr - 1) / kr.nr) * kr.nr));
          pack_b_panels(kr, true, B, ldb, K, N, bp);
          bs.packed = bp;
        }
        for (int64_t b = 0; b < blocks; ++b) {
          const int64_t i0 = r0 + (r1 - r0) * b / blocks, i1 = r0 + (r1 - r0) * (b + 1) / blocks;
          GemmEpilogue e;
          if (ep) {
            e = *ep;
            if (e.z) e.z += i0 * ldc;
          }
          // (A as it is: a transposed A takes this path only within kSmallMacs.)
          gemm_driver(kr, false, i1 - i0, N, K, A + i0 * lda, lda, bs, C + i0 * ldc, ldc,
                      accumulate, ep ? &e : nullptr);
        }
      };
      if (T <= 1) rows_run(0, 1);
      else if ((M + 15) / 16 >= kBalancedMinUnitsPerThread * T) parallel_run_balanced(T, rows_run);
      else parallel_run(T, rows_run);
      return;
    }
    const int nr = kr.nr;
    const int64_t panels = (N + nr - 1) / nr;
    // B as the kernel reads it: row-major in place, or packed into NR-wide panels with
    // contiguous stores, O(N*K) against O(M*N*K) of arithmetic: always when trans_b, and for
    // a row-major B whose row stride is a multiple of 1 KiB when K and M are large enough.
    // NOTE (speed): the rows of a K x NR panel read in place then start in at most 4 of the 64
    // L1 sets (a 32-float row spans 2 lines: at most 8 sets; 2 for a 4 KiB stride), so from K
    // = 128 on each of those sets would need 32 lines or more of its 12 ways (8 on a 32 KiB
    // L1d), and the panel does not stay cached from one row tile to the next. Measured on
    // Zen 5, 1 thread, NN, in place -> packed, for strides of 4 KiB: 64x1024x1024 933 -> 658
    // us, 48x1024x1024 683 -> 513, 96x1024x512 515 -> 448, 64x1024x256 169 -> 155; but with
    // few row tiles or a short K the copy does not pay: 16x1024x1024 232 -> 259, 32x2048x512
    // 368 -> 394, 128x1024x64 TN 69 -> 72.
    // NOTE (speed): strides of 1, 2 and 3 KiB (256, 512, 768 floats) and K of 128-255 as well,
    // on an Intel Xeon VM (AVX-512, 48 KiB 12-way L1d), in-process interleaved, median of
    // 10-40 pairs: over the 62 shapes (M 48-256, N 256-1024, K 128-256, NN and TN) whose
    // choice changes, the geometric mean gain is 1.108 on 1 thread (worst 0.94) and 1.106 on 2
    // (worst 0.94); e.g. 1 thread NN 64x256x128 169 -> 186 GFLOP/s, 128x1024x128 189 -> 211,
    // TN 256x768x128 161 -> 186. Not for a TN with M < 128 (a transposed A's row tiles are
    // up to 14 rows, so a B panel serves at most 10 of them: TN 64x256x128 211 -> 190). Nor
    // for an NN with K >= 256 and a stride off 4 KiB: where the per-tile copy of A below
    // applies (AVX-512 on Intel, 384 columns or more per thread) B streams from L2 anyway and
    // packing measured slower (NN 64x768x256 215 -> 198); other such NN products (fewer
    // columns per thread, AMD, AVX2) keep the old rule, not measured here. The
    // AVX2 kernel (16-column panels, same machine, 1 thread) gains from M = 128 on (NN
    // 128x1024x128 86 -> 103 GFLOP/s) but loses below (NN 48x256x128 110 -> 103), so M >= 128
    // there.
    const bool pack_nn = !trans_b && small_path_packs_b(kr, trans_a, ldb, M, K);
    const float* b = B;
    int64_t ldb_s = ldb, bps = nr;
    float* bt = nullptr;  // the panels, packed by the threads that use them
    if (prepacked) {
      b = prepacked;
      ldb_s = nr;
      bps = K * nr;
    } else if (trans_b || pack_nn) {
      bt = t_bpack.get(size_t(K * panels * nr));
      b = bt;
      ldb_s = nr;
      bps = K * nr;
    }
    t_last_small_b = b != B ? 1 : 0;
    const MicroEpilogue me = epi ? micro_epilogue(*ep) : MicroEpilogue{};
    const MicroEpilogue* mep = epi ? &me : nullptr;
    const int64_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    // Threads split the column panels (A is read by all, never copied).
    const int64_t grain = std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(M * K * nr, 1));
    // kr.small over all of K, or (deep products in the B-in-L2 order) over K in near-equal
    // chunks of at most 512, each adding onto C, the epilogue with the last one.
    // NOTE (speed): the chunk's B panel (512 x 32 floats, 64 KiB) stays close while every row
    // tile uses it. Measured on an Intel Xeon VM (AVX-512, 48 KiB L1d, 2 MiB L2), in-process,
    // median of 5 interleaved pairs, whole K -> chunks, GFLOP/s on 1 thread / 2 threads: TN
    // 48x1000x2048 118 -> 138 / 222 -> 252, NN 32x784x2048 107 -> 121 / 232 -> 234, TN
    // 64x300x2048 130 -> 139 / 254 -> 252, NN 64x784x4096 175 -> 267 (2 threads), TN
    // 16x2000x3000 177 -> 200 (2). Not at K = 1024 (NN 24x784x1024 117 -> 113, 64x784x1024
    // 130 -> 131); chunks of 256 or 384 measured the same or worse.
    // (Not for the tiny products, M*N*K <= kSmallMacs, that a long K keeps here.)
    const int64_t chunk_k = t_blocks.b_in_l2 && K > 1024 && M * N * K > kSmallMacs ? 512 : K;
    auto small_k = [&](int64_t rows, int64_t n0, int64_t n1, const float* a_, int64_t rsa_,
                       int64_t csa_, const float* b_, float* c_, const MicroEpilogue* ep_) {
      const int64_t chunks = (K + chunk_k - 1) / chunk_k;
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t k0 = K * ch / chunks, kk = K * (ch + 1) / chunks - k0;
        kr.small(rows, n0, n1, kk, a_ + k0 * csa_, rsa_, csa_, b_ + k0 * ldb_s, ldb_s, bps, c_,
                 ldc, accumulate || ch > 0, ch + 1 == chunks ? ep_ : nullptr);
      }
    };
    auto run = [&](int64_t q0, int64_t q1) {
      const int64_t c0 = q0 * nr, c1 = std::min(N, q1 * nr);
      // A row-major A is read by 8-row tiles (each row its own pointer); transposed into a
      // K x M copy (this thread's own), its rows are contiguous and the kernel's 7-14-row
      // tiles apply: each B panel is re-read by fewer row tiles (M = 64: 5, not 8), each
      // with up to 28 accumulators, not 16.
      // NOTE (speed): measured on Zen 5, NN, in place -> transposed: 1 thread 64x784x256
      // 110 -> 103 us, 128x784x256 217 -> 204, 48x784x256 84 -> 78, 64x784x784 335 -> 317;
      // 2 threads 64x784x256 58.4 -> 55.1. The copy (M*K floats, per thread) does not pay for
      // fewer columns per thread or a short K: 2 threads 64x512x512 69.9 -> 71.5 and
      // 64x784x192 40.9 -> 42.0; 1 thread 128x128x512 65.7 -> 70.1, 256x256x256 133 -> 137,
      // 16x784x256 30.1 -> 30.3. Nor with B packed (its panels contiguous): 64x1024x1024
      // 643 -> 659 us (1 thread), 327 -> 340 (2 threads).
      const float* a = A;
      int64_t rsa = rs_a, csa = cs_a;
      const bool copy_a = kr.transpose && !trans_a && b == B && M >= 32 && K >= 256 &&
                          c1 - c0 >= 384;
      if (copy_a && t_blocks.b_in_l2 && K * kr.mr * 4 <= cache_sizes().l1d * 3 / 5 &&
          K * (c1 - c0) * 4 <= cache_sizes().l2 / 2) {
        // With the B-in-L2 order (see GemmBlocks), the same arrangement here: A copied one
        // row tile at a time (its rows transposed, K x rows, contiguous), and each tile, in
        // L1, runs over all of this thread's columns while B streams from L2 (so this
        // thread's part of B must fit half of L2, and a tile 60% of L1d).
        // NOTE (speed): measured on an Intel Xeon VM (AVX-512, 48 KiB L1d, 2 MiB L2), 1
        // thread, the kernel calls in-process interleaved, best of 20-40, against the
        // transposed copy below: NN 64x784x256 138 -> 123 us, 128x784x256 264 -> 239,
        // 64x512x512 159 -> 148; 64x256x128 and 32x1024x512 the same; 64x784x784 (a 43 KiB
        // tile) 540 -> 896. Through _C.gemm (the review, best of 25), with B past half of
        // L2: 64x784x384 220 -> 228 us, 64x640x512 236 -> 274, 64x784x512 304 -> 396.
        const int64_t tiles = (M + kr.mr - 1) / kr.mr;
        float* ap = t_apack.get(size_t(K * M));
        for (int64_t t = 0; t < tiles; ++t) {
          const int64_t i0 = M * t / tiles, rows = M * (t + 1) / tiles - i0;
          float* at = ap + K * i0;
          kr.transpose(A + i0 * lda, lda, rows, K, at, rows);
          const MicroEpilogue mt = micro_epilogue_at(me, i0, 0, ldc);
          kr.small(rows, c0, c1, K, at, 1, rows, b, ldb_s, bps, C + i0 * ldc, ldc, accumulate,
                   epi ? &mt : nullptr);
        }
        if (!act_in_kernel) apply_act(ep->act, C + c0, ldc, M, c1 - c0);
        return;
      }
      if (copy_a) {
        // Leading dimension an odd number of 64-byte lines: the K rows of the copy spread
        // over every L1 set (256 floats = 1 KiB apart, they would share 4 of them).
        const int64_t ldt = (M + 15) / 16 % 2 ? (M + 15) / 16 * 16 : (M + 15) / 16 * 16 + 16;
        float* at = t_apack.get(size_t(K * ldt));
        kr.transpose(A, lda, M, K, at, ldt);
        a = at;
        rsa = 1;
        csa = ldt;
      }
      if (bt) {
        // NOTE: each thread packs only its own panels (columns c0..c1 of op(B)), so the O(N*K)
        // transpose is split too; done serially first it held a 2-thread 64x256x784 x·Wᵀ at
        // ~65% of the FMA peak while the untransposed products reached ~88%.
        // NOTE (speed): one panel at a time (the last two together, see below), into the same
        // K x NR slot (the thread's first), consumed by all the row tiles before the next is
        // packed: the panel stays in L2 while it is used, and the packed copy of B never grows
        // to a second B-sized working set (for 64x256x784 x·Wᵀ the weight plus a whole packed
        // copy is 1.6 MB, more than L2).
        float* dst = bt + q0 * K * nr;
        // The last two panels together, each in its own slot (the thread's first two), when
        // they hold at most GemmKernelInfo::small_last_cols columns: the kernel takes those in
        // one pass if it reads A through row pointers, else panel by panel from the two slots
        // (which rows it reads A by is the kernel's choice: on AVX-512, a transposed A with 8
        // rows or more has contiguous rows).
        for (int64_t j = c0; j < c1; j += nr) {
          const bool two = c1 - j > nr && c1 - j <= kr.small_last_cols;
          const int64_t je = two ? c1 : std::min(c1, j + nr);
          pack_b_panels(kr, trans_b, trans_b ? B + j * ldb : B + j, ldb, K, je - j, dst);
          // Columns j..je as columns 0..je-j of C + j (the panel is the kernel's panel 0).
          const MicroEpilogue mj = micro_epilogue_at(me, 0, j, ldc);
          small_k(M, 0, je - j, a, rsa, csa, dst, C + j, epi ? &mj : nullptr);
          if (two) break;
        }
      } else {
        small_k(M, c0, c1, a, rsa, csa, b, C, mep);
      }
      if (!act_in_kernel) apply_act(ep->act, C + c0, ldc, M, c1 - c0);
    };
    run_split(panels, grain, run);
    return;
  }

  const int mr = kr.mr, nr = kr.nr;
  const int64_t KC = t_blocks.kc, MC = t_blocks.mc, NC = t_blocks.nc;
  t_last_blocks = t_blocks;
  t_last_blocks_set = true;
  const int64_t tiles_m = (M + mr - 1) / mr, tiles_n = (N + nr - 1) / nr;
  const int64_t nt = std::min<int64_t>({(int64_t)threads_here(), std::max(tiles_m, tiles_n),
                                        std::max<int64_t>(1, M * N * K / kMinMacsPerThread)});

  const int64_t kc_max = std::min<int64_t>(KC, K);
  const int64_t nc_max = std::min<int64_t>(NC, tiles_n * nr);
  const int64_t mc_max = std::min<int64_t>(MC, tiles_m * mr);
  // The caller's thread owns the buffers (thread_local, grown once) and shares them with the
  // pool threads for the duration of the call: one packed B block for everyone, one A block
  // per thread. Allocated here so nothing inside the parallel region can throw.
  float* bpack = prepacked ? nullptr : t_bpack.get(size_t(kc_max * nc_max));
  float* apack_all = t_apack.get(size_t(kc_max * mc_max * nt));

  const bool b_in_l2 = t_blocks.b_in_l2;
  // Partition C between threads: by rows when there are enough row tiles and A is the
  // larger operand, else by column panels (see body).
  auto split_by_rows = [&](int64_t T) {
    return prepacked ? (M > MC && tiles_m >= 2 * T) : (tiles_m >= 2 * T && M * T > N);
  };
  auto body = [&](int t, int T, SpinBarrier& bar) {
    float* apack = apack_all + size_t(t) * size_t(kc_max * mc_max);
    // Partition C between threads: by rows when there are enough row tiles and A is the
    // larger operand (each thread packs only its own A rows; B is packed once, cooperatively,
    // and every thread reads all of it), else by column panels (each thread packs the whole A
    // and only the B panels it multiplies: no barrier, no packed B crossing cores).
    // NOTE: with a pre-packed B nothing is packed cooperatively, and for a short A (one MC
    // block, e.g. an RNN step's 32 rows) splitting columns lets each thread stream only its
    // share of B, the operand that dominates the traffic; so rows only when A is tall.
    // NOTE (speed): packing A on every thread costs (T-1)*M*K more packing, the row split
    // moves (T-1)/T of the packed B (N*K) between cores and waits twice per K block: columns
    // when M*T <= N. Zen 3, 2 threads, us, rows -> columns (best of 15, noisy VM): NT
    // 64x256x784 174-256 -> 161-215, 64x1024x784 683-1238 -> 609-636, TN 64x256x784 179-349 ->
    // 168-188.
    // (With B in L2, MC is large, so a pre-packed B splits by columns up to MC rows.)
    const bool by_rows = split_by_rows(T);
    // Each thread packs B panels [q0, q1) of a block below. Split by columns it multiplies
    // exactly those, so only the row split waits for the others' panels; but the next K or N
    // block puts each thread's panels at other offsets (its depth kb and panel count differ),
    // so before packing one, every thread must be done with the last (the review caught
    // NN 260x1024x(kc + 37) on 2 threads overwriting panels still in use). (With B in L2 the
    // B blocks repeat for each A block: at the same offsets when there is one K and one N
    // block, so no wait is needed for M > MC alone.)
    const bool wait_packed = !prepacked && by_rows;
    const bool wait_done = !prepacked && (by_rows || K > KC || N > NC);
    // This thread's share of B block (jc, pc): panels [q0, q1) of its `panels`, nb columns.
    auto pack_b_share = [&](int64_t jc, int64_t nb, int64_t panels, int64_t pc, int64_t kb) {
      if (prepacked) return;
      const auto [q0, q1] = split_range(panels, t, T);
      if (q0 >= q1) return;
      const int64_t j0 = jc + q0 * nr, cols = std::min(nb - q0 * nr, (q1 - q0) * nr);
      float* dstb = bpack + q0 * nr * kb;
      if (trans_b && kr.pack_bt) kr.pack_bt(B + j0 * ldb + pc, ldb, kb, cols, dstb);
      else pack_b(trans_b, trans_b ? B + j0 * ldb + pc : B + pc * ldb + j0, ldb, kb, cols, kr,
                  dstb);
    };
    auto pack_a_block = [&](int64_t ic, int64_t mb, int64_t pc, int64_t kb) {
      if (!trans_a && kr.pack_a) kr.pack_a(A + ic * lda + pc, lda, mb, kb, apack);
      else pack_a(trans_a, trans_a ? A + pc * lda + ic : A + ic * lda + pc, lda, mb, kb, kr,
                  apack);
    };
    // Panel q of B block (jc, pc), kb deep.
    auto b_panel = [&](int64_t jc, int64_t q, int64_t pc, int64_t kb) -> const float* {
      return prepacked ? prepacked + (jc / nr + q) * K * nr + pc * nr : bpack + q * nr * kb;
    };
    // One micro-tile: rows i.. (A micro-panel ap), columns j.. (B micro-panel bp) of C; the
    // epilogue once the last K block is in.
    auto tile = [&](int64_t kb, const float* ap, const float* bp, int64_t i, int64_t j, int rows,
                    int cols, bool acc, bool last) {
      float* ct = C + i * ldc + j;
      if (last && epi) {
        MicroEpilogue me;
        me.bias = ep->bias ? ep->bias + j : nullptr;
        me.z = ep->z ? ep->z + i * ldc + j : nullptr;
        me.relu = ep->act.act == Act::relu;
        kr.fn(kb, ap, bp, ct, ldc, acc, rows, cols, &me);
        if (!act_in_kernel) apply_act(ep->act, ct, ldc, rows, cols);
      } else {
        kr.fn(kb, ap, bp, ct, ldc, acc, rows, cols, nullptr);
      }
    };
    if (b_in_l2) {
      // A block (L3) outermost, then K blocks, then B blocks (L2); each A micro-panel (L1)
      // meets every B panel of the block. Every thread runs the same ic, pc, jc sequence (the
      // barriers are inside it) and, split by rows, takes its share of each A block's rows.
      // A blocks of near-equal height (edges rounded up to whole tiles), not MC rows and a
      // remainder: 2048 rows with MC = 2044 are 1036 + 1012, not 2044 + 4. (No block is empty
      // or taller than MC, the A buffer's height: checked for every M < 3000 and MC of 1-8
      // tiles of 4, 6 and 14 rows.)
      const int64_t nblk = (M + MC - 1) / MC;
      auto edge = [&](int64_t e) { return std::min(M, (M * e / nblk + mr - 1) / mr * mr); };
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t ic = edge(blk), mall = edge(blk + 1) - ic;
        const auto [s0, s1] = split_range(mall, t, T);
        const int64_t r0 = by_rows ? ic + s0 : ic;
        const int64_t mb = by_rows ? s1 - s0 : mall;
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kb = std::min<int64_t>(KC, K - pc);
          const bool acc = accumulate || pc > 0, last = pc + kb == K;
          if (mb > 0) pack_a_block(r0, mb, pc, kb);
          for (int64_t jc = 0; jc < N; jc += NC) {
            const int64_t nb = std::min<int64_t>(NC, N - jc);
            const int64_t panels = (nb + nr - 1) / nr;
            const auto [q0, q1] = split_range(panels, t, T);
            const int64_t p_lo = by_rows ? 0 : q0;
            const int64_t p_hi = by_rows ? panels : q1;
            pack_b_share(jc, nb, panels, pc, kb);
            if (wait_packed) bar.wait();  // B block complete
            for (int64_t ir = 0; ir < mb; ir += mr) {
              const int rows = (int)std::min<int64_t>(mr, mb - ir);
              for (int64_t q = p_lo; q < p_hi; ++q)
                tile(kb, apack + ir * kb, b_panel(jc, q, pc, kb), r0 + ir, jc + q * nr, rows,
                     (int)std::min<int64_t>(nr, nb - q * nr), acc, last);
            }
            if (wait_done) bar.wait();  // everyone is done with this B block
          }
        }
      }
      return;
    }
    // B block (L3) outermost, then K blocks, then A blocks (L2); each B micro-panel meets every
    // A micro-panel of the block.
    // NOTE: a split of the rows, not of the MR-row tiles: each thread's last tile may be
    // short, and the kernel runs a short tile at about its own height (1024 rows on 2
    // threads, evenly: 512 + 512 = 36 tiles and 8 rows each, not 37 tiles of which one is 2).
    const auto [s0, s1] = split_range(M, t, T);
    const int64_t m_lo = by_rows ? s0 : 0;
    const int64_t m_hi = by_rows ? s1 : M;
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nb = std::min<int64_t>(NC, N - jc);
      const int64_t panels = (nb + nr - 1) / nr;
      const auto [q0, q1] = split_range(panels, t, T);
      const int64_t p_lo = by_rows ? 0 : q0, p_hi = by_rows ? panels : q1;
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kb = std::min<int64_t>(KC, K - pc);
        // Later K blocks add onto what the earlier ones wrote; the epilogue waits for the last.
        const bool acc = accumulate || pc > 0;
        const bool last = pc + kb == K;
        pack_b_share(jc, nb, panels, pc, kb);
        if (wait_packed) bar.wait();  // B block complete
        for (int64_t ic = m_lo; ic < m_hi; ic += MC) {
          const int64_t mb = std::min<int64_t>(MC, m_hi - ic);
          pack_a_block(ic, mb, pc, kb);
          for (int64_t q = p_lo; q < p_hi; ++q) {
            const float* bp = b_panel(jc, q, pc, kb);
            const int cols = (int)std::min<int64_t>(nr, nb - q * nr);
            for (int64_t ir = 0; ir < mb; ir += mr)
              tile(kb, apack + ir * kb, bp, ic + ir, jc + q * nr,
                   (int)std::min<int64_t>(mr, mb - ir), cols, acc, last);
          }
        }
        if (wait_done) bar.wait();  // everyone is done with this B block before it is overwritten
      }
    }
  };
  if (nt <= 1) {
    SpinBarrier bar(1);
    body(0, 1, bar);
    return;
  }
  SpinBarrier bar((int)nt);
  SpinBarrier* barp = &bar;
  // A balanced region: every split above (rows, column panels, the cooperative packing of B)
  // is split_range's, in proportion to each thread's measured speed (core/parallel.h), when
  // there are enough row tiles (per A block) or column panels (per B block) for that.
  // NOTE (speed): Intel Xeon VM, 2 threads, _C.gemm into a preallocated C, in-process
  // interleaved against the even split, median of 10-16 pairs, with the learnt weights at
  // 0.494-0.506: 1024^3 360-369 -> 381-385 GFLOP/s (three runs), 768^3 366 -> 375, 2048^3
  // 393 -> 396-397, 512^3 356 -> 353. On a host where one vCPU runs slower for minutes
  // (session 16 saw 35-45%), every K and N block's barrier waited for it.
  const int64_t units = split_by_rows(nt) ? tiles_m / (b_in_l2 ? (M + MC - 1) / MC : 1)
                                           : tiles_n / ((N + NC - 1) / NC);
  auto region =
      units >= kBalancedMinUnitsPerThread * nt ? parallel_run_balanced : parallel_run_concurrent;
  region((int)nt, [&](int t, int T) {
    if (T == 1) {  // the pool could not give us the threads: run it all here
      SpinBarrier solo(1);
      body(0, 1, solo);
      return;
    }
    body(t, T, *barp);
  });
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              const GemmEpilogue* ep) {
  BSource src;
  src.trans = trans_b;
  src.B = B;
  src.ldb = ldb;
  // The kernel is read once: every thread of this call uses the same path.
  gemm_driver(gemm_kernel(), trans_a, M, N, K, A, lda, src, C, ldc, accumulate, ep);
}

GemmPackedB& GemmPackedB::operator=(GemmPackedB&& o) noexcept {
  if (this != &o) {
    aligned_free(p_);
    p_ = o.p_;
    K = o.K;
    N = o.N;
    kernel = o.kernel;
    o.p_ = nullptr;
    o.K = o.N = 0;
    o.kernel = nullptr;
  }
  return *this;
}

GemmPackedB::~GemmPackedB() { aligned_free(p_); }

GemmPackedB gemm_pack_b_f32(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb) {
  GemmPackedB r;
  const GemmKernelInfo& kr = gemm_kernel();
  r.kernel = &kr;
  r.K = std::max<int64_t>(K, 0);
  r.N = std::max<int64_t>(N, 0);
  if (r.K == 0 || r.N == 0) return r;
  const int nr = kr.nr;
  const int64_t panels = (r.N + nr - 1) / nr;
  r.p_ = static_cast<float*>(aligned_alloc_bytes(size_t(panels * nr * r.K) * sizeof(float)));
  float* dst = r.p_;
  // Whole panels per thread; a panel is K*NR floats of copying, so ~2^16 floats per thread
  // before the pool pays.
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / (r.K * nr));
  parallel_for(panels, grain, [&](int64_t q0, int64_t q1) {
    const int64_t j0 = q0 * nr, cols = std::min(r.N, q1 * nr) - j0;
    float* d = dst + q0 * r.K * nr;
    pack_b_panels(kr, trans_b, trans_b ? B + j0 * ldb : B + j0, ldb, r.K, cols, d);
  });
  return r;
}

void gemm_f32_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const GemmPackedB& B,
                     float* C, int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  BSource src;
  src.packed = B.data();
  // An empty B (K = 0 or N = 0) has no storage and no kernel needs to read it.
  const GemmKernelInfo& kr = B.kernel ? *B.kernel : gemm_kernel();
  gemm_driver(kr, trans_a, M, B.N, B.K, A, lda, src, C, ldc, accumulate, ep);
}

double peak_gflops(int threads) {
  double (*loop)(int64_t) = peak_fma_loop_generic;
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: loop = peak_fma_loop_avx512; break;
    case Isa::avx2: loop = peak_fma_loop_avx2; break;
    case Isa::generic: break;
  }
#endif
  const int nt = std::max(1, std::min(threads, get_num_threads()));
  using clock = std::chrono::steady_clock;
  // Every thread runs the same loop; the wall time of the slowest decides, as in a GEMM.
  auto timed = [&](int64_t iters) {
    std::atomic<double> flops{0.0};
    const auto t0 = clock::now();
    parallel_run(nt, [&](int, int) {
      const double f = loop(iters);
      double cur = flops.load();
      while (!flops.compare_exchange_weak(cur, cur + f)) {}
    });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    return std::pair<double, double>(flops.load(), s);
  };
  // Calibrate to ~20 ms per run (long enough to reach steady clocks, short enough to call
  // from a benchmark), then keep the best of a few runs: interference only ever slows it down.
  int64_t iters = 1 << 14;
  for (;;) {
    auto [f, s] = timed(iters);
    if (s > 2e-3 || iters > (int64_t(1) << 34)) { iters = int64_t(iters * (0.02 / std::max(s, 1e-9))) + 1; break; }
    iters *= 4;
  }
  double best = 0.0;
  for (int r = 0; r < 5; ++r) {
    auto [f, s] = timed(iters);
    best = std::max(best, f / s);
  }
  return best * 1e-9;
}

}  // namespace fastnn
