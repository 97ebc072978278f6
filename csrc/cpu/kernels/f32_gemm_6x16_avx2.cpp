// AVX2+FMA micro-kernel: a 6x16 tile of C in 12 ymm accumulators; per k step two B loads and
// six broadcasts of A feed 12 FMAs (16 ymm registers in all, none spilled). Full tiles take
// bias + ReLU in registers; edge tiles go through a local tile (AVX2 has no cheap masks).
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 6, NR = 16;

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc.
void f32_gemm_6x16_avx2(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                        bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  const bool full = rows == MR && cols == NR;
  if (full)  // see the AVX-512 kernel: C is only touched after the K loop
    for (int i = 0; i < MR; ++i) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  alignas(32) float tile[MR * NR];
  float* dst = c;
  int64_t ld = ldc;
  if (!full) {  // finish in a local tile, then copy the valid part (C may end at this tile)
    dst = tile;
    ld = NR;
  }
  const bool has_bias = full && ep && ep->bias, relu = full && ep && ep->relu;
  float* z = full && ep ? ep->z : nullptr;
  const __m256 bias0 = has_bias ? _mm256_loadu_ps(ep->bias) : _mm256_setzero_ps();
  const __m256 bias1 = has_bias ? _mm256_loadu_ps(ep->bias + 8) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = dst + i * ld;
    __m256 v0 = c0[i], v1 = c1[i];
    if (accumulate && full) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
    }
    if (has_bias) {
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    if (z) {
      _mm256_storeu_ps(z + i * ldc, v0);
      _mm256_storeu_ps(z + i * ldc + 8, v1);
    }
    if (relu) {  // NOTE: max(0, v) passes NaN and -0 through, as act_fwd<relu> does
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    _mm256_storeu_ps(ci, v0);
    _mm256_storeu_ps(ci + 8, v1);
  }
  if (!full) finish_edge_tile(tile, NR, c, ldc, accumulate, rows, cols, ep);
}

// Lanes [0, n) of a 16-column tile as two vmaskmovps masks (loads through them never touch
// memory past the last valid column).
inline void col_masks(int n, __m256i* m0, __m256i* m1) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  *m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  *m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
}

// One 6x16 tile of the small-shape kernel: the K loop over the caller's A rows ar[] (columns
// cs_a apart) and B rows (ldb apart), then the epilogue. A function of its own, with the
// accumulators local to it, so that they stay in registers: written as a lambda capturing
// them by reference, GCC stored all 12 back to the stack on every k step (64^3 ran at 28% of
// the FMA peak on Zen 3).
template <bool Masked>
__attribute__((always_inline)) inline void small_tile(
    int64_t K, const float* const* ar, int64_t cs_a, const float* bp, int64_t ldb, float* C,
    int64_t ldc, float* z, int rows, __m256i m0, __m256i m1, bool accumulate, bool has_bias,
    __m256 bias0, __m256 bias1, bool relu) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = zero;
  const float* a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3], *a4 = ar[4], *a5 = ar[5];
  for (int64_t p = 0; p < K; ++p, bp += ldb) {
    const __m256 b0 = Masked ? _mm256_maskload_ps(bp, m0) : _mm256_loadu_ps(bp);
    const __m256 b1 = Masked ? _mm256_maskload_ps(bp + 8, m1) : _mm256_loadu_ps(bp + 8);
    const int64_t off = p * cs_a;
    const float* const rowp[MR] = {a0, a1, a2, a3, a4, a5};
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(rowp[i] + off);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
  }
  // (vmaskmovps stores are slow on some cores: plain ones for whole tiles)
  auto put = [&](float* p, __m256 a, __m256 b) {
    if (!Masked) {
      _mm256_storeu_ps(p, a);
      _mm256_storeu_ps(p + 8, b);
    } else {
      _mm256_maskstore_ps(p, m0, a);
      _mm256_maskstore_ps(p + 8, m1, b);
    }
  };
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= rows) break;
    float* ci = C + i * ldc;
    __m256 v0 = c0[i], v1 = c1[i];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
    }
    if (has_bias) {
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    if (z) put(z + i * ldc, v0, v1);
    if (relu) {  // max(0, v) passes NaN and -0 through, as act_fwd<relu>
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    put(ci, v0, v1);
  }
}

// Small-shape kernel (see GemmSmallKernel): tiles of 6 rows x 16 columns straight from the
// caller's A and B, no packing: the fixed cost of packing was most of a small product's time
// on this path (64x64x64 took 11 us against the AVX-512 small path's 3.7). Each of the 6 rows
// of A has its own pointer; a short last tile re-reads its last valid row (results dropped);
// column edges load and store through masks.
void f32_gemm_small_avx2(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A,
                         int64_t rs_a, int64_t cs_a, const float* B, int64_t ldb, int64_t bps,
                         float* C, int64_t ldc, bool accumulate, const MicroEpilogue* ep) {
  const __m256 zero = _mm256_setzero_ps();
  const bool has_bias = ep && ep->bias, relu = ep && ep->relu;
  for (int64_t j0 = n0; j0 < n1; j0 += NR) {
    const int cols = (int)std::min<int64_t>(NR, n1 - j0);
    __m256i m0, m1;
    col_masks(cols, &m0, &m1);
    const float* bp0 = B + (j0 / NR) * bps;
    const __m256 bias0 = has_bias ? _mm256_maskload_ps(ep->bias + j0, m0) : zero;
    const __m256 bias1 = has_bias ? _mm256_maskload_ps(ep->bias + j0 + 8, m1) : zero;
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int rows = (int)std::min<int64_t>(MR, M - i0);
      const float* ar[MR];
      for (int i = 0; i < MR; ++i) ar[i] = A + (i0 + (i < rows ? i : rows - 1)) * rs_a;
      float* ct = C + i0 * ldc + j0;
      float* zt = ep && ep->z ? ep->z + i0 * ldc + j0 : nullptr;
      if (cols == NR)
        small_tile<false>(K, ar, cs_a, bp0, ldb, ct, ldc, zt, rows, m0, m1, accumulate,
                          has_bias, bias0, bias1, relu);
      else
        small_tile<true>(K, ar, cs_a, bp0, ldb, ct, ldc, zt, rows, m0, m1, accumulate,
                         has_bias, bias0, bias1, relu);
    }
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx2() {
  // The small path also takes the wide products of a small batch, for K up to 256 (a B panel
  // of at most 16 KiB, half of a 32 KiB L1) and op(A) = A. Measured on Zen 3, 1 thread, us,
  // packed -> small: NN 64x256x128 61.6 -> 49.2, 64x784x256 343 -> 307, 200x300x100 164 ->
  // 132; NT 64x128x256 65 -> 56. Deeper K or a transposed A were slower unpacked: NN
  // 128x512x384 599 -> 715, TN 256x784x64 316 -> 337, 128x256x64 56 -> 60.
  static const GemmKernelInfo info{"f32_gemm_6x16_avx2", MR, NR, 144, 256, 3072,
                                   f32_gemm_6x16_avx2, f32_gemm_small_avx2, nullptr, nullptr,
                                   nullptr, nullptr, /*small_wide=*/true,
                                   /*small_wide_max_k=*/256, /*small_wide_trans_a=*/false};
  return info;
}

}  // namespace fastnn
