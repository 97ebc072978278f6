// Dense ops on Tensors: linear (+bias +activation, fused into the GEMM epilogue), its
// backward, and matmul's 2-D and batched GEMMs. Argument checks live here; the math in
// csrc/cpu/gemm.cpp.
#pragma once
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "cpu/act.h"

namespace fastnn {

// y = act(x·wᵀ + b). x: (N, IN), w: (OUT, IN), b: (OUT,) or undefined.
// Returns (y (N, OUT), z): z = x·wᵀ + b, the pre-activation, only when the activation's
// backward needs it (gelu, softplus); undefined otherwise.
std::pair<Tensor, Tensor> linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                         const ActParams& p);

// One layer's forward with its arguments checked and its outputs allocated, ready to run;
// mlp_forward prepares each layer on the previous one's y and runs the chain at once.
struct LinearFwdJob {
  Tensor y, z;  // the results (z only for gelu/softplus)
  const float *x = nullptr, *w = nullptr, *b = nullptr;
  ActParams p{};
  int64_t N = 0, IN = 0, OUT = 0;
};
LinearFwdJob prepare_linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                    const ActParams& p);
// Runs the jobs in order (each reads the y of the one before). Small-batch chains run in one
// parallel region, each thread on its own columns of every layer (dense.cpp).
void run_linear_forward(const std::vector<LinearFwdJob>& jobs);

struct LinearGrads {
  Tensor dx, dw, db;  // undefined where not requested
};
// dZ = dy * act'(.), dx = dZ·w (N, IN), dw = dZᵀ·x (OUT, IN), db = Σ_rows dZ (OUT,).
// saved: z for gelu/softplus, y for relu/sigmoid/tanh, unused (may be undefined) for none.
LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                            const Tensor& saved, const ActParams& p, bool need_dx, bool need_dw,
                            bool need_db);

// One layer's backward with its arguments checked and its outputs allocated (in g), ready to
// run; mlp_backward prepares a whole chain (layer k's dx is layer k-1's dy) and runs it at once.
struct LinearBwdJob {
  LinearGrads g;  // the results (dx, dw, db as requested)
  Tensor dz_t;    // dZ: dy itself when there is no activation, else allocated
  const float *dy = nullptr, *x = nullptr, *w = nullptr, *saved = nullptr;
  float *dz = nullptr, *dx = nullptr, *dw = nullptr, *db = nullptr;  // null: not requested
  ActParams p{};
  int64_t N = 0, IN = 0, OUT = 0;
};
LinearBwdJob prepare_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                                     const Tensor& saved, const ActParams& p, bool need_dx,
                                     bool need_dw, bool need_db);
// Runs the jobs in order (each may read what the ones before it wrote). Small-batch layers
// share one parallel region, split so each thread reads back what it wrote (dense.cpp).
void run_linear_backward(const std::vector<LinearBwdJob>& jobs);

// c = op(a)·op(b), a and b 2-D. With `out` defined, writes into it (accumulate: out += ...)
// and returns it.
Tensor gemm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
            const Tensor& out = Tensor(), bool accumulate = false);

// Batched: a (Ba, ., .), b (Bb, ., .) with Ba == Bb, or either batch 1 (broadcast).
// Returns (max(Ba, Bb), M, N).
Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);

}  // namespace fastnn
