#pragma once
#include <utility>

#include "core/tensor.h"
#include "cpu/pool.h"

namespace fastnn {

struct PoolArgs {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg only
  int64_t divisor_override = 0;   // avg only; 0: none
};

// Checks and PyTorch's output size (ceil_mode: a last window must start inside the input or
// its left padding). op names the error prefix.
Pool2dShape pool2d_shape(const Shape& x, const PoolArgs& a, const char* op);

// (y, indices) of max pooling; indices (flat ih*W + iw per plane) only when want_indices.
std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, const PoolArgs& a,
                                             bool want_indices);
// dx (N, C, H, W) from dy and the forward's indices; in_h/in_w: the input's H and W.
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, int64_t in_h, int64_t in_w,
                           const PoolArgs& a);

Tensor avg_pool2d_forward(const Tensor& x, const PoolArgs& a);
Tensor avg_pool2d_backward(const Tensor& dy, int64_t in_h, int64_t in_w, const PoolArgs& a);

}  // namespace fastnn
