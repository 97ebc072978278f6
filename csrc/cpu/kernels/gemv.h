// Skinny products: the GEMMs with at most kGemvVectors rows or columns (a Linear layer's
// forward or backward at a batch of 1-4, a layer with 1-4 outputs), which gemm.cpp's gemv
// path runs as matrix-vector products instead of through the tiled kernels. Compiled once per
// ISA from gemv_impl.h. With nv <= kGemvVectors vectors x_m (x + m*xs, k floats each):
//   gemv_rows: y[m*ym + j*yj] = [y +] sum_p R[j*ld + p] * x_m[p]  (R's rows: dot products)
//   gemv_cols: y[m*ym + j]    = [y +] sum_p x_m[p] * R[p*ld + j]  (sums of R's rows)
//   gemv_panels: y[m*ym + j]  = [y +] sum_p x_m[p] * B[p][j]      (B pre-packed, see below)
// for j < n, p < k; accumulate: add onto y, else overwrite it. gemv_panels reads a B packed
// by gemm_pack_b_f32: nr-wide panels of k rows (panel q at P + q*k*nr, B[p][q*nr + c] at
// P[q*k*nr + p*nr + c]), nr a multiple of two of the ISA's registers. And the products with
// K = 1 (a Linear layer's weight gradient at batch 1), rank-1:
//   gemv_outer: C[i*ldc + j]  = [C +] a[i*as] * b[j]             for i < m, j < n.
#pragma once
#include <cstdint>

namespace fastnn {

constexpr int kGemvVectors = 4;

using GemvRowsKernel = void (*)(int nv, int64_t n, int64_t k, const float* R, int64_t ld,
                                const float* x, int64_t xs, float* y, int64_t ym, int64_t yj,
                                bool accumulate);
using GemvColsKernel = void (*)(int nv, int64_t n, int64_t k, const float* R, int64_t ld,
                                const float* x, int64_t xs, float* y, int64_t ym,
                                bool accumulate);
using GemvPanelsKernel = void (*)(int nv, int64_t n, int64_t k, const float* P, int64_t nr,
                                  const float* x, int64_t xs, float* y, int64_t ym,
                                  bool accumulate);
using GemvOuterKernel = void (*)(int64_t m, int64_t n, const float* a, int64_t as,
                                 const float* b, float* C, int64_t ldc, bool accumulate);

#define FASTNN_GEMV_DECLARE(isa)                                                          \
  void gemv_rows_##isa(int nv, int64_t n, int64_t k, const float* R, int64_t ld,          \
                       const float* x, int64_t xs, float* y, int64_t ym, int64_t yj,      \
                       bool accumulate);                                                  \
  void gemv_cols_##isa(int nv, int64_t n, int64_t k, const float* R, int64_t ld,          \
                       const float* x, int64_t xs, float* y, int64_t ym, bool accumulate);  \
  void gemv_panels_##isa(int nv, int64_t n, int64_t k, const float* P, int64_t nr,        \
                         const float* x, int64_t xs, float* y, int64_t ym, bool accumulate);  \
  void gemv_outer_##isa(int64_t m, int64_t n, const float* a, int64_t as, const float* b,  \
                        float* C, int64_t ldc, bool accumulate);
FASTNN_GEMV_DECLARE(generic)
#ifdef FASTNN_X86
FASTNN_GEMV_DECLARE(avx2)
FASTNN_GEMV_DECLARE(avx512)
#endif
#undef FASTNN_GEMV_DECLARE

}  // namespace fastnn
