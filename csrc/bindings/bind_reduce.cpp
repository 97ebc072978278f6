#include "bindings/convert.h"
#include "ops/reduce.h"

#include <pybind11/stl.h>

namespace fastnn {

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
