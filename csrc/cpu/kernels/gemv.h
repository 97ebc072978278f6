// Matrix-vector products: the GEMMs with one row or one column (a Linear layer's forward or
// backward at batch 1, a layer with one output), which gemm.cpp's gemv path runs instead of
// the tiled kernels. Compiled once per ISA from gemv_impl.h.
//   gemv_rows: y[j] = [y[j] +] sum_p R[j*ld + p] * x[p]   (R's rows are the dot products)
//   gemv_cols: y[j] = [y[j] +] sum_p x[p] * R[p*ld + j]   (y is a combination of R's rows)
// for j < n, p < k; x (k,) and y (n,) contiguous; accumulate: add onto y, else overwrite it.
#pragma once
#include <cstdint>

namespace fastnn {

using GemvKernel = void (*)(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                            float* y, bool accumulate);

void gemv_rows_generic(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                       float* y, bool accumulate);
void gemv_cols_generic(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                       float* y, bool accumulate);
#ifdef FASTNN_X86
void gemv_rows_avx2(int64_t n, int64_t k, const float* R, int64_t ld, const float* x, float* y,
                    bool accumulate);
void gemv_cols_avx2(int64_t n, int64_t k, const float* R, int64_t ld, const float* x, float* y,
                    bool accumulate);
void gemv_rows_avx512(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      float* y, bool accumulate);
void gemv_cols_avx512(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      float* y, bool accumulate);
#endif

}  // namespace fastnn
