#include "ops/softmax.h"

#include "cpu/softmax.h"
#include "ops/common.h"

namespace fastnn {

namespace {
struct Dims { int64_t outer = 1, dim = 1, inner = 1; };

// (outer, dim, inner) view of shape around axis d (already wrapped). A 0-d tensor is (1, 1, 1).
Dims split(const Shape& s, int64_t d) {
  Dims r;
  if (s.empty()) return r;
  for (int64_t i = 0; i < d; ++i) r.outer *= s[i];
  r.dim = s[d];
  for (size_t i = d + 1; i < s.size(); ++i) r.inner *= s[i];
  return r;
}
}  // namespace

Tensor softmax_forward(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_dtype(x, DType::f32, op, "input");
  check_contiguous(x, op, "input");
  Dims v = split(x.shape(), wrap_dim(dim, x.ndim(), op));
  Tensor y = empty(x.shape(), DType::f32);
  softmax_fwd(x.data<float>(), y.data<float>(), v.outer, v.dim, v.inner, log);
  return y;
}

Tensor softmax_backward(const Tensor& dy, const Tensor& y, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_dtype(dy, DType::f32, op, "grad_output");
  check_contiguous(dy, op, "grad_output");
  check_dtype(y, DType::f32, op, "output");
  check_contiguous(y, op, "output");
  check_shape(y, dy.shape(), op, "output");
  Dims v = split(dy.shape(), wrap_dim(dim, dy.ndim(), op));
  Tensor dx = empty(dy.shape(), DType::f32);
  softmax_bwd(dy.data<float>(), y.data<float>(), dx.data<float>(), v.outer, v.dim, v.inner, log);
  return dx;
}

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  const char* op = "argmax";
  check_contiguous(x, op, "input");
  Dims v;
  Shape out;
  if (!dim) {
    // Over all elements: one row of numel; keepdim keeps every dim as 1 (as PyTorch).
    v.dim = x.numel();
    if (keepdim) out.assign(x.ndim(), 1);
    if (v.dim == 0) fail(op, "cannot take the argmax of an empty tensor of shape ", shape_str(x.shape()));
  } else {
    const int64_t d = wrap_dim(*dim, x.ndim(), op);
    v = split(x.shape(), d);
    if (v.dim == 0)
      fail(op, "cannot take the argmax along dim ", *dim, " of size 0 (shape ", shape_str(x.shape()), ")");
    out = x.shape();
    if (!out.empty()) {
      if (keepdim) out[d] = 1;
      else out.erase(out.begin() + d);
    }
  }
  Tensor idx = empty(out, DType::i64);
  if (x.dtype() == DType::f32)
    argmax_f32(x.data<float>(), idx.data<int64_t>(), v.outer, v.dim, v.inner);
  else
    argmax_i64(x.data<int64_t>(), idx.data<int64_t>(), v.outer, v.dim, v.inner);
  return idx;
}

}  // namespace fastnn
