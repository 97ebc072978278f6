#include <pybind11/stl.h>

#include <cstring>
#include <string>

#include "bindings/convert.h"
#include "ops/elementwise.h"

namespace fastnn {

static BinOp parse_binop(const std::string& s) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  for (int i = 0; i < 7; ++i)
    if (s == names[i]) return (BinOp)i;
  fail("binary", "unknown op '", s, "' (expected add, sub, mul, div, pow, maximum, minimum)");
}

static UnOp parse_unop(const std::string& s) {
  static const char* names[] = {"neg", "abs", "exp", "log", "sqrt"};
  for (int i = 0; i < 5; ++i)
    if (s == names[i]) return (UnOp)i;
  fail("unary", "unknown op '", s, "' (expected neg, abs, exp, log, sqrt)");
}

void bind_elementwise(py::module_& m) {
  m.def("binary", [](py::handle a, py::handle b, const std::string& op) {
    BinOp o = parse_binop(op);
    Tensor ta = arg_tensor(a, binop_name(o), "input", std::nullopt);
    Tensor tb = arg_tensor(b, binop_name(o), "other", std::nullopt);
    Tensor out;
    { py::gil_scoped_release nogil; out = binary(o, ta, tb); }
    return to_numpy(out);
  }, py::arg("a"), py::arg("b"), py::arg("op"),
     "out = a op b with NumPy broadcasting; a, b: C-contiguous, same dtype (float32, or int64 "
     "for add/sub/mul/maximum/minimum).");
  m.def("binary_bwd", [](py::handle g, py::handle a, py::handle b, const std::string& op,
                         bool need_a, bool need_b) {
    BinOp o = parse_binop(op);
    const char* n = binop_name(o);
    Tensor tg = arg_tensor(g, n, "grad_output", DType::f32);
    Tensor ta = arg_tensor(a, n, "input", DType::f32);
    Tensor tb = arg_tensor(b, n, "other", DType::f32);
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = binary_backward(o, tg, ta, tb, need_a, need_b); }
    return py::make_tuple(need_a ? py::object(to_numpy(r.first)) : py::none(),
                          need_b ? py::object(to_numpy(r.second)) : py::none());
  }, py::arg("g"), py::arg("a"), py::arg("b"), py::arg("op"), py::arg("need_a") = true,
     py::arg("need_b") = true,
     "(da, db): gradients of sum(g * (a op b)) at the broadcast shape (None where not wanted).");
  m.def("binary_inplace", [](py::handle dst, py::handle src, const std::string& op, double alpha,
                             const std::string& name) {
    BinOp o = parse_binop(op);
    Tensor td = arg_tensor(dst, name.c_str(), "self", std::nullopt, /*writable=*/true);
    Tensor ts = arg_tensor(src, name.c_str(), "other", std::nullopt);
    { py::gil_scoped_release nogil; binary_inplace(o, td, ts, alpha, name.c_str()); }
  }, py::arg("dst"), py::arg("src"), py::arg("op"), py::arg("alpha") = 1.0,
     py::arg("name") = "add_",
     "dst = dst op (alpha * src) in place (op: add, mul, div); src broadcasts to dst's shape.");
  m.def("unary", [](py::handle x, const std::string& op) {
    UnOp o = parse_unop(op);
    Tensor tx = arg_tensor(x, unop_name(o), "input", std::nullopt);
    Tensor y;
    { py::gil_scoped_release nogil; y = unary(o, tx); }
    return to_numpy(y);
  }, py::arg("x"), py::arg("op"), "y = op(x): neg, abs (float32, int64), exp, log, sqrt (float32).");
  m.def("unary_bwd", [](py::handle g, py::handle x, py::handle y, const std::string& op) {
    UnOp o = parse_unop(op);
    const char* n = unop_name(o);
    Tensor tg = arg_tensor(g, n, "grad_output", DType::f32);
    Tensor tx = opt_tensor(x, n, "input", DType::f32);
    Tensor ty = opt_tensor(y, n, "output", DType::f32);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = unary_backward(o, tg, tx, ty); }
    return to_numpy(dx);
  }, py::arg("g"), py::arg("x"), py::arg("y"), py::arg("op"),
     "dx = g * op'(x); x or y may be None where op does not need it.");
  m.def("expand", [](py::handle src, std::vector<int64_t> shape, double scale) {
    Tensor ts = arg_tensor(src, "expand", "grad_output", DType::f32);
    Tensor out;
    { py::gil_scoped_release nogil; out = expand(ts, shape, scale, "expand"); }
    return to_numpy(out);
  }, py::arg("src"), py::arg("shape"), py::arg("scale") = 1.0,
     "scale * src broadcast to shape (a new contiguous array).");
}

}  // namespace fastnn
