#pragma once
#include <string>
#include <utility>

#include "core/tensor.h"

namespace fastnn {

enum class Reduction { none, mean, sum };
// "none" | "mean" | "sum", else ValueError naming op.
Reduction parse_reduction(const std::string& r, const char* op);

struct CrossEntropyOut {
  Tensor loss;   // () for mean/sum; (N,) for none ((), unbatched)
  Tensor stats;  // (N, 2): per-row [max, log-sum-exp of the shifted logits], for the backward
};
// input (N, C) float32 logits and target (N,) int64, or unbatched input (C,) and target ().
// Targets equal to ignore_index contribute 0 loss and 0 gradient and do not count for
// "mean"; any other target outside [0, C) is an IndexError.
CrossEntropyOut cross_entropy_forward(const Tensor& input, const Tensor& target, Reduction r,
                                      int64_t ignore_index);
// grad_input (shape of input) from the gradient of the loss (shape of the forward's loss).
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& input, const Tensor& target,
                              const Tensor& stats, Reduction r, int64_t ignore_index);

// (input - target)^2, reduced; input and target float32 of the same shape.
Tensor mse_forward(const Tensor& input, const Tensor& target, Reduction r);
// (grad_input, grad_target); each left undefined unless asked for.
std::pair<Tensor, Tensor> mse_backward(const Tensor& grad, const Tensor& input,
                                       const Tensor& target, Reduction r, bool need_input,
                                       bool need_target);

}  // namespace fastnn
