// Row reductions of softmax and cross-entropy, one version per ISA (rowops_<isa>.cpp get
// that ISA's compiler flags); csrc/cpu/softmax.cpp chooses with fastnn::active_isa().
//
// NOTE: these are written with intrinsics rather than left to the auto-vectoriser: a running
// max or a sum is a loop-carried reduction that GCC will not reassociate without
// -ffast-math, and the baseline build turned the plain loops into scalar maxss/addsd chains
// (measured: 0.4 ns per element, most of a 1024x1000 cross-entropy forward).
#pragma once
#include <cstdint>

namespace fastnn {

float row_max_avx512(const float* x, int64_t n);
double row_sum_f64_avx512(const float* x, int64_t n);
double row_dot_f64_avx512(const float* a, const float* b, int64_t n);

// y[k] = exp((x[k] - a) - b) * s (the contract of exp_row in cpu/softmax.h); the second
// form also returns sum_k y[k] in double, in the same pass.
void exp_row_avx512(const float* x, float a, float b, float s, float* y, int64_t n);
double exp_row_sum_avx512(const float* x, float a, float b, float s, float* y, int64_t n);

// softmax / log_softmax of `rows` rows of n < 64 floats (softmax_row's contract, one call).
void softmax_rows_short_avx512(const float* x, float* y, int64_t rows, int64_t n, bool log);

// Cross-entropy forward / backward (cpu/loss.cpp's contract) for rows of c < 64 classes.
void ce_fwd_rows_short_avx512(const float* x, const int64_t* t, float* loss, float* stats,
                              int64_t n, int64_t c, int64_t ignore_index);
void ce_bwd_rows_short_avx512(const float* x, const int64_t* t, const float* stats,
                              const float* g, int64_t g_stride, float scale, float* dx,
                              int64_t n, int64_t c, int64_t ignore_index);

// softmax / log_softmax over a strip of w columns whose dim runs `inner` floats apart, and
// its backward (cpu/softmax.cpp's softmax_strip / softmax_bwd_strip; softmax_strip_impl.h).
void softmax_strip_avx512(const float* x, float* y, int64_t dim, int64_t inner, int64_t w,
                          bool log);
void softmax_bwd_strip_avx512(const float* dy, const float* y, float* dx, int64_t dim,
                              int64_t inner, int64_t w, bool log);
void softmax_strip_avx2(const float* x, float* y, int64_t dim, int64_t inner, int64_t w,
                        bool log);
void softmax_bwd_strip_avx2(const float* dy, const float* y, float* dx, int64_t dim,
                            int64_t inner, int64_t w, bool log);

// max() / min() of n >= 1 floats: the value, NaN if any element is NaN (as PyTorch's).
float row_max_nan_avx512(const float* x, int64_t n);
float row_min_nan_avx512(const float* x, int64_t n);
float row_max_nan_avx2(const float* x, int64_t n);
float row_min_nan_avx2(const float* x, int64_t n);

// Cross-entropy over a strip of w positions whose class dim runs `inner` floats apart
// (cpu/loss.cpp's contract for (N, C, d1, ..., dk) logits; softmax_strip_impl.h).
void ce_fwd_strip_avx512(const float* x, const int64_t* t, float* loss, float* stats, int64_t c,
                         int64_t inner, int64_t w, int64_t ignore_index);
void ce_bwd_strip_avx512(const float* x, const int64_t* t, const float* stats, const float* g,
                         int64_t g_stride, float scale, float* dx, int64_t c, int64_t inner,
                         int64_t w, int64_t ignore_index);
void ce_fwd_strip_avx2(const float* x, const int64_t* t, float* loss, float* stats, int64_t c,
                       int64_t inner, int64_t w, int64_t ignore_index);
void ce_bwd_strip_avx2(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t c, int64_t inner,
                       int64_t w, int64_t ignore_index);

float row_max_avx2(const float* x, int64_t n);
void exp_row_avx2(const float* x, float a, float b, float s, float* y, int64_t n);
double exp_row_sum_avx2(const float* x, float a, float b, float s, float* y, int64_t n);
// The short-row paths above for AVX2, rows of at most 32 floats (4 registers).
void softmax_rows_short_avx2(const float* x, float* y, int64_t rows, int64_t n, bool log);
void ce_fwd_rows_short_avx2(const float* x, const int64_t* t, float* loss, float* stats,
                            int64_t n, int64_t c, int64_t ignore_index);
void ce_bwd_rows_short_avx2(const float* x, const int64_t* t, const float* stats,
                            const float* g, int64_t g_stride, float scale, float* dx,
                            int64_t n, int64_t c, int64_t ignore_index);
double row_sum_f64_avx2(const float* x, int64_t n);
double row_dot_f64_avx2(const float* a, const float* b, int64_t n);

}  // namespace fastnn
