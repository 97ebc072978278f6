// conv2d and 2-D pooling. Pairs (stride, padding, ...) arrive as separate ints; the Python
// layer normalises PyTorch's int-or-tuple arguments.
#include "bindings/convert.h"
#include "ops/conv.h"
#include "ops/pool.h"

namespace fastnn {

namespace {

ConvArgs conv_args(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                   int64_t groups, bool relu) {
  ConvArgs a;
  a.sh = sh; a.sw = sw; a.ph = ph; a.pw = pw; a.dh = dh; a.dw = dw; a.groups = groups;
  a.relu = relu;
  return a;
}

PoolArgs pool_args(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw, bool ceil_mode) {
  PoolArgs a;
  a.kh = kh; a.kw = kw; a.sh = sh; a.sw = sw; a.ph = ph; a.pw = pw; a.dh = dh; a.dw = dw;
  a.ceil_mode = ceil_mode;
  return a;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_set_winograd", &conv2d_set_winograd, py::arg("on"),
        "Use Winograd F(4x4, 3x3) where it applies (default True); False forces im2col.");
  m.def("conv2d_winograd", &conv2d_winograd, "Whether Winograd F(4x4, 3x3) is enabled.");
  m.def("conv2d_algorithms", [](py::handle x, py::handle w, int64_t sh, int64_t sw, int64_t ph,
                                int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
    Tensor tx = arg_tensor(x, "conv2d", "input", DType::f32);
    Tensor tw = arg_tensor(w, "conv2d", "weight", DType::f32);
    return conv2d_algorithms(conv2d_shape(tx, tw, Tensor(), conv_args(sh, sw, ph, pw, dh, dw,
                                                                          groups, false)));
  }, py::arg("x"), py::arg("w"), py::arg("sh") = 1, py::arg("sw") = 1, py::arg("ph") = 0,
     py::arg("pw") = 0, py::arg("dh") = 1, py::arg("dw") = 1, py::arg("groups") = 1,
     "The algorithms conv2d takes for these shapes: 'fwd=A dx=B dw=C' (a test hook).");
  m.def("conv2d_fwd", [](py::handle x, py::handle w, py::handle b, int64_t sh, int64_t sw,
                         int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups,
                         bool relu) {
    ConvArgs a = conv_args(sh, sw, ph, pw, dh, dw, groups, relu);
    Tensor tx = arg_tensor(x, "conv2d", "input", DType::f32);
    Tensor tw = arg_tensor(w, "conv2d", "weight", DType::f32);
    Tensor tb = opt_tensor(b, "conv2d", "bias", DType::f32);
    Tensor y;
    { py::gil_scoped_release nogil; y = conv2d_forward(tx, tw, tb, a); }
    return to_numpy(y);
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("sh") = 1, py::arg("sw") = 1,
     py::arg("ph") = 0, py::arg("pw") = 0, py::arg("dh") = 1, py::arg("dw") = 1,
     py::arg("groups") = 1, py::arg("relu") = false,
     "y = [relu](conv2d(x, w) + b), NCHW; x (N, C, H, W), w (OC, C/groups, kH, kW).");

  m.def("conv2d_bwd", [](py::handle dy, py::handle x, py::handle w, py::handle y, int64_t sh,
                         int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                         int64_t groups, bool relu, bool need_dx, bool need_dw, bool need_db) {
    ConvArgs a = conv_args(sh, sw, ph, pw, dh, dw, groups, relu);
    Tensor tdy = arg_tensor(dy, "conv2d", "grad_output", DType::f32);
    Tensor tx = arg_tensor(x, "conv2d", "input", DType::f32);
    Tensor tw = arg_tensor(w, "conv2d", "weight", DType::f32);
    Tensor ty = opt_tensor(y, "conv2d", "output", DType::f32);
    ConvGrads g;
    {
      py::gil_scoped_release nogil;
      g = conv2d_backward(tdy, tx, tw, ty, a, need_dx, need_dw, need_db, need_db);
    }
    return py::make_tuple(need_dx ? opt_numpy(g.dx) : py::none(),
                          need_dw ? opt_numpy(g.dw) : py::none(),
                          need_db ? opt_numpy(g.db) : py::none());
  }, py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("y"), py::arg("sh") = 1,
     py::arg("sw") = 1, py::arg("ph") = 0, py::arg("pw") = 0, py::arg("dh") = 1,
     py::arg("dw") = 1, py::arg("groups") = 1, py::arg("relu") = false,
     py::arg("need_dx") = true, py::arg("need_dw") = true, py::arg("need_db") = true,
     "(dx, dw, db) of conv2d; y (the output) is needed only with relu=True.");

  m.def("max_pool2d_fwd", [](py::handle x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t ph, int64_t pw, int64_t dh, int64_t dw, bool ceil_mode,
                             bool return_indices) {
    PoolArgs a = pool_args(kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode);
    Tensor tx = arg_tensor(x, "max_pool2d", "input", DType::f32);
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = max_pool2d_forward(tx, a, return_indices); }
    return py::make_tuple(to_numpy(r.first),
                          return_indices ? py::object(to_numpy(r.second)) : py::object(py::none()));
  }, py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph") = 0,
     py::arg("pw") = 0, py::arg("dh") = 1, py::arg("dw") = 1, py::arg("ceil_mode") = false,
     py::arg("return_indices") = true,
     "(y, indices): window max and its flat index ih*W + iw in the input plane.");

