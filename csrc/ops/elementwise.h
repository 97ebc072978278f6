#pragma once
#include <utility>

#include "core/tensor.h"
#include "cpu/elementwise.h"

namespace fastnn {


// a op b with broadcasting; a and b have the same dtype (the Python layer promotes).
// float32: every op; int64: add, sub, mul, maximum, minimum.
Tensor binary(BinOp op, const Tensor& a, const Tensor& b);
// Gradients of sum(g * (a op b)) at the broadcast shape; undefined where not wanted.
std::pair<Tensor, Tensor> binary_backward(BinOp op, const Tensor& g, const Tensor& a,
                                          const Tensor& b, bool need_a, bool need_b);
// dst = dst op (alpha * src) in place, src broadcast to dst's shape (not the reverse).
// op: add, mul, div. `name` is the op in messages (add_, mul_, div_).
void binary_inplace(BinOp op, const Tensor& dst, const Tensor& src, double alpha, const char* name);

// y = op(x): float32 for every op, int64 for neg and abs.
Tensor unary(UnOp op, const Tensor& x);
// dx = g * op'(x); y is op's output (used by exp and sqrt).
Tensor unary_backward(UnOp op, const Tensor& g, const Tensor& x, const Tensor& y);

// scale * src broadcast to `shape` (the backward of sum and mean).
Tensor expand(const Tensor& src, const Shape& shape, double scale, const char* op);

}  // namespace fastnn
