#include <pybind11/stl.h>

#include <string>

#include "bindings/changes.h"
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

// A plain ndarray (not a subclass or a device array), native float32, C-contiguous.
bool plain_f32(PyObject* o) {
  const auto& api = py::detail::npy_api::get();
  if (Py_TYPE(o) != (PyTypeObject*)api.PyArray_Type_) return false;
  const auto* a = py::detail::array_proxy(o);
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  return d->type_num == py::detail::npy_api::NPY_FLOAT_ && (d->byteorder == '=' ||
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
         d->byteorder == '>'
#else
         d->byteorder == '<'
#endif
         ) && (a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_);
}

bool same_shape(PyObject* x, PyObject* y) {
  const auto *a = py::detail::array_proxy(x), *b = py::detail::array_proxy(y);
  if (a->nd != b->nd) return false;
  for (int i = 0; i < a->nd; ++i)
    if (a->dimensions[i] != b->dimensions[i]) return false;
  return true;
}

// _C.sgd_step_params(params, lr, weight_decay, maximize) -> bool: SGD without momentum over
// the fastnn Tensors of one param group, reading each one's .grad and ._data here (the
// optimizer's per-step Python around sgd_step cost more than the kernel for a small model).
// Parameters without a gradient are skipped, as PyTorch. Returns False, having changed
// nothing, for anything but the common case (a list of host tensors whose arrays and
// gradients are plain C-contiguous float32 ndarrays of the same shape; hyper-parameters that
// are numbers): the caller then takes the general path, which converts or reports it.
// Bad hyper-parameter values (a negative lr) raise the op's own error, as that path would.
PyObject* sgd_step_params(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  static PyObject* s_grad = PyUnicode_InternFromString("grad");
  static PyObject* s_data = PyUnicode_InternFromString("_data");
  try {
    if (nargs != 4) {
      PyErr_SetString(PyExc_TypeError, "[sgd] sgd_step_params takes 4 arguments");
      return nullptr;
    }
    PyObject* plist = args[0];
    if (!PyList_Check(plist)) Py_RETURN_FALSE;
    double num[2];
    for (int k = 0; k < 2; ++k) {
      PyObject* v = args[1 + k];
      if (!PyFloat_Check(v) && !(PyLong_Check(v) && !PyBool_Check(v))) Py_RETURN_FALSE;
      num[k] = PyFloat_AsDouble(v);
      if (num[k] == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_FALSE;
      }
    }
    const int maximize = PyObject_IsTrue(args[3]);
    if (maximize < 0) {
      PyErr_Clear();
      Py_RETURN_FALSE;
    }
    const Py_ssize_t n = PyList_GET_SIZE(plist);
    std::vector<py::object> hold;  // the arrays, alive for the call
    hold.reserve(2 * n);
    std::vector<Tensor> tp, tg;
    tp.reserve(n);
    tg.reserve(n);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* p = PyList_GET_ITEM(plist, i);
      PyObject* g = PyObject_GetAttr(p, s_grad);
      if (!g) {
        PyErr_Clear();
        Py_RETURN_FALSE;
      }
      auto gt = py::reinterpret_steal<py::object>(g);
      if (g == Py_None) continue;
      PyObject* ga = PyObject_GetAttr(g, s_data);
      PyObject* pa = ga ? PyObject_GetAttr(p, s_data) : nullptr;
      if (!pa) {
        Py_XDECREF(ga);
        PyErr_Clear();
        Py_RETURN_FALSE;
      }
      hold.push_back(py::reinterpret_steal<py::object>(ga));
      hold.push_back(py::reinterpret_steal<py::object>(pa));
      if (!plain_f32(ga) || !plain_f32(pa) || !same_shape(ga, pa)) Py_RETURN_FALSE;
      if (!(py::detail::array_proxy(pa)->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
        Py_RETURN_FALSE;
      tp.push_back(arg_tensor(pa, "sgd", "params", DType::f32, true));
      tg.push_back(arg_tensor(ga, "sgd", "grads", DType::f32));
    }
    if (!tp.empty()) {
      // Each updated parameter's memory changes in place (see bindings/changes.h).
      for (size_t i = 1; i < hold.size(); i += 2) note_inplace_change(hold[i].ptr());
      SgdOptions o{num[0], 0.0, 0.0, num[1], false, maximize == 1};
      ReleaseGilFor nogil(total_numel(tp));
      sgd_step(tp, tg, {}, {}, o);
    }
    Py_RETURN_TRUE;
  } catch (...) {
    set_python_error();
    return nullptr;
  }
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

  // A plain METH_FASTCALL function (no pybind11 dispatch): it runs once per training step.
  static PyMethodDef sgd_params_def = {
      "sgd_step_params",
      reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&sgd_step_params)),
      METH_FASTCALL,
      "sgd_step_params(params, lr, weight_decay, maximize) -> bool: one SGD step without "
      "momentum over a list of fastnn Tensors (their .grad), in place; False (nothing "
      "changed) unless every array is a plain C-contiguous float32 ndarray shaped like its "
      "parameter."};
  add_fastcall(m, &sgd_params_def);
}

}  // namespace fastnn
