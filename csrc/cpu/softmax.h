// Softmax-family kernels (csrc/cpu/softmax.cpp) on raw, C-contiguous buffers.
//
// An N-d tensor reduced along one dim is viewed as (outer, dim, inner): element (o, k, j)
// sits at o*dim*inner + k*inner + j. inner == 1 (the last dim) is the hot case: each row is
// contiguous. Outputs are always overwritten, never accumulated.
#pragma once
#include <cstdint>

namespace fastnn {

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
