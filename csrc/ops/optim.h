#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace fastnn {

struct SgdOptions {
  double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, maximize = false;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool maximize = false;
};

// One SGD step over every (param, grad) pair, in place. bufs: one momentum buffer per param
// (ignored, and may be empty, when momentum == 0); first[i]: buffer i is (re)initialised from
// the gradient instead of decayed (PyTorch's "buffer is None" case).
void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& bufs, const std::vector<bool>& first,
              const SgdOptions& o);

// One Adam step, in place on params, exp_avgs and exp_avg_sqs. steps[i]: the step count of
// param i including this step (1 on the first step), for the bias corrections.
void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
               const std::vector<int64_t>& steps, const AdamOptions& o);

}  // namespace fastnn
