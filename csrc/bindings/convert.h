// NumPy <-> Tensor without copies. Inputs become non-owning Tensor views (the Python caller
// keeps the array alive for the duration of the call); outputs become NumPy arrays that own
// a reference to the Tensor's storage.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>

#include "core/tensor.h"

namespace fastnn {
namespace py = pybind11;

// Any array-like argument must be an ndarray of float32/int64, C-contiguous; `writable` for
// arguments the op updates in place.
Tensor arg_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt,
                  bool writable = false);
// None -> undefined Tensor.
Tensor opt_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt);
py::array to_numpy(const Tensor& t);
// None for an undefined tensor (an output that was not requested), else to_numpy(t).
py::object opt_numpy(const Tensor& t);
// True when obj is an array that to_numpy made from storage the library allocated, and no
// other array or tensor shares that storage (the caller checks Python references to obj).
bool sole_owner(py::handle obj);

void bind_core(py::module_& m);
void bind_activation(py::module_& m);
void bind_dense(py::module_& m);
void bind_softmax(py::module_& m);
void bind_loss(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_reduce(py::module_& m);
void bind_optim(py::module_& m);
void bind_rnn(py::module_& m);
void bind_conv(py::module_& m);
void bind_mlp(py::module_& m);

}  // namespace fastnn
