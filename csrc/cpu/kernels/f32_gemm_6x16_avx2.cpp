// AVX2+FMA micro-kernel: a 6x16 tile of C in 12 ymm accumulators; per k step two B loads and
// six broadcasts of A feed 12 FMAs (16 ymm registers in all, none spilled).
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 6, NR = 16;

// a: packed (k, MR); b: packed (k, NR); c: (MR, NR) with leading dimension ldc.
void f32_gemm_6x16_avx2(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                        bool accumulate) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
      c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, c0[i]);
    _mm256_storeu_ps(ci + 8, c1[i]);
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx2() {
  // kc*NR*4 = 16 KiB B micro-panel (L1), mc*kc*4 = 144 KiB A block (L2).
  static const GemmKernelInfo info{"f32_gemm_6x16_avx2", MR, NR, 144, 256, 3072,
                                   f32_gemm_6x16_avx2};
  return info;
}

}  // namespace fastnn
