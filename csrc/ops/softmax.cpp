#include "ops/softmax.h"

#include "cpu/softmax.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_dtype(x, DType::f32, op, "input");
  check_contiguous(x, op, "input");
  const DimSplit v = split_dim(x.shape(), dim, true, op);
  Tensor y = empty(x.shape(), DType::f32);
  softmax_fwd(x.data<float>(), y.data<float>(), v.outer, v.r, v.inner, log);
  return y;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_dtype(dy, DType::f32, op, "grad_output");
  check_contiguous(dy, op, "grad_output");
  check_dtype(y, DType::f32, op, "output");
  check_contiguous(y, op, "output");
  check_shape(y, dy.shape(), op, "output");
  const DimSplit v = split_dim(dy.shape(), dim, true, op);
  Tensor dx = empty(dy.shape(), DType::f32);
  softmax_bwd(dy.data<float>(), y.data<float>(), dx.data<float>(), v.outer, v.r, v.inner, log);
  return dx;
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  const char* op = "argmax";
  check_contiguous(x, op, "input");
  const DimSplit v = argmax_split(x.shape(), dim, keepdim, op);
  Tensor idx = empty(v.out, DType::i64);
  if (x.dtype() == DType::f32)
    argmax_f32(x.data<float>(), idx.data<int64_t>(), v.outer, v.r, v.inner);
  else
    argmax_i64(x.data<int64_t>(), idx.data<int64_t>(), v.outer, v.r, v.inner);
  return idx;
}

}  // namespace fastnn
