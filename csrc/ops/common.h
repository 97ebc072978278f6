// Argument checks shared by the op entry points. Each throws with "[op] ..." naming the
// argument, what was expected and what came.
#pragma once
#include "core/tensor.h"

namespace fastnn {

inline void check_dtype(const Tensor& t, DType dt, const char* op, const char* arg) {
  if (t.dtype() != dt)
    fail<TypeError>(op, arg, " must be ", dtype_name(dt), ", got ", dtype_name(t.dtype()));
}
inline void check_ndim(const Tensor& t, int64_t nd, const char* op, const char* arg) {
  if (t.ndim() != nd)
    fail(op, arg, " must be ", nd, "-D, got ", t.ndim(), "-D with shape ", shape_str(t.shape()));
}
inline void check_shape(const Tensor& t, const Shape& want, const char* op, const char* arg) {
  if (t.shape() != want)
    fail(op, arg, " must have shape ", shape_str(want), ", got ", shape_str(t.shape()));
}
inline void check_contiguous(const Tensor& t, const char* op, const char* arg) {
  if (!t.is_contiguous()) fail(op, arg, " must be contiguous, got strides ", shape_str(t.strides()));
}
// dim in [-ndim, ndim) -> [0, ndim)
inline int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = ndim == 0 ? 1 : ndim;
  if (dim < -n || dim >= n)
    fail<IndexError>(op, "dim must be in [", -n, ", ", n - 1, "], got ", dim);
  return dim < 0 ? dim + n : dim;
}

}  // namespace fastnn
