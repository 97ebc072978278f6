// A chain of linear layers, each with its activation fused into the GEMM epilogue, run as
// one op: what nn.Sequential(Linear, ReLU, Linear, ...) records as a single autograd node.
// The arithmetic is linear_forward / linear_backward's (csrc/ops/dense.h), layer by layer;
// what the chain saves is the per-layer Python round trip (a call, a node and its
// bookkeeping per layer), which dominates small networks.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "cpu/act.h"

namespace fastnn {

struct MlpLayer {
  Tensor w;     // (OUT_i, IN_i), IN_0 = x's columns, IN_i = OUT_{i-1}
  Tensor b;     // (OUT_i,) or undefined
  ActParams p;  // the activation applied after the bias
};

struct MlpSaved {
  std::vector<Tensor> ys;  // ys[i]: layer i's output (N, OUT_i); ys.back() is the result
  std::vector<Tensor> zs;  // zs[i]: layer i's pre-activation for gelu/softplus, else undefined
};

// x: (N, IN_0). Checks every layer's shapes (errors name the layer).
MlpSaved mlp_forward(const Tensor& x, const std::vector<MlpLayer>& layers);

struct MlpGrads {
  Tensor dx;                   // (N, IN_0), undefined unless need_dx
  std::vector<Tensor> dw, db;  // per layer, undefined where not requested
};
// dy: (N, OUT_last), the gradient of the chain's output; saved: what mlp_forward returned.
MlpGrads mlp_backward(const Tensor& dy, const Tensor& x, const std::vector<MlpLayer>& layers,
                      const MlpSaved& saved, bool need_dx, const std::vector<bool>& need_dw,
                      const std::vector<bool>& need_db);

}  // namespace fastnn
