// AVX-512 micro-kernel: a 14x32 tile of C in 28 zmm accumulators; per k step two B loads and
// 14 broadcasts of A (folded into the FMA as {1to16} memory operands) feed 28 FMAs. 28 + 2
// registers of the 32 are live; 14 rows hide the 4-cycle FMA latency on both FMA ports.
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 14, NR = 32;

// a: packed (k, MR); b: packed (k, NR); c: (MR, NR) with leading dimension ldc.
void f32_gemm_14x32_avx512(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                           bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(ci));
      c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(ci + 16));
    }
    _mm512_storeu_ps(ci, c0[i]);
    _mm512_storeu_ps(ci + 16, c1[i]);
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx512() {
  // kc*NR*4 = 32 KiB B micro-panel (L1), mc*kc*4 = 168 KiB A block (L2).
  static const GemmKernelInfo info{"f32_gemm_14x32_avx512", MR, NR, 168, 256, 3072,
                                   f32_gemm_14x32_avx512};
  return info;
}

}  // namespace fastnn
