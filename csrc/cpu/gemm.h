// float32 GEMM, BLIS-style: C(M,N) = op(A)·op(B) [+ C], op = optional transpose, with a fused
// epilogue (bias per column, activation, optional store of the pre-activation).
//
// Structure (why): the micro-kernel keeps an MR x NR tile of C in registers and streams K
// through it with broadcast-FMA; packing A into MR-row panels and B into NR-column panels
// makes every load in that loop unit-stride and aligned, whatever the transposes and leading
// dimensions were. KC/MC/NC blocking keeps the B panel in L2/L3 and the A panel in L1.
#pragma once
#include <cstdint>
#include <utility>

#include "cpu/act.h"
#include "cpu/kernels/gemv.h"

namespace fastnn {

// Applied to each finished output element c (after the whole K reduction):
//   v = c + bias[j];  if (z) z[i*ldc + j] = v;  c = act(v)
struct GemmEpilogue {
  const float* bias = nullptr;  // (N,) or null
  ActParams act{};              // Act::none: identity
  float* z = nullptr;           // (M, N) with leading dimension ldc, or null
};

// C(M,N) = op(A)(M,K) · op(B)(K,N), then the epilogue (if any).
//   A: trans_a ? (K, M) : (M, K), row-major with leading dimension lda
//   B: trans_b ? (N, K) : (K, N), row-major with leading dimension ldb
//   C: (M, N) row-major with leading dimension ldc; overwritten (accumulate=false, beta=0)
//      or added to (accumulate=true, beta=1). K = 0 gives C = 0 (or C unchanged) + epilogue.
// Multithreaded on the library pool when the problem is large enough.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              const GemmEpilogue* ep = nullptr);

struct GemmKernelInfo;

// op(B) (K, N) packed once, for a B that many GEMMs share (an RNN's W_hh, used at every step):
// gemm_f32 re-packs its B on every call, which for short-and-wide products (M = a batch of 32
// rows against a 2048 x 512 weight) is a whole extra pass over the weight per call.
// Layout: ceil(N / NR) panels of the packing kernel's NR columns, panel q at data() + q*K*NR,
// each K rows of NR consecutive floats (columns past N zero), 64-byte aligned: the micro-
// kernel's B panel format over the whole K, so any K block of a panel is contiguous too.
// Move-only; owns its storage.
struct GemmPackedB {
  GemmPackedB() = default;
  GemmPackedB(GemmPackedB&& o) noexcept { *this = std::move(o); }
  GemmPackedB& operator=(GemmPackedB&& o) noexcept;
  GemmPackedB(const GemmPackedB&) = delete;
  GemmPackedB& operator=(const GemmPackedB&) = delete;
  ~GemmPackedB();

  int64_t K = 0, N = 0;
  // The kernel whose NR the panels use; gemm_f32_packed multiplies with this kernel (not the
  // one active at call time), so a set_isa() between packing and use cannot mix formats.
  const GemmKernelInfo* kernel = nullptr;
  const float* data() const { return p_; }

