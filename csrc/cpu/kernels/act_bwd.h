// The activation-backward + bias-gradient pass of a linear layer on SIMD registers, for the
// activations whose derivative is a function of the output (relu, sigmoid, tanh); ops/dense.cpp
// chooses with active_isa() and keeps the scalar loop for the generic path and gelu/softplus.
// Compiled once per ISA from act_bwd_impl.h.
#pragma once
#include <cstdint>

#include "cpu/act.h"

namespace fastnn {

// On rows [0, rows) x columns [j0, j1) of row-major (rows, cols) arrays:
//   dz = dy * act'(y)   (relu: 0 where y <= 0, else dy, NaN y included, as PyTorch's
//                        threshold_backward)
//   db[j] = sum over rows of dz[., j], in row order (db may be null)
// a: relu, sigmoid or tanh; the result is bit-identical to the scalar loop in ops/dense.cpp.
#ifdef FASTNN_X86
void act_bwd_cols_avx512(Act a, const float* dy, const float* y, float* dz, float* db,
                         int64_t rows, int64_t cols, int64_t j0, int64_t j1);
void act_bwd_cols_avx2(Act a, const float* dy, const float* y, float* dz, float* db,
                       int64_t rows, int64_t cols, int64_t j0, int64_t j1);
#endif

}  // namespace fastnn
