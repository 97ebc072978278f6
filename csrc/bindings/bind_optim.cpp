#include <pybind11/stl.h>

#include <string>

#include "bindings/convert.h"
#include "bindings/shared.h"
#include "ops/optim.h"

namespace fastnn {

namespace {

// A Python list/tuple of arrays -> Tensor views, each named "<list>[i]" in errors.
std::vector<Tensor> tensor_list(py::handle obj, const char* op, const char* list, bool writable) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    fail<TypeError>(op, list, " must be a list of arrays, got ",
                    py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  std::vector<Tensor> out;
  out.reserve(seq.size());
  // NOTE (speed): the element's name ("params[3]") is formatted only for an error message;
  // formatting it for every element cost ~0.4 us each, most of a small model's step.
  const size_t n = seq.size();
  for (size_t i = 0; i < n; ++i) {
    py::handle item = PySequence_Fast_GET_ITEM(seq.ptr(), (py::ssize_t)i);
    try {
      out.push_back(arg_tensor(item, op, list, DType::f32, writable));
    } catch (const std::exception&) {
      const std::string name = str(list, "[", i, "]");
      out.push_back(arg_tensor(item, op, name.c_str(), DType::f32, writable));  // throws
    }
  }
  return out;
}

int64_t total_numel(const std::vector<Tensor>& ts) {
  int64_t n = 0;
  for (const auto& t : ts) n += t.numel();
  return n;
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step", [](py::handle params, py::handle grads, py::handle bufs, double lr,
                       double momentum, double dampening, double weight_decay, bool nesterov,
                       bool maximize, py::handle first_step) {
    auto tp = tensor_list(params, "sgd", "params", true);
    auto tg = tensor_list(grads, "sgd", "grads", false);
    std::vector<Tensor> tb;
    if (momentum != 0) {
      if (bufs.is_none())
        fail("sgd", "momentum_buffers must be a list of arrays when momentum != 0, got None");
      tb = tensor_list(bufs, "sgd", "momentum_buffers", true);
    }
    std::vector<bool> first = first_step_flags(first_step, tp.size());
    SgdOptions o{lr, momentum, dampening, weight_decay, nesterov, maximize};
    ReleaseGilFor nogil(total_numel(tp));
    sgd_step(tp, tg, tb, first, o);
  }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"),
     py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0,
     py::arg("nesterov") = false, py::arg("maximize") = false, py::arg("first_step") = false,
     "One SGD step (PyTorch's rule) over lists of float32 arrays, in place on params and "
     "momentum_buffers. first_step (a bool or one per param): initialise the buffer from the "
     "gradient instead of decaying it.");
  m.def("adam_step", [](py::handle params, py::handle grads, py::handle exp_avgs,
                        py::handle exp_avg_sqs, const std::vector<int64_t>& steps, double lr,
                        double beta1, double beta2, double eps, double weight_decay,
                        bool maximize) {
    auto tp = tensor_list(params, "adam", "params", true);
    auto tg = tensor_list(grads, "adam", "grads", false);
    auto tm = tensor_list(exp_avgs, "adam", "exp_avgs", true);
    auto tv = tensor_list(exp_avg_sqs, "adam", "exp_avg_sqs", true);
    AdamOptions o{lr, beta1, beta2, eps, weight_decay, maximize};
    ReleaseGilFor nogil(total_numel(tp));
    adam_step(tp, tg, tm, tv, steps, o);
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
     py::arg("steps"), py::arg("lr"), py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
     py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("maximize") = false,
     "One Adam step (PyTorch's non-fused rule) over lists of float32 arrays, in place on "
     "params, exp_avgs and exp_avg_sqs. steps: per-param step counts, already incremented.");
}

}  // namespace fastnn