 private:
  friend GemmPackedB gemm_pack_b_f32(bool, int64_t, int64_t, const float*, int64_t);
  float* p_ = nullptr;
};

// Packs op(B) (K, N) for the active kernel. B: trans_b ? (N, K) : (K, N), row-major with
// leading dimension ldb (as in gemm_f32). Multithreaded over panels when large.
GemmPackedB gemm_pack_b_f32(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb);

// gemm_f32 with a pre-packed op(B): C(M, N) = op(A)(M, K) · B [+ C], then the epilogue, where
// K, N are B's. Same arguments, results and threading as gemm_f32 (the same driver: only the
// packing of B is skipped); for small M the threads split B's column panels.
void gemm_f32_packed(bool trans_a, int64_t M, const float* A, int64_t lda, const GemmPackedB& B,
                     float* C, int64_t ldc, bool accumulate, const GemmEpilogue* ep = nullptr);

// ---- micro-kernels (csrc/cpu/kernels/f32_gemm_<MR>x<NR>_<isa>.cpp) -------------------------
// The part of the epilogue a micro-kernel applies while the tile is still in registers: bias,
// the store of the pre-activation, and ReLU. Other activations run on the finished tile (in
// L1) in the driver.
struct MicroEpilogue {
  const float* bias = nullptr;  // (cols,) for this tile, or null
  float* z = nullptr;           // (rows, cols) with leading dimension ldc, or null
  bool relu = false;
};
// ep for the tile at row i0, column j0 of the block it was made for: bias moved by j0, z by
// i0 rows of ldc and j0 (a null bias or z stays null).
inline MicroEpilogue micro_epilogue_at(const MicroEpilogue& ep, int64_t i0, int64_t j0,
                                       int64_t ldc) {
  MicroEpilogue e = ep;
  if (e.bias) e.bias += j0;
  if (e.z) e.z += i0 * ldc + j0;
  return e;
}
// c(rows, cols) (leading dimension ldc) = [c +] a·b over k steps, then the epilogue (if ep):
//   a: packed A panel, k x MR (for each p, MR consecutive floats: rows of that column)
//   b: packed B panel, k x NR (for each p, NR consecutive floats), 64-byte aligned
// rows <= MR, cols <= NR: an edge tile; the kernel reads and writes only that part of c (the
// packed panels are zero-padded, so the arithmetic is always a full tile). accumulate=false
// overwrites c.
using GemmMicroKernel = void (*)(int64_t k, const float* a, const float* b, float* c,
                                 int64_t ldc, bool accumulate, int rows, int cols,
                                 const MicroEpilogue* ep);

// Small-shape path: the whole C(M, N) = [C +] A·B + epilogue with no packing of A, for the
// small batches of training (M up to a few hundred rows): low fixed overhead, no A panel.
//   A element (i, p) = A[i*rs_a + p*cs_a] (any layout, read by scalar broadcasts)
//   B element (p, j) = B[(j / NR)*bps + p*ldb + j % NR]: row-major B has ldb = its row stride
//     and bps = NR; B packed in NR-wide panels (pack_b) has ldb = NR and bps = K*NR.
//   ep: bias (N,) / z (M, N; leading dimension ldc) / relu.
// Columns [n0, n1) only (n0 a multiple of NR), so threads can split the panels.
using GemmSmallKernel = void (*)(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A,
                                 int64_t rs_a, int64_t cs_a, const float* B, int64_t ldb,
                                 int64_t bps, float* C, int64_t ldc, bool accumulate,
                                 const MicroEpilogue* ep);

// Transposed small-shape path for C = A·Bᵀ with few rows (M) and many columns (N), the
// forward of a Linear layer on a small batch: computed as Cᵀ = B·Aᵀ, so the operand packed
// is A (M x K), not the larger B (N x K), and B is read in place.
//   ap: A's rows packed as pack_bt packs op(B) = Bᵀ (panel q, rows NR*q.., at ap + q*K*NR,
//       K rows of NR floats each, zero past M), 64-byte aligned
//   B element (j, p) = B[j*ldb + p] (row-major (N, K))
//   ep: bias (N,) / z (M, N; leading dimension ldc) / relu.
// Columns [n0, n1) of C only, so threads can split them (the driver splits at multiples of
// 16, 64 bytes of a row of C).
using GemmSmallTKernel = void (*)(int64_t M, int64_t n0, int64_t n1, int64_t K,
                                  const float* ap, const float* B, int64_t ldb, float* C,
                                  int64_t ldc, bool accumulate, const MicroEpilogue* ep);

struct GemmKernelInfo {
  const char* name;
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // default cache blocks (mc % mr == 0, nc % nr == 0); the driver
                       // re-derives them from the cache sizes read at run time
  GemmMicroKernel fn;
  GemmSmallKernel small = nullptr;  // null: small shapes take the packed path
  // Packs rows [0, kc) x columns [0, nc) of op(B) = Bᵀ (B: (nc, kc) rows of length >= kc,
  // leading dimension ldb) into NR-wide zero-padded panels, as the driver's pack_b(trans=true)
  // does, with SIMD transposes. Null: the driver's scalar gather.
  void (*pack_bt)(const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) = nullptr;
  GemmSmallTKernel small_t = nullptr;  // null: C = A·Bᵀ takes the other paths
  // Packs rows [0, mc) x columns [0, kc) of a row-major A (leading dimension lda) into MR-row
  // zero-padded panels, as the driver's pack_a(trans=false) does. Null: the scalar gather.
  void (*pack_a)(const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) = nullptr;
  // dst(cols, rows) = src(rows, cols)ᵀ, both row-major with leading dimensions lds and ldd.
  // Set where the small-shape kernel has tall tiles for an A with contiguous rows (rs_a = 1)
  // that a row-major A would gain from. Null: A is always read in place.
  void (*transpose)(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                    int64_t ldd) = nullptr;
  // Whether `small` also takes the wide products of a small batch (M <= 256, any N), not only
  // the tiny ones (see use_small_path in gemm.cpp): for K up to small_wide_max_k (0: any K
  // whose B panel, K x NR, fits in a quarter of L2), and with a transposed A (the TN weight
  // gradient) only where small_wide_trans_a.
  bool small_wide = true;
  int64_t small_wide_max_k = 0;
  bool small_wide_trans_a = true;
  // Copies `cols` consecutive floats of each of kc rows of src (leading dimension ld) into
  // R-wide zero-padded panels (panel q at dst + q*kc*R, rows of R floats), for R = MR (a
  // transposed A) and R = NR (a row-major B), as the driver's portable copy
  // (copy_panels_rows_any, memcpy of R floats a row) does. Null: that copy.
  void (*copy_panels)(int R, const float* src, int64_t ld, int64_t cols, int64_t kc,
                      float* dst) = nullptr;
  // Set where `small`, when it reads A through row pointers, takes the last columns of its
  // range in one pass if there are more than NR and at most this many (two panels: the second
  // read at B + bps; the driver, where it packs B a panel at a time, packs these two together
  // whichever way the kernel reads A). 0: panel by panel.
  int small_last_cols = 0;
  // The skinny products (M or N at most kGemvVectors) at this ISA's width (kernels/gemv.h).
  GemvRowsKernel gemv_rows = nullptr;
  GemvColsKernel gemv_cols = nullptr;
  GemvPanelsKernel gemv_panels = nullptr;  // (with a pre-packed B; NR a multiple of 2 registers)
  GemvOuterKernel gemv_outer = nullptr;    // (K = 1)
};

// The scalar tail every kernel may share: c(rows, cols) = [c +] tile, then the epilogue.
// tile: (rows, cols) with leading dimension ldt (the kernel's finished accumulators).
void finish_edge_tile(const float* tile, int64_t ldt, float* c, int64_t ldc, bool accumulate,
                      int rows, int cols, const MicroEpilogue* ep);

const GemmKernelInfo& gemm_kernel_generic();
#ifdef FASTNN_X86
const GemmKernelInfo& gemm_kernel_avx2();
const GemmKernelInfo& gemm_kernel_avx512();
#endif
// The kernel for fastnn::active_isa().
const GemmKernelInfo& gemm_kernel();

// Cache blocks the driver uses with kernel kr, derived from cache_sizes() (csrc/cpu/isa.h);
// FASTNN_GEMM_BLOCKS="mc,kc,nc[,order]" overrides them (a tuning aid; order 0 or 1 below).
struct GemmBlocks {
  int64_t mc, kc, nc;
  // The loop order (see gemm_driver). false: for each packed B block (kc x nc, in L3) and each
  // packed A block (mc x kc, in L2), every B micro-panel (kc x NR) meets every A micro-panel
  // (MR x kc) of the block: A streams from L2. true: for each packed A block (mc x kc, in L3)
  // and each packed B block (kc x nc, in L2), every A micro-panel (in L1) meets every B
  // micro-panel of the block: B streams from L2.
  bool b_in_l2 = false;
};
GemmBlocks gemm_blocks(const GemmKernelInfo& kr);
// Test hook: every later GEMM (on any thread) uses `b` instead of gemm_blocks' own choice (mc
// and nc rounded down to a multiple of the kernel's MR and NR, and up to one tile when
// smaller); nullptr goes back to gemm_blocks. Blocks (here and from FASTNN_GEMM_BLOCKS) are
// clamped to [1, kGemmBlockMax].
constexpr int64_t kGemmBlockMax = int64_t(1) << 24;
void set_gemm_blocks_override(const GemmBlocks* b);
// Test hooks: the blocks of the last GEMM on the calling thread that took the packed path
// (nullptr: none since the reset).
const GemmBlocks* gemm_last_blocks();
void gemm_reset_last_blocks();
// Test hook: how the small-shape path (A unpacked) last read B on this thread (1 from panels,
// packed by the call or pre-packed; 0 in place; -1 not run since gemm_reset_last_blocks).
int gemm_last_small_b();

// ---- peak probe (csrc/cpu/kernels/peak_fma_<isa>.cpp) ---------------------------------------
// Each runs `iters` rounds of independent multiply-adds on one thread and returns the flops done.
double peak_fma_loop_generic(int64_t iters);
#ifdef FASTNN_X86
double peak_fma_loop_avx2(int64_t iters);
double peak_fma_loop_avx512(int64_t iters);
#endif
// Measured float32 multiply-add peak in GFLOP/s of the active ISA's widest FMA, on `threads`
// threads of the library pool (capped at get_num_threads()): the physical ceiling every GEMM
// figure is compared to. Takes ~0.1 s.
double peak_gflops(int threads);

}  // namespace fastnn
