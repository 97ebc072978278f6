#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "cpu/softmax.h"
#include "ops/softmax.h"

namespace fastnn {

PyObject* softmax_plain(PyObject* x, PyObject* dim, bool log, bool* handled) {
  *handled = false;
  ArrayDimSplit sp;
  if (!plain_f32_array(x) || !split_at_dim(py::detail::array_proxy(x), dim, &sp)) return nullptr;
  const auto* a = py::detail::array_proxy(x);
  *handled = true;
  PyObject* out = new_out_array(a->nd, a->dimensions);
  if (!out) return nullptr;
  const float* src = reinterpret_cast<const float*>(a->data);
  float* y = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, sp.outer * sp.r * sp.inner,
                    [&] { softmax_fwd(src, y, sp.outer, sp.r, sp.inner, log); });
}

void bind_softmax(py::module_& m) {
  m.def("softmax_fwd", [](py::handle x, int64_t dim, bool log) {
    const char* op = log ? "log_softmax" : "softmax";
    Tensor tx = arg_tensor(x, op, "input", DType::f32);
    Tensor y;
    { py::gil_scoped_release nogil; y = softmax_forward(tx, dim, log); }
    return to_numpy(y);
  }, py::arg("x"), py::arg("dim"), py::arg("log") = false,
     "softmax(x) along dim (log_softmax when log); float32, any rank.");
  m.def("softmax_bwd", [](py::handle dy, py::handle y, int64_t dim, bool log) {
    const char* op = log ? "log_softmax" : "softmax";
    Tensor tdy = arg_tensor(dy, op, "grad_output", DType::f32);
    Tensor ty = arg_tensor(y, op, "output", DType::f32);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = softmax_backward(tdy, ty, dim, log); }
    return to_numpy(dx);
  }, py::arg("dy"), py::arg("y"), py::arg("dim"), py::arg("log") = false,
     "dx from dy and the forward output y (probabilities, or log-probabilities when log).");
  m.def("argmax", [](py::handle x, std::optional<int64_t> dim, bool keepdim) {
    Tensor tx = arg_tensor(x, "argmax", "input", std::nullopt);
    Tensor idx;
    { py::gil_scoped_release nogil; idx = argmax(tx, dim, keepdim); }
    return to_numpy(idx);
  }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false,
     "int64 index of the first maximum along dim, or over all elements when dim is None; "
     "NaN counts as the maximum.");
}

}  // namespace fastnn
