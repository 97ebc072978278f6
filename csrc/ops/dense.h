// Dense ops on Tensors: linear (+bias +activation, fused into the GEMM epilogue), its
// backward, and matmul's 2-D and batched GEMMs. Argument checks live here; the math in
// csrc/cpu/gemm.cpp.
#pragma once
#include <utility>

#include "core/tensor.h"
#include "cpu/act.h"

namespace fastnn {

// y = act(x·wᵀ + b). x: (N, IN), w: (OUT, IN), b: (OUT,) or undefined.
// Returns (y (N, OUT), z): z = x·wᵀ + b, the pre-activation, only when the activation's
// backward needs it (gelu, softplus); undefined otherwise.
std::pair<Tensor, Tensor> linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                         const ActParams& p);

struct LinearGrads {
  Tensor dx, dw, db;  // undefined where not requested
};
// dZ = dy * act'(.), dx = dZ·w (N, IN), dw = dZᵀ·x (OUT, IN), db = Σ_rows dZ (OUT,).
// saved: z for gelu/softplus, y for relu/sigmoid/tanh, unused (may be undefined) for none.
LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                            const Tensor& saved, const ActParams& p, bool need_dx, bool need_dw,
                            bool need_db);

// c = op(a)·op(b), a and b 2-D. With `out` defined, writes into it (accumulate: out += ...)
// and returns it.
Tensor gemm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            const Tensor& out = Tensor(), bool accumulate = false);

// Batched: a (Ba, ., .), b (Bb, ., .) with Ba == Bb, or either batch 1 (broadcast).
// Returns (max(Ba, Bb), M, N).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

}  // namespace fastnn
