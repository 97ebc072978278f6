#include "ops/elementwise.h"

#include <algorithm>

#include "cpu/broadcast.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {

static void check_operand(const Tensor& t, const char* op, const char* name) {
  check_contiguous(t, op, name);
}

Tensor binary(BinOp op, const Tensor& a, const Tensor& b) {
  const char* name = binop_name(op);
  check_operand(a, name, "input");
  check_operand(b, name, "other");
  if (a.dtype() != b.dtype())
    fail<TypeError>(name, "input and other must have the same dtype, got ", dtype_name(a.dtype()),
                    " and ", dtype_name(b.dtype()));
  if (a.dtype() == DType::i64 && (op == BinOp::div || op == BinOp::pow))
    fail<TypeError>(name, "int64 inputs are computed in float32: cast them first, got int64");
  Shape shape = broadcast_shape(a.shape(), b.shape(), name);
  Tensor out = empty(shape, a.dtype());
  Dims sa = broadcast_strides(a.shape(), shape), sb = broadcast_strides(b.shape(), shape);
  if (a.dtype() == DType::f32)
    binary_f32(op, shape, a.data<float>(), sa, b.data<float>(), sb, out.data<float>());
  else
    binary_i64(op, shape, a.data<int64_t>(), sa, b.data<int64_t>(), sb, out.data<int64_t>());
  return out;
}

std::pair<Tensor, Tensor> binary_backward(BinOp op, const Tensor& g, const Tensor& a,
                                          const Tensor& b, bool need_a, bool need_b) {
  const char* name = binop_name(op);
  check_dtype(g, DType::f32, name, "grad_output");
  check_dtype(a, DType::f32, name, "input");
  check_dtype(b, DType::f32, name, "other");
  check_operand(g, name, "grad_output");
  check_operand(a, name, "input");
  check_operand(b, name, "other");
  Shape shape = broadcast_shape(a.shape(), b.shape(), name);
  check_shape(g, shape, name, "grad_output");
  Tensor ga, gb;
  if (need_a) ga = empty(shape, DType::f32);
  if (need_b) gb = empty(shape, DType::f32);
  if (need_a || need_b)
    binary_bwd_f32(op, shape, g.data<float>(), a.data<float>(), broadcast_strides(a.shape(), shape),
                   b.data<float>(), broadcast_strides(b.shape(), shape),
                   need_a ? ga.data<float>() : nullptr, need_b ? gb.data<float>() : nullptr);
  return {ga, gb};
}

void binary_inplace(BinOp op, const Tensor& dst, const Tensor& src, double alpha, const char* name) {
  if (op != BinOp::add && op != BinOp::mul && op != BinOp::div)
    fail(name, "in-place op must be add, mul or div, got ", binop_name(op));
  check_operand(dst, name, "self");
  check_operand(src, name, "other");
  if (dst.dtype() != src.dtype())
    fail<TypeError>(name, "other must have self's dtype ", dtype_name(dst.dtype()), ", got ",
                    dtype_name(src.dtype()));
  if (dst.dtype() == DType::i64 && op == BinOp::div)
    fail<TypeError>(name, "true division of an int64 tensor in place would give float32; "
                    "result type float32 can't be cast to the desired output type int64");
  // Broadcasting may stretch src, never dst: the result must fit in dst's memory.
  Shape shape = broadcast_shape(dst.shape(), src.shape(), name);
  if (shape != dst.shape())
    fail(name, "other of shape ", shape_str(src.shape()), " does not broadcast to self's shape ",
         shape_str(dst.shape()), " (the result would be ", shape_str(shape), ")");
  Dims ss = broadcast_strides(src.shape(), shape);
  if (dst.dtype() == DType::f32) {
    binary_inplace_f32(op, shape, dst.data<float>(), src.data<float>(), ss, (float)alpha);
  } else {
    if (alpha != (double)(int64_t)alpha)
      fail<TypeError>(name, "alpha must be an integer for an int64 tensor, got ", alpha);
    binary_inplace_i64(op, shape, dst.data<int64_t>(), src.data<int64_t>(), ss, (int64_t)alpha);
  }
}

Tensor unary(UnOp op, const Tensor& x) {
  const char* name = unop_name(op);
  check_operand(x, name, "input");
  Tensor y = empty(x.shape(), x.dtype());
  if (x.dtype() == DType::f32) {
    unary_f32(op, x.data<float>(), y.data<float>(), x.numel());
  } else {
    if (op != UnOp::neg && op != UnOp::abs)
      fail<TypeError>(name, "input must be float32 (int64 is cast by the caller), got int64");
    unary_i64(op, x.data<int64_t>(), y.data<int64_t>(), x.numel());
  }
  return y;
}

Tensor unary_backward(UnOp op, const Tensor& g, const Tensor& x, const Tensor& y) {
  const char* name = unop_name(op);
  check_dtype(g, DType::f32, name, "grad_output");
  check_operand(g, name, "grad_output");
  const bool need_y = op == UnOp::exp || op == UnOp::sqrt;
  const bool need_x = op == UnOp::abs || op == UnOp::log;
  const Tensor& ref = need_y ? y : x;
  const char* ref_name = need_y ? "output" : "input";
  if (need_x || need_y) {
    if (!ref.defined()) fail(name, "backward needs the ", ref_name, ", got None");
    check_dtype(ref, DType::f32, name, ref_name);
    check_operand(ref, name, ref_name);
    check_shape(ref, g.shape(), name, ref_name);
  }
  Tensor dx = empty(g.shape(), DType::f32);
  unary_bwd_f32(op, g.data<float>(), need_x ? x.data<float>() : nullptr,
                need_y ? y.data<float>() : nullptr, dx.data<float>(), g.numel());
  return dx;
}

Tensor expand(const Tensor& src, const Shape& shape, double scale, const char* op) {
  check_dtype(src, DType::f32, op, "grad_output");
  check_operand(src, op, "grad_output");
  Shape bs = broadcast_shape(src.shape(), shape, op);
  if (bs != shape)
    fail(op, "grad_output of shape ", shape_str(src.shape()), " does not broadcast to ",
         shape_str(shape));
  Tensor out = empty(shape, DType::f32);
  expand_f32(shape, src.data<float>(), broadcast_strides(src.shape(), shape), (float)scale,
             out.data<float>());
  return out;
}

}  // namespace fastnn
