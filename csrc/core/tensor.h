// The C++ side of a tensor: dtype, shape, element strides and a refcounted storage.
// CPU storage is 64-byte aligned (one cache line, one AVX-512 register).
// Kernels take raw pointers; ops work on Tensors; bindings turn NumPy arrays into Tensors
// (non-owning views) and Tensors into NumPy arrays (sharing the storage), never copying.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/shape.h"

namespace fastnn {

enum class DType { f32, i64 };
inline const char* dtype_name(DType d) { return d == DType::f32 ? "float32" : "int64"; }
inline size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 8; }

struct Storage {
  void* ptr = nullptr;
  size_t nbytes = 0;
  std::function<void(void*)> deleter;  // empty: not owned (a view on memory held elsewhere)
  ~Storage() { if (deleter && ptr) deleter(ptr); }
};

constexpr size_t kAlignment = 64;
void* aligned_alloc_bytes(size_t nbytes);  // throws std::bad_alloc
void aligned_free(void* p);

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> s, void* data, DType dt, Shape shape, Shape strides)
      : storage_(std::move(s)), data_(data), dtype_(dt), shape_(std::move(shape)),
        strides_(std::move(strides)) {}

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int64_t ndim() const { return (int64_t)shape_.size(); }
  int64_t size(int64_t d) const { return shape_[d < 0 ? d + ndim() : d]; }
  int64_t numel() const { int64_t n = 1; for (auto s : shape_) n *= s; return n; }
  bool is_contiguous() const;
  bool defined() const { return data_ != nullptr || numel() == 0; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  template <class T> T* data() const { return static_cast<T*>(data_); }
  void* raw() const { return data_; }

 private:
  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::f32;
  Shape shape_, strides_;
};

Shape contiguous_strides(const Shape& shape);
// A new, owned, 64-byte-aligned, C-contiguous tensor (contents uninitialised / zeroed).
Tensor empty(const Shape& shape, DType dt);
Tensor zeros(const Shape& shape, DType dt);

}  // namespace fastnn
