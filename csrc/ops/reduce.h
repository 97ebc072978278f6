#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace fastnn {

// sum (mean = false) or mean over `dims` (nullopt: every dim; negative dims allowed, no
// repeats), keeping reduced dims as size 1 when keepdim. float32 and int64 (sum only: the
// mean of int64 is a TypeError, as PyTorch refuses it).
Tensor reduce_sum(const Tensor& x, const std::optional<std::vector<int64_t>>& dims, bool keepdim,
                  bool mean);

// max (is_max) or min over every element: a 0-d tensor. RuntimeError on an empty input.
Tensor extreme_all(const Tensor& x, bool is_max);
// max/min along one dim: (values, indices). IndexError when that dim has size 0.
std::pair<Tensor, Tensor> extreme_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max);

// Backward of extreme_dim: g and idx shaped as its outputs (keepdim or not), scattered into
// zeros of `shape` at the chosen indices.
Tensor extreme_dim_backward(const Tensor& g, const Tensor& idx, const Shape& shape, int64_t dim,
                            bool keepdim, bool is_max);
// Backward of extreme_all: g (0-d) split among the elements of x equal to value (0-d).
Tensor extreme_all_backward(const Tensor& x, const Tensor& value, const Tensor& g, bool is_max);

}  // namespace fastnn
