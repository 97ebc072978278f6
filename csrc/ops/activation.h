#pragma once
#include "core/tensor.h"
#include "cpu/act.h"

namespace fastnn {
// y = act(x), any shape.
Tensor activation_forward(const Tensor& x, const ActParams& p);
// dx = dy * act'(x); x may be undefined when the activation does not need it.
Tensor activation_backward(const Tensor& dy, const Tensor& x, const Tensor& y, const ActParams& p);
}  // namespace fastnn