  m.def("max_pool2d_bwd", [](py::handle dy, py::handle idx, int64_t in_h, int64_t in_w,
                             int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                             int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
    PoolArgs a = pool_args(kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode);
    Tensor tdy = arg_tensor(dy, "max_pool2d", "grad_output", DType::f32);
    Tensor ti = arg_tensor(idx, "max_pool2d", "indices", DType::i64);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = max_pool2d_backward(tdy, ti, in_h, in_w, a); }
    return to_numpy(dx);
  }, py::arg("dy"), py::arg("indices"), py::arg("in_h"), py::arg("in_w"), py::arg("kh"),
     py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph") = 0, py::arg("pw") = 0,
     py::arg("dh") = 1, py::arg("dw") = 1, py::arg("ceil_mode") = false,
     "dx (N, C, in_h, in_w) of max pooling from grad_output and the forward's indices.");

  m.def("avg_pool2d_fwd", [](py::handle x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t ph, int64_t pw, bool ceil_mode, bool count_include_pad,
                             int64_t divisor_override) {
    PoolArgs a = pool_args(kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
    a.count_include_pad = count_include_pad;
    a.divisor_override = divisor_override;
    Tensor tx = arg_tensor(x, "avg_pool2d", "input", DType::f32);
    Tensor y;
    { py::gil_scoped_release nogil; y = avg_pool2d_forward(tx, a); }
    return to_numpy(y);
  }, py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph") = 0,
     py::arg("pw") = 0, py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
     py::arg("divisor_override") = 0, "Window mean (divisor_override 0: none).");

  m.def("avg_pool2d_bwd", [](py::handle dy, int64_t in_h, int64_t in_w, int64_t kh, int64_t kw,
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool ceil_mode,
                             bool count_include_pad, int64_t divisor_override) {
    PoolArgs a = pool_args(kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
    a.count_include_pad = count_include_pad;
    a.divisor_override = divisor_override;
    Tensor tdy = arg_tensor(dy, "avg_pool2d", "grad_output", DType::f32);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = avg_pool2d_backward(tdy, in_h, in_w, a); }
    return to_numpy(dx);
  }, py::arg("dy"), py::arg("in_h"), py::arg("in_w"), py::arg("kh"), py::arg("kw"),
     py::arg("sh"), py::arg("sw"), py::arg("ph") = 0, py::arg("pw") = 0,
     py::arg("ceil_mode") = false, py::arg("count_include_pad") = true,
     py::arg("divisor_override") = 0, "dx (N, C, in_h, in_w) of average pooling.");
}

}  // namespace fastnn
