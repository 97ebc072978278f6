// AVX-512 micro-kernel: a 14x32 tile of C in 28 zmm accumulators; per k step two B loads and
// 14 broadcasts of A feed 28 FMAs. 28 + 2 + 1 registers of the 32 are live; 14 rows hide the
// 4-cycle FMA latency on both FMA pipes. Edge tiles use AVX-512 masks (no scratch tile), and
// bias + ReLU are applied in registers before the single store of C.
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 14, NR = 32;

// c(rows, 32 masked by m0|m1) = [c +] acc (+ bias, z store, ReLU), rows <= R.
template <int R>
inline void store_tile(const __m512* c0, const __m512* c1, float* c, int64_t ldc,
                       bool accumulate, int rows, __mmask16 m0, __mmask16 m1,
                       const MicroEpilogue* ep) {
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  const bool has_bias = ep && ep->bias;
  if (has_bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, ep->bias);
    bias1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
  }
  float* z = ep ? ep->z : nullptr;
  const bool relu = ep && ep->relu;
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
    __m512 v0 = c0[i], v1 = c1[i];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    if (has_bias) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (z) {
      _mm512_mask_storeu_ps(z + i * ldc, m0, v0);
      _mm512_mask_storeu_ps(z + i * ldc + 16, m1, v1);
    }
    if (relu) {
      // NOTE: maxps returns its second operand when either is NaN (or both are zeros), so
      // max(0, v) passes NaN and -0 through exactly like act_fwd<relu> (v < 0 ? 0 : v).
      v0 = _mm512_max_ps(zero, v0);
      v1 = _mm512_max_ps(zero, v1);
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    _mm512_mask_storeu_ps(ci + 16, m1, v1);
  }
}

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc.
void f32_gemm_14x32_avx512(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                           bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  // The C tile is touched only after the K loop: start pulling it into L1 now so the final
  // read-modify-write does not stall on 28 cache misses (C rows are ldc apart, so the hardware
  // prefetcher does not see them as a stream).
  for (int i = 0; i < rows; ++i) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    _mm_prefetch((const char*)(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF)
                       : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
  store_tile<MR>(c0, c1, c, ldc, accumulate, rows, m0, m1, ep);
}

// Small-shape kernel: 8x32 tiles straight from the caller's A and B (see GemmSmallKernel).
// NOTE: 8 rows (16 accumulators) rather than 14: the rows of an unpacked A need one address
// each, and 8 keep them in general-purpose registers; two FMA pipes x 4-cycle latency need
// only 8 independent accumulators. Row edges re-read the last valid row (results dropped),
// column edges use masked loads and stores, so nothing outside A, B or C is touched.
constexpr int SMR = 8;

void f32_gemm_small_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A,
                           int64_t rs_a, int64_t cs_a, const float* B, int64_t ldb, int64_t bps,
                           float* C, int64_t ldc, bool accumulate, const MicroEpilogue* ep) {
  for (int64_t j0 = n0; j0 < n1; j0 += NR) {
    const int cols = (int)std::min<int64_t>(NR, n1 - j0);
    const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF)
                         : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
    for (int64_t i0 = 0; i0 < M; i0 += SMR) {
      const int rows = (int)std::min<int64_t>(SMR, M - i0);
      const float* ar[SMR];
#pragma GCC unroll 8
      for (int i = 0; i < SMR; ++i) ar[i] = A + (i0 + (i < rows ? i : rows - 1)) * rs_a;
      __m512 c0[SMR], c1[SMR];
#pragma GCC unroll 8
      for (int i = 0; i < SMR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
      const float* bp = B + (j0 / NR) * bps;
      if (m1) {
        for (int64_t p = 0; p < K; ++p, bp += ldb) {
          const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
          const int64_t off = p * cs_a;
#pragma GCC unroll 8
          for (int i = 0; i < SMR; ++i) {
            const __m512 ai = _mm512_set1_ps(ar[i][off]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
          }
        }
      } else {  // at most 16 columns: half the work
        for (int64_t p = 0; p < K; ++p, bp += ldb) {
          const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
          const int64_t off = p * cs_a;
#pragma GCC unroll 8
          for (int i = 0; i < SMR; ++i)
            c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(ar[i][off]), b0, c0[i]);
        }
      }
      MicroEpilogue me;
      if (ep) {
        me = *ep;
        if (me.bias) me.bias += j0;
        if (me.z) me.z += i0 * ldc + j0;
      }
      store_tile<SMR>(c0, c1, C + i0 * ldc + j0, ldc, accumulate, rows, m0, m1,
                      ep ? &me : nullptr);
    }
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx512() {
  static const GemmKernelInfo info{"f32_gemm_14x32_avx512", MR, NR, 252, 512, 4096,
                                   f32_gemm_14x32_avx512, f32_gemm_small_avx512};
  return info;
}

}  // namespace fastnn
