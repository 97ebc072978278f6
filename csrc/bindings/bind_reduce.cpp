#include "bindings/convert.h"
#include "cpu/reduce.h"
#include "ops/reduce.h"

#include <pybind11/stl.h>

namespace fastnn {

PyObject* sum_plain(PyObject* x, PyObject* dim, bool keepdim, bool mean, bool* handled) {
  *handled = false;
  if (!plain_f32_array(x)) return nullptr;
  const auto* a = py::detail::array_proxy(x);
  const int nd = a->nd;
  if (nd == 0) return nullptr;
  // The same single (outer, r, inner) pass as reduce_sum's (ops/reduce.cpp) for one dim or
  // for all of them, so the results are the same.
  ArrayDimSplit sp{-1, 1, 1, 1};  // (dim None: every dim, one row)
  if (dim == Py_None) {
    for (int i = 0; i < nd; ++i) sp.r *= a->dimensions[i];
  } else if (!split_at_dim(a, dim, &sp)) {
    return nullptr;
  }
  Py_intptr_t dims[kNumpyMaxDims];
  int out_nd = 0;
  for (int i = 0; i < nd; ++i) {
    const bool reduced = sp.dim < 0 || i == sp.dim;
    if (!reduced) dims[out_nd++] = a->dimensions[i];
    else if (keepdim) dims[out_nd++] = 1;
  }
  *handled = true;
  PyObject* out = new_out_array(out_nd, dims);
  if (!out) return nullptr;
  const float* src = reinterpret_cast<const float*>(a->data);
  float* y = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, sp.outer * sp.r * sp.inner, [&] {
    sum_f32(src, sp.outer, sp.r, sp.inner, mean ? double(sp.r) : 1.0, y);
  });
}

void bind_reduce(py::module_& m) {
  m.def("sum", [](py::handle x, std::optional<std::vector<int64_t>> dims, bool keepdim, bool mean) {
    const char* op = mean ? "mean" : "sum";
    Tensor tx = arg_tensor(x, op, "input", std::nullopt);
    Tensor out;
    { py::gil_scoped_release nogil; out = reduce_sum(tx, dims, keepdim, mean); }
    return to_numpy(out);
  }, py::arg("x"), py::arg("dims") = py::none(), py::arg("keepdim") = false,
     py::arg("mean") = false,
     "Sum (or mean) over dims (None: all). float32: pairwise / double accumulation; int64 sum "
     "wraps.");
  m.def("extreme", [](py::handle x, std::optional<int64_t> dim, bool keepdim, bool is_max)
        -> py::object {
    const char* op = is_max ? "max" : "min";
    Tensor tx = arg_tensor(x, op, "input", std::nullopt);
    if (!dim) {
      Tensor v;
      { py::gil_scoped_release nogil; v = extreme_all(tx, is_max); }
      return to_numpy(v);
    }
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = extreme_dim(tx, *dim, keepdim, is_max); }
    return py::make_tuple(to_numpy(r.first), to_numpy(r.second));
  }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false,
     py::arg("is_max") = true,
     "max/min over all elements (0-d array) or along dim -> (values, indices).");
  m.def("extreme_dim_bwd", [](py::handle g, py::handle idx, std::vector<int64_t> shape,
                              int64_t dim, bool keepdim, bool is_max) {
    const char* op = is_max ? "max" : "min";
    Tensor tg = arg_tensor(g, op, "grad_output", DType::f32);
    Tensor ti = arg_tensor(idx, op, "indices", DType::i64);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = extreme_dim_backward(tg, ti, shape, dim, keepdim, is_max); }
    return to_numpy(dx);
  }, py::arg("g"), py::arg("indices"), py::arg("shape"), py::arg("dim"), py::arg("keepdim"),
     py::arg("is_max") = true, "Backward of max/min along dim: g scattered to the indices.");
  m.def("extreme_all_bwd", [](py::handle x, py::handle value, py::handle g, bool is_max) {
    const char* op = is_max ? "max" : "min";
    Tensor tx = arg_tensor(x, op, "input", DType::f32);
    Tensor tv = arg_tensor(value, op, "value", DType::f32);
    Tensor tg = arg_tensor(g, op, "grad_output", DType::f32);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = extreme_all_backward(tx, tv, tg, is_max); }
    return to_numpy(dx);
  }, py::arg("x"), py::arg("value"), py::arg("g"), py::arg("is_max") = true,
     "Backward of max/min over all elements: g split evenly among the ties.");
}

}  // namespace fastnn
