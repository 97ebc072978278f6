// Softmax-family kernels (csrc/cpu/softmax.cpp) on raw, C-contiguous buffers.
//
// An N-d tensor reduced along one dim is viewed as (outer, dim, inner): element (o, k, j)
// sits at o*dim*inner + k*inner + j. inner == 1 (the last dim) is the hot case: each row is
// contiguous. Outputs are always overwritten, never accumulated.
#pragma once
#include <cstdint>
#include <cstring>

#include "cpu/fastmath.h"

namespace fastnn {

// exp_f32: cpu/fastmath.h.

// y[k] = exp((x[k] - a) - b) * s over a row: the exp loop of softmax and cross-entropy,
// compiled for the baseline, AVX2+FMA and AVX-512 (target attributes in softmax.cpp) and
// chosen by fastnn::active_isa(), so FASTNN_ISA forces it like every other kernel path.
// y may alias x.
void exp_row(const float* x, float a, float b, float s, float* y, int64_t n);
// The same, returning sum_k y[k] (in double) from the same pass.
double exp_row_sum(const float* x, float a, float b, float s, float* y, int64_t n);

// max(x[0..n)) ignoring NaN (v > m is false for NaN), -inf for an empty row.
// Per ISA (csrc/cpu/kernels/rowops_*.cpp), chosen by fastnn::active_isa() like exp_row.
float row_max(const float* x, int64_t n);

// The longest row the active ISA's short-row register paths take in one call
// (softmax_rows_short_<isa>, ce_*_rows_short_<isa> in kernels/rowops.h): 63 floats on
// AVX-512 (4 registers of 16), 32 on AVX2 (4 of 8), 0 where there are none.
int64_t short_row_max();

// sum(x[0..n)) and sum(a[k]*b[k]) accumulated in double (the products exactly): next to
// exp() this costs nothing and keeps rows of 1000+ classes accurate. Per ISA, like row_max.
double row_sum_f64(const float* x, int64_t n);
double row_dot_f64(const float* a, const float* b, int64_t n);

// log == false: y = softmax(x); log == true: y = log_softmax(x).
// x: (outer, dim, inner), y: (outer, dim, inner).
void softmax_fwd(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log);

// Given the forward output y (probabilities, or log-probabilities when log):
//   softmax:     dx = y * (dy - sum_k(dy * y))
//   log_softmax: dx = dy - exp(y) * sum_k(dy)
// dy, y, dx: (outer, dim, inner); dx overwritten.
void softmax_bwd(const float* dy, const float* y, float* dx, int64_t outer, int64_t dim,
                 int64_t inner, bool log);

// idx[o, j] = the first k maximising x[o, k, j]; a NaN counts as larger than any number
// (the first NaN wins), as in PyTorch. dim >= 1.
// x: (outer, dim, inner), idx: (outer, inner).
void argmax_f32(const float* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner);
void argmax_i64(const int64_t* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner);

}  // namespace fastnn
