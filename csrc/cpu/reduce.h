// Reduction kernels. Every reduction is over the middle dim of a contiguous array viewed as
// (outer, r, inner): the op layer maps any set of dims onto one or more such passes.
#pragma once
#include <cstdint>

namespace fastnn {

// out[o, i] = sum_j x[o, j, i] / divisor.  x: (outer, r, inner); out: (outer, inner),
// overwritten. divisor = 1 for sum, the element count for mean (0/0 gives NaN: mean of empty).
void sum_f32(const float* x, int64_t outer, int64_t r, int64_t inner, double divisor, float* out);
// Integer sum wraps on overflow, as PyTorch.
void sum_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out);

// Max (is_max) or min over j: val (outer, inner) and idx (outer, inner), overwritten; idx may
// be nullptr. First index wins ties; NaN beats every number (first NaN wins). r >= 1.
void extreme_f32(bool is_max, const float* x, int64_t outer, int64_t r, int64_t inner,
                 float* val, int64_t* idx);
void extreme_i64(bool is_max, const int64_t* x, int64_t outer, int64_t r, int64_t inner,
                 int64_t* val, int64_t* idx);

// dx[o, j, i] = (j == idx[o, i]) ? g[o, i] : 0.  g, idx: (outer, inner); dx: (outer, r, inner),
// overwritten.
void scatter_dim_f32(const float* g, const int64_t* idx, int64_t outer, int64_t r, int64_t inner,
                     float* dx);

// Backward of a max/min over all n elements whose result is v: g split evenly among the
// elements equal to v (all NaNs when v is NaN), as PyTorch. x: (n); dx: (n), overwritten.
void extreme_all_bwd_f32(const float* x, int64_t n, float v, float g, float* dx);

}  // namespace fastnn
