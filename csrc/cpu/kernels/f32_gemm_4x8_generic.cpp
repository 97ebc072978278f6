// Portable micro-kernel (baseline x86-64 / any CPU): a 4x8 tile of C in a local array the
// compiler keeps in registers (8 SSE registers at baseline) and vectorises over the 8 columns.
// It is the fallback path and the reference the SIMD kernels are tested against.
#include "cpu/gemm.h"

namespace fastnn {

void finish_edge_tile(const float* tile, int64_t ldt, float* c, int64_t ldc, bool accumulate,
                      int rows, int cols, const MicroEpilogue* ep) {
  const float* bias = ep ? ep->bias : nullptr;
  float* z = ep ? ep->z : nullptr;
  const bool relu = ep && ep->relu;
  for (int i = 0; i < rows; ++i) {
    const float* ti = tile + i * ldt;
    float* ci = c + i * ldc;
    for (int j = 0; j < cols; ++j) {
      float v = ti[j];
      if (accumulate) v += ci[j];
      if (bias) v += bias[j];
      if (z) z[i * ldc + j] = v;
      ci[j] = relu ? act_fwd<Act::relu>(v, 1.f, 0.f) : v;
    }
  }
}

namespace {

constexpr int MR = 4, NR = 8;

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc.
void f32_gemm_4x8_generic(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                          bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  finish_edge_tile(&acc[0][0], NR, c, ldc, accumulate, rows, cols, ep);
}

}  // namespace

const GemmKernelInfo& gemm_kernel_generic() {
  static const GemmKernelInfo info = [] {
    GemmKernelInfo k{"f32_gemm_4x8_generic", MR, NR, 128, 256, 2048, f32_gemm_4x8_generic};
    k.gemv_rows = gemv_rows_generic;
    k.gemv_cols = gemv_cols_generic;
    static_assert(NR % 2 == 0, "gemv_panels reads a panel in blocks of 2 registers");
    k.gemv_panels = gemv_panels_generic;
    k.gemv_outer = gemv_outer_generic;
    return k;
  }();
  return info;
}

}  // namespace fastnn
