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
// The name of obj's Python type, for error messages.
std::string py_type_name(py::handle obj);

Tensor arg_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt,
                  bool writable = false);
// None -> undefined Tensor.
Tensor opt_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt);
py::array to_numpy(const Tensor& t);
// A shape argument: a tuple or list of ints (TypeError "[op] shape must be ..." otherwise).
Shape shape_arg(py::handle obj, const char* op);
// None for an undefined tensor (an output that was not requested), else to_numpy(t).
py::object opt_numpy(const Tensor& t);
// True when obj is an array that to_numpy made from storage the library allocated, and no
// other array or tensor shares that storage (the caller checks Python references to obj).
bool sole_owner(py::handle obj);

// A fast path's argument test, straight on the NumPy object: a float32 (native byte order),
// C-contiguous ndarray with `ndim` dimensions (any number for -1). Anything else goes the
// general way (which also reports errors).
inline bool plain_f32_array(PyObject* o, int ndim = -1) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(o)) return false;
  const auto* a = py::detail::array_proxy(o);
  if ((ndim >= 0 && a->nd != ndim) || !(a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    return false;
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  return d->type_num == py::detail::npy_api::NPY_FLOAT_ && d->byteorder != '>';
}

// The most dims an ndarray has (NumPy 2's NPY_MAXDIMS; NumPy 1's is 32).
constexpr int kNumpyMaxDims = 64;

// A new C-contiguous float32 ndarray of the given shape (uninitialised), or null with a
// Python error set.
inline PyObject* new_f32_array(int nd, const Py_intptr_t* dims) {
  const auto& api = py::detail::npy_api::get();
  return api.PyArray_NewFromDescr_(api.PyArray_Type_,
                                   api.PyArray_DescrFromType_(py::detail::npy_api::NPY_FLOAT_),
                                   nd, const_cast<Py_intptr_t*>(dims), nullptr, nullptr, 0,
                                   nullptr);
}

// A new C-contiguous float32 ndarray for a fast path's result (uninitialised), or null with a
// Python error set. From kLibraryOutFloats elements up it comes from the library allocator
// (to_numpy(empty(...))): 64-byte aligned, so a GEMM that reads it next runs at full speed
// (a 16-byte-aligned B cost the in-place kernels 5-10%), and adoptable as a leaf's gradient
// without a copy (sole_owner). Smaller ones come from NumPy's allocator, ~0.15 us cheaper,
// which matters for ops that take well under a microsecond. Defined in convert.cpp.
constexpr int64_t kLibraryOutFloats = 4096;
PyObject* new_out_array(int nd, const Py_intptr_t* dims);
// The same from the library allocator whatever the size (a factory's result: fastnn.zeros
// and the like promise 64-byte-aligned storage).
PyObject* new_aligned_f32_array(int nd, const Py_intptr_t* dims);

// a·b for two 2-D float32 arrays that the GEMM reads in place (C-contiguous, a transposed
// view such as w.T, or a row or column slice; see gemm_operand in bind_dense.cpp) with
// matching inner dimensions, into a new NumPy array: *handled = true and the product, or null with a Python error set (out of
// memory). Any other pair: *handled = false and null, no error set (the caller takes its
// general path, which also reports errors). Defined in bind_dense.cpp.
PyObject* mm_plain(PyObject* a, PyObject* b, bool* handled);
// act(x) for a plain float32 array (plain_f32_array, any shape), the same way, for act relu,
// sigmoid or tanh (Act's codes); defined in bind_activation.cpp.
PyObject* act_plain(int act, PyObject* x, bool* handled);
// op(x) for op neg, abs, exp, log or sqrt (UnOp's codes), the same way; defined in
// bind_elementwise.cpp.
PyObject* unary_plain(int op, PyObject* x, bool* handled);
// cat (stack false) or stack (true) along dim 0 of the arrays in `items` into a new aligned
// array; None when a piece is strided or the dtype is not float32/int64; shape errors raised
// with cat's/stack's messages. Defined in bind_core.cpp.
py::object cat0_arrays(const py::tuple& items, bool stack);
// softmax(x) (log_softmax when log) along dim for a plain float32 array and dim an exact int
// in [-ndim, ndim) (a 0-d array: 0 or -1), the same way; defined in bind_softmax.cpp.
PyObject* softmax_plain(PyObject* x, PyObject* dim, bool log, bool* handled);
// sum (mean when `mean`) of a plain float32 array over all dims (dim None) or along dim (an
// exact int, as softmax_plain's), keepdim as PyTorch, the same way; results equal the general
// route's (_C.sum). An array of no dims is declined. Defined in bind_reduce.cpp.
PyObject* sum_plain(PyObject* x, PyObject* dim, bool keepdim, bool mean, bool* handled);
// x op y (y op x when `reflected`) for op add, sub, mul, div or pow (BinOp's order, as an
// int), the same way: x a plain float32 array, y one too with a shape that broadcasts against
// x's, or a Python float or int (exactly: not bool), taken as float32 as a PyTorch float32
// tensor takes a Python scalar. Defined in bind_elementwise.cpp.
PyObject* binary_plain(int op, PyObject* x, PyObject* y, bool reflected, bool* handled);
// x op y as a new bool array for op eq, ne, lt, le, gt, ge (0..5, compare_f32's order), the
// same way: x a plain float32 array, y one of x's shape or a Python float or int (exactly)
// within float32's range (or inf or NaN), taken as float32. Defined in bind_elementwise.cpp.
PyObject* compare_plain(int op, PyObject* x, PyObject* y, bool* handled);
// where(cond, a, b) as a new float32 array, the same way: cond a C-contiguous bool array, a
// and b plain float32 arrays of its shape or Python numbers as compare_plain takes them, not
// both numbers. Defined in bind_elementwise.cpp.
PyObject* where_plain(PyObject* cond, PyObject* a, PyObject* b, bool* handled);
// clamp(x, lo, hi) for a plain float32 array, the same way: lo and hi None or Python floats or
// ints (exactly) in float32's finite range, not both None (clamp_f32's rules). Defined in
// bind_elementwise.cpp.
PyObject* clamp_plain(PyObject* x, PyObject* lo, PyObject* hi, bool* handled);

// A Python float or int (exactly, not bool) as the float32 that PyTorch makes of a number
// against a float32 tensor, rounded once: a float from its double, an int from its int64.
// Returns kNotNumber (anything else, or an int beyond int64: no error set), kInRange (finite
// and within float32's finite range before rounding), kNonFinite (inf or NaN) or kBeyond (a
// finite float beyond float32's range, which rounds to +-inf). Each plain entry decides which
// it takes; the general routes decide the rest.
enum NumberKind { kNotNumber, kInRange, kNonFinite, kBeyond };
NumberKind number_as_f32(PyObject* o, float* v);

// Releases the GIL for the scope when a call has enough work for other Python threads to
// make use of the time. NOTE: below kReleaseGilWork elements a kernel takes about as long as
// releasing and re-taking the GIL (~0.1 us), so small calls keep it; they never call back
// into Python. (bind_dense.cpp's GEMMs count multiply-adds against 2x this.)
constexpr int64_t kReleaseGilWork = int64_t(1) << 14;
class ReleaseGilFor {
 public:
  explicit ReleaseGilFor(int64_t work) {
    if (work >= kReleaseGilWork) state_ = PyEval_SaveThread();
  }
  ~ReleaseGilFor() {
    if (state_) PyEval_RestoreThread(state_);
  }
  ReleaseGilFor(const ReleaseGilFor&) = delete;
  ReleaseGilFor& operator=(const ReleaseGilFor&) = delete;

 private:
  PyThreadState* state_ = nullptr;
};

// out after kernel() has filled it, the GIL released when `work` elements make it worth it
// (ReleaseGilFor); when the kernel throws (the pool may fail to start), null with MemoryError
// set and out released: nothing may propagate into CPython. The plain entries' last step.
template <class F>
PyObject* fill_plain(PyObject* out, int64_t work, F kernel) {
  bool failed = false;
  {
    ReleaseGilFor nogil(work);
    try { kernel(); } catch (...) { failed = true; }
  }
  if (failed) {
    Py_DECREF(out);
    return PyErr_NoMemory();
  }
  return out;
}

// An array's dims split at dim: outer (the product of the dims before), r (dim's size) and
// inner (after). False when dim is not an exact int in [-ndim, ndim) (a 0-d array takes 0
// and -1, as PyTorch): the caller's general route reports it. Defined in convert.cpp.
struct ArrayDimSplit {
  int dim;
  int64_t outer, r, inner;
};
bool split_at_dim(const py::detail::PyArray_Proxy* a, PyObject* dim, ArrayDimSplit* s);

// The body of the one-operand plain entries (act_plain, unary_plain): f(x, y, n) from a plain
// float32 array into a new one of its shape (new_out_array), the GIL released for large
// inputs. Anything else: *handled = false and null, no error set.
template <class F>
PyObject* elementwise_plain(PyObject* x, bool* handled, F f) {
  *handled = false;
  if (!plain_f32_array(x)) return nullptr;
  *handled = true;
  const auto* a = py::detail::array_proxy(x);
  int64_t n = 1;
  for (int d = 0; d < a->nd; ++d) n *= a->dimensions[d];
  PyObject* out = new_out_array(a->nd, a->dimensions);
  if (!out) return nullptr;
  const float* src = reinterpret_cast<const float*>(a->data);
  float* y = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, n, [&] { f(src, y, n); });
}

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
void bind_autograd(py::module_& m);

}  // namespace fastnn
