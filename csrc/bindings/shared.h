// Binding pieces both extension modules use (fastnn._C and fastnn._C_cuda). Header-only:
// _C_cuda does not link csrc/bindings/*.cpp.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "core/error.h"

namespace fastnn {
namespace py = pybind11;

// The C++ error types onto Python's built-in exceptions (anything else: pybind11's default).
inline void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    }
  });
}

// sgd's first_step: one bool for every parameter, or a list with one bool per parameter.
inline std::vector<bool> first_step_flags(py::handle obj, size_t n) {
  if (py::isinstance<py::bool_>(obj)) return std::vector<bool>(n, obj.cast<bool>());
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    fail<TypeError>("sgd", "first_step must be a bool or a list of bools");
  std::vector<bool> out;
  for (auto v : py::reinterpret_borrow<py::sequence>(obj)) out.push_back(v.cast<bool>());
  return out;
}

}  // namespace fastnn
