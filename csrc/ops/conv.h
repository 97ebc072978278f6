#pragma once
#include "core/tensor.h"
#include "cpu/conv.h"

namespace fastnn {

struct ConvArgs {
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
  bool relu = false;  // fuse ReLU into the output
};

// Checks x (N, C, H, W), w (OC, C/groups, KH, KW), b (OC,) or undefined; returns the shape.
Conv2dShape conv2d_shape(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a);

// y (N, OC, OH, OW) = act(conv2d(x, w) + b).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a);

struct ConvGrads { Tensor dx, dw, db; };
// Gradients of sum(y * dy); y (the forward output) is needed when a.relu. Unrequested
// gradients stay undefined.
ConvGrads conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& y,
                          const ConvArgs& a, bool need_dx, bool need_dw, bool need_db,
                          bool has_bias);

}  // namespace fastnn
