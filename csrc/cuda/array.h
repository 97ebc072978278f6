// CudaArray: the device buffer behind a fastnn CUDA tensor (see CUDA_CONTRACT.md), and the
// helpers the bindings share. Host C++ only (no CUDA headers).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fastnn {
namespace cuda {

namespace py = pybind11;

enum class CDType : int { f32 = 0, i64 = 1, b8 = 2 };  // codes of kernels.h's fill/cast
const char* cdtype_name(CDType d);
size_t cdtype_size(CDType d);
CDType parse_cdtype(const std::string& s, const char* op);

// One device allocation. Ours go back to the caching allocator; imported (DLPack) memory
// runs its owner's release function (with the GIL held) instead.
struct Buffer {
  void* ptr = nullptr;
  size_t nbytes = 0;
  int device = 0;
  std::function<void()> release;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
};

// A C-contiguous view of (part of) a Buffer.
struct CudaArray {
  std::shared_ptr<Buffer> buf;
  void* data = nullptr;
  CDType dtype = CDType::f32;
  Shape shape;
  int device = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  size_t itemsize() const { return cdtype_size(dtype); }
  size_t nbytes() const { return (size_t)numel() * itemsize(); }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
};

// A new uninitialised array from the caching allocator (requires a device).
CudaArray new_array(const Shape& shape, CDType dt, int device, const char* op);

// Raises RuntimeError("[op] CUDA unavailable: <reason>") when no device can be used, and
// ValueError when device is not a valid index.
void require_device(const char* op, int device = -1);

// An op argument that must be a CudaArray on `device` (-1: the first array argument, whose
// device is then stored in `device` and made current); TypeError "[op] <name> must be a CUDA
// array on device N, got ..." otherwise (RuntimeError when no device is usable at all).
CudaArray& cuda_arg(py::handle obj, const char* op, const char* name, int& device);
// The same as a fastnn::Tensor (shape, dtype, device data pointer) for the shared argument
// checks of csrc/ops/common.h; dt: the required dtype, or null for float32 or int64. bool
// arrays are rejected like any unexpected dtype.
Tensor arg_view(py::handle obj, const char* op, const char* name, int& device,
                const DType* dt);
Tensor opt_view(py::handle obj, const char* op, const char* name, int& device, const DType* dt);
// A fresh float32/int64 output: the CudaArray the binding returns and a Tensor view of it
// for the kernels' pointers.
struct Out {
  CudaArray arr;
  Tensor t;
};
Out new_out(const Shape& shape, DType dt, int device, const char* op);

void bind_array(py::module_& m);
void bind_ops(py::module_& m);

}  // namespace cuda
}  // namespace fastnn
