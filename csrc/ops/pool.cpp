#include "ops/pool.h"

#include "ops/common.h"

namespace fastnn {

namespace {

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  if (span < 0) return 0;
  int64_t o = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
  // NOTE: PyTorch drops a ceil_mode window that would start in the right padding.
  if (ceil_mode && (o - 1) * s >= in + p) --o;
  return o;
}

void check_input(const Tensor& x, const char* op, const char* name) {
  check_dtype(x, DType::f32, op, name);
  check_contiguous(x, op, name);
  if (x.ndim() != 4)
    fail(op, name, " must be 4-D (N, C, H, W), got ", x.ndim(), "-D with shape ",
         shape_str(x.shape()));
}

}  // namespace

Pool2dShape pool2d_shape(const Shape& x, const PoolArgs& a, const char* op) {
  if (a.kh < 1 || a.kw < 1) fail(op, "kernel_size must be >= 1, got (", a.kh, ", ", a.kw, ")");
  if (a.sh < 1 || a.sw < 1) fail(op, "stride must be >= 1, got (", a.sh, ", ", a.sw, ")");
  if (a.dh < 1 || a.dw < 1) fail(op, "dilation must be >= 1, got (", a.dh, ", ", a.dw, ")");
  if (a.ph < 0 || a.pw < 0) fail(op, "padding must be >= 0, got (", a.ph, ", ", a.pw, ")");
  const int64_t ekh = (a.kh - 1) * a.dh + 1, ekw = (a.kw - 1) * a.dw + 1;
  if (a.ph > ekh / 2 || a.pw > ekw / 2)
    fail(op, "padding must be at most half of the (dilated) kernel size (", ekh, ", ", ekw,
         "), got (", a.ph, ", ", a.pw, ")");
  if (a.divisor_override < 0) fail(op, "divisor_override must be positive, got ", a.divisor_override);
  Pool2dShape s{};
  s.N = x[0]; s.C = x[1]; s.H = x[2]; s.W = x[3];
  s.KH = a.kh; s.KW = a.kw; s.sh = a.sh; s.sw = a.sw; s.ph = a.ph; s.pw = a.pw;
  s.dh = a.dh; s.dw = a.dw;
  s.OH = out_size(s.H, a.kh, a.sh, a.ph, a.dh, a.ceil_mode);
  s.OW = out_size(s.W, a.kw, a.sw, a.pw, a.dw, a.ceil_mode);
  if (s.OH < 1 || s.OW < 1)
    fail(op, "kernel (", ekh, ", ", ekw, ") (dilated) is larger than the padded input (",
         s.H + 2 * a.ph, ", ", s.W + 2 * a.pw, "): output would be (", s.OH, ", ", s.OW, ")");
  return s;
}

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, const PoolArgs& a,
                                             bool want_indices) {
  const char* op = "max_pool2d";
  check_input(x, op, "input");
  Pool2dShape s = pool2d_shape(x.shape(), a, op);
  Tensor y = empty({s.N, s.C, s.OH, s.OW}, DType::f32);
  Tensor idx;
  if (want_indices) idx = empty({s.N, s.C, s.OH, s.OW}, DType::i64);
  max_pool2d_fwd(s, x.data<float>(), y.data<float>(),
                 want_indices ? idx.data<int64_t>() : nullptr);
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& indices, int64_t in_h, int64_t in_w,
                           const PoolArgs& a) {
  const char* op = "max_pool2d";
  check_input(dy, op, "grad_output");
  Pool2dShape s = pool2d_shape({dy.size(0), dy.size(1), in_h, in_w}, a, op);
  check_shape(dy, {s.N, s.C, s.OH, s.OW}, op, "grad_output");
  check_dtype(indices, DType::i64, op, "indices");
  check_contiguous(indices, op, "indices");
  check_shape(indices, dy.shape(), op, "indices");
  // The kernel range-checks the indices (they can come from Python) as it scatters.
  Tensor dx = empty({s.N, s.C, in_h, in_w}, DType::f32);
  max_pool2d_bwd(s, dy.data<float>(), indices.data<int64_t>(), dx.data<float>());
  return dx;
}

Tensor avg_pool2d_forward(const Tensor& x, const PoolArgs& a) {
  const char* op = "avg_pool2d";
  check_input(x, op, "input");
  Pool2dShape s = pool2d_shape(x.shape(), a, op);
  Tensor y = empty({s.N, s.C, s.OH, s.OW}, DType::f32);
  avg_pool2d_fwd(s, x.data<float>(), y.data<float>(), a.count_include_pad, a.divisor_override);
  return y;
}

Tensor avg_pool2d_backward(const Tensor& dy, int64_t in_h, int64_t in_w, const PoolArgs& a) {
  const char* op = "avg_pool2d";
  check_input(dy, op, "grad_output");
  Pool2dShape s = pool2d_shape({dy.size(0), dy.size(1), in_h, in_w}, a, op);
  check_shape(dy, {s.N, s.C, s.OH, s.OW}, op, "grad_output");
  Tensor dx = empty({s.N, s.C, in_h, in_w}, DType::f32);
  avg_pool2d_bwd(s, dy.data<float>(), dx.data<float>(), a.count_include_pad, a.divisor_override);
  return dx;
}

}  // namespace fastnn
