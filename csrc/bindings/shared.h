// Binding pieces both extension modules use (fastnn._C and fastnn._C_cuda). Header-only:
// _C_cuda does not link csrc/bindings/*.cpp.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "core/error.h"

namespace fastnn {
namespace py = pybind11;

// Inside a catch: for fastnn's own error types (core/error.h), sets Python's matching
// built-in exception and returns true; false for anything else.
inline bool translate_fastnn_error() {
  try {
    throw;
  } catch (const ValueError& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const TypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (...) {
    return false;
  }
  return true;
}

// The C++ error types onto Python's built-in exceptions (anything else: pybind11's default).
inline void register_error_translator() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (...) {
      if (!translate_fastnn_error()) throw;
    }
  });
}

// Inside a catch (...) of a plain METH_FASTCALL function (pybind11's translators do not run
// there): sets the Python exception pybind11 and register_error_translator would raise.
inline void set_python_error() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    if (translate_fastnn_error()) return;
    try {
      throw;
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (...) {
      PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
    }
  }
}

// m.<def->ml_name>: a plain CPython METH_FASTCALL function, for the calls a training step
// makes many times (pybind11's generic dispatch costs ~0.2 us a call). def must be static.
inline void add_fastcall(py::module_& m, PyMethodDef* def) {
  PyObject* f = PyCFunction_NewEx(def, nullptr, m.attr("__name__").ptr());
  if (!f) throw py::error_already_set();
  m.attr(def->ml_name) = py::reinterpret_steal<py::object>(f);
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
