// Portable micro-kernel (baseline x86-64 / any CPU): a 4x8 tile of C in a local array the
// compiler keeps in registers (8 SSE registers at baseline) and vectorises over the 8 columns.
// It is the fallback path and the reference the SIMD kernels are tested against.
#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 4, NR = 8;

// a: packed (k, MR); b: packed (k, NR); c: (MR, NR) with leading dimension ldc.
void f32_gemm_4x8_generic(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                          bool accumulate) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate)
      for (int j = 0; j < NR; ++j) ci[j] += acc[i][j];
    else
      for (int j = 0; j < NR; ++j) ci[j] = acc[i][j];
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_generic() {
  // kc*NR*4 = 8 KiB B micro-panel (L1), mc*kc*4 = 128 KiB A block (L2).
  static const GemmKernelInfo info{"f32_gemm_4x8_generic", MR, NR, 128, 256, 2048,
                                   f32_gemm_4x8_generic};
  return info;
}

}  // namespace fastnn
