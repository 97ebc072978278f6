#include "ops/conv.h"

#include "ops/common.h"

namespace fastnn {

namespace {
constexpr const char* kOp = "conv2d";
}

Conv2dShape conv2d_shape(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  check_dtype(x, DType::f32, kOp, "input");
  check_dtype(w, DType::f32, kOp, "weight");
  check_contiguous(x, kOp, "input");
  check_contiguous(w, kOp, "weight");
  if (x.ndim() != 4)
    fail(kOp, "input must be 4-D (N, C, H, W), got ", x.ndim(), "-D with shape ",
         shape_str(x.shape()));
  if (w.ndim() != 4)
    fail(kOp, "weight must be 4-D (out_channels, in_channels/groups, kH, kW), got ", w.ndim(),
         "-D with shape ", shape_str(w.shape()));
  if (a.sh < 1 || a.sw < 1) fail(kOp, "stride must be >= 1, got (", a.sh, ", ", a.sw, ")");
  if (a.dh < 1 || a.dw < 1) fail(kOp, "dilation must be >= 1, got (", a.dh, ", ", a.dw, ")");
  if (a.ph < 0 || a.pw < 0) fail(kOp, "padding must be >= 0, got (", a.ph, ", ", a.pw, ")");
  if (a.groups < 1) fail(kOp, "groups must be >= 1, got ", a.groups);
  Conv2dShape s{};
  s.N = x.size(0); s.C = x.size(1); s.H = x.size(2); s.W = x.size(3);
  s.OC = w.size(0); s.KH = w.size(2); s.KW = w.size(3);
  s.sh = a.sh; s.sw = a.sw; s.ph = a.ph; s.pw = a.pw; s.dh = a.dh; s.dw = a.dw;
  s.groups = a.groups;
  if (s.C % a.groups != 0)
    fail(kOp, "input channels (", s.C, ") must be divisible by groups (", a.groups, ")");
  if (s.OC % a.groups != 0)
    fail(kOp, "out_channels (", s.OC, ") must be divisible by groups (", a.groups, ")");
  if (w.size(1) != s.C / a.groups)
    fail(kOp, "weight must be (out_channels, in_channels/groups, kH, kW) = (", s.OC, ", ",
         s.C / a.groups, ", ", s.KH, ", ", s.KW, ") for input ", shape_str(x.shape()),
         " and groups=", a.groups, ", got ", shape_str(w.shape()));
  if (s.KH < 1 || s.KW < 1) fail(kOp, "kernel size must be >= 1, got weight ", shape_str(w.shape()));
  const int64_t ekh = (s.KH - 1) * s.dh + 1, ekw = (s.KW - 1) * s.dw + 1;
  const int64_t ph2 = s.H + 2 * s.ph, pw2 = s.W + 2 * s.pw;
  if (ekh > ph2 || ekw > pw2)
    fail(kOp, "kernel size (", ekh, ", ", ekw, ") (dilated) is larger than the padded input (",
         ph2, ", ", pw2, ")");
  s.OH = (ph2 - ekh) / s.sh + 1;
  s.OW = (pw2 - ekw) / s.sw + 1;
  if (b.defined()) {
    check_dtype(b, DType::f32, kOp, "bias");
    check_contiguous(b, kOp, "bias");
    check_shape(b, {s.OC}, kOp, "bias");
  }
  return s;
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  Conv2dShape s = conv2d_shape(x, w, b, a);
  Tensor y = empty({s.N, s.OC, s.OH, s.OW}, DType::f32);
  conv2d_fwd(s, x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr,
             y.data<float>(), a.relu);
  return y;
}

ConvGrads conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& y,
                          const ConvArgs& a, bool need_dx, bool need_dw, bool need_db,
                          bool has_bias) {
  Conv2dShape s = conv2d_shape(x, w, Tensor(), a);
  const Shape out{s.N, s.OC, s.OH, s.OW};
  check_dtype(dy, DType::f32, kOp, "grad_output");
  check_contiguous(dy, kOp, "grad_output");
  check_shape(dy, out, kOp, "grad_output");
  if (a.relu) {
    if (!y.defined()) fail(kOp, "backward of the fused ReLU needs the output, got None");
    check_dtype(y, DType::f32, kOp, "output");
    check_contiguous(y, kOp, "output");
    check_shape(y, out, kOp, "output");
  }
  ConvGrads g;
  if (need_dx) g.dx = empty(x.shape(), DType::f32);
  if (need_dw) g.dw = empty(w.shape(), DType::f32);
  if (need_db && has_bias) g.db = empty({s.OC}, DType::f32);
  conv2d_bwd(s, dy.data<float>(), a.relu ? y.data<float>() : nullptr, x.data<float>(),
             w.data<float>(), g.dx.defined() ? g.dx.data<float>() : nullptr,
             g.dw.defined() ? g.dw.data<float>() : nullptr,
             g.db.defined() ? g.db.data<float>() : nullptr, a.relu);
  return g;
}

}  // namespace fastnn
