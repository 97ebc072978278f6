#pragma once
#include <optional>

#include "core/tensor.h"

namespace fastnn {
// y = softmax(x) (or log_softmax when log) along dim of a float32 tensor of any rank;
// dim in [-ndim, ndim) (a 0-d tensor accepts 0 and -1, as PyTorch).
Tensor softmax_forward(const Tensor& x, int64_t dim, bool log);
// dx from the upstream gradient dy and the forward output y (same shape).
Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim, bool log);
// int64 indices of the maximum along dim (or over all elements when dim is empty);
// float32 or int64 input. keepdim keeps the reduced dim(s) as size 1.
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim);
}  // namespace fastnn
