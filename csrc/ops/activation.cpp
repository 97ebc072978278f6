#include "ops/activation.h"

#include "ops/common.h"

namespace fastnn {

Tensor activation_forward(const Tensor& x, const ActParams& p) {
  const char* op = act_name(p.act);
  check_dtype(x, DType::f32, op, "input");
  check_contiguous(x, op, "input");
  if (p.act == Act::softplus && !(p.beta != 0.f)) fail(op, "beta must be non-zero, got ", p.beta);
  Tensor y = empty(x.shape(), DType::f32);
  activation_fwd(p, x.data<float>(), y.data<float>(), x.numel());
  return y;
}

Tensor activation_backward(const Tensor& dy, const Tensor& x, const Tensor& y, const ActParams& p) {
  const char* op = act_name(p.act);
  check_dtype(dy, DType::f32, op, "grad_output");
  check_contiguous(dy, op, "grad_output");
  const bool need_x = act_backward_needs_input(p.act);
  const Tensor& ref = need_x ? x : y;
  const char* ref_name = need_x ? "input" : "output";
  if (!ref.defined()) fail(op, "backward needs the ", ref_name, ", got None");
  check_dtype(ref, DType::f32, op, ref_name);
  check_contiguous(ref, op, ref_name);
  check_shape(ref, dy.shape(), op, ref_name);
  Tensor dx = empty(dy.shape(), DType::f32);
  activation_bwd(p, dy.data<float>(), need_x ? x.data<float>() : nullptr,
                 need_x ? nullptr : y.data<float>(), dx.data<float>(), dy.numel());
  return dx;
}

}  // namespace fastnn
