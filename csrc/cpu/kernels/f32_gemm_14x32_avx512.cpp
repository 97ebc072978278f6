// AVX-512 micro-kernel: a 14x32 tile of C in 28 zmm accumulators; per k step two B loads and
// 14 broadcasts of A feed 28 FMAs. 28 + 2 + 1 registers of the 32 are live; 14 rows hide the
// 4-cycle FMA latency on both FMA pipes. Edge tiles use AVX-512 masks (no scratch tile), and
// bias + ReLU are applied in registers before the single store of C.
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 14, NR = 32;

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
  for (int i = 0; i < MR; ++i) {
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

}  // namespace

const GemmKernelInfo& gemm_kernel_avx512() {
  static const GemmKernelInfo info{"f32_gemm_14x32_avx512", MR, NR, 252, 512, 4096,
                                   f32_gemm_14x32_avx512};
  return info;
}

}  // namespace fastnn
