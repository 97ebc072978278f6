#include "bindings/convert.h"

#include <cmath>
#include <limits>
#include <string>

namespace fastnn {

std::string py_type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

namespace {

// float32 in native byte order: the dtype of nearly every argument, recognised from the
// descriptor's fields without creating dtype objects (~0.1 us less per argument).
bool native_f32(const py::detail::PyArrayDescr_Proxy* d) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  constexpr char kNative = '>';
#else
  constexpr char kNative = '<';
#endif
  return d->type_num == py::detail::npy_api::NPY_FLOAT_ &&
         (d->byteorder == '=' || d->byteorder == kNative);
}

}  // namespace

Tensor arg_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt,
                  bool writable) {
  if (!py::detail::npy_api::get().PyArray_Check_(obj.ptr()))
    fail<TypeError>(op, name, " must be an array, got ", py_type_name(obj));
  const auto* a = py::detail::array_proxy(obj.ptr());
  DType got;
  if (native_f32(py::detail::array_descriptor_proxy(a->descr))) {
    got = DType::f32;
  } else {
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (arr.dtype().equal(py::dtype::of<float>())) got = DType::f32;
    else if (arr.dtype().equal(py::dtype::of<int64_t>())) got = DType::i64;
    else
      fail<TypeError>(op, name, " must be ", dt ? dtype_name(*dt) : "float32 or int64",
                      ", got ", py::str(arr.dtype()).cast<std::string>());
  }
  if (dt && got != *dt) fail<TypeError>(op, name, " must be ", dtype_name(*dt), ", got ", dtype_name(got));
  if (!(a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    fail(op, name, " must be C-contiguous (use np.ascontiguousarray), got a strided view");
  if (writable && !(a->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
    fail(op, name, " must be writable, got a read-only array");
  const int nd = a->nd;
  Shape shape(nd), strides(nd);
  const int64_t item = (int64_t)dtype_size(got);
  int64_t numel = 1;
  for (int d = 0; d < nd; ++d) {
    shape[d] = a->dimensions[d];
    strides[d] = a->strides[d] / item;
    numel *= shape[d];
  }
  auto st = std::make_shared<Storage>();  // no deleter: NumPy owns the memory
  st->ptr = a->data;
  st->nbytes = (size_t)(numel * item);
  void* data = st->ptr;
  return Tensor(std::move(st), data, got, std::move(shape), std::move(strides));
}

Tensor opt_tensor(py::handle obj, const char* op, const char* name, std::optional<DType> dt) {
  if (obj.is_none()) return Tensor();
  return arg_tensor(obj, op, name, dt);
}

namespace {
constexpr const char* kStorageCapsule = "fastnn.storage";

void release_storage(PyObject* cap) {
  delete static_cast<std::shared_ptr<Storage>*>(PyCapsule_GetPointer(cap, kStorageCapsule));
}
}  // namespace

Shape shape_arg(py::handle obj, const char* op) {
  PyObject* o = obj.ptr();
  if (!PyTuple_Check(o) && !PyList_Check(o))
    fail<TypeError>(op, "shape must be a tuple of ints, got ", py_type_name(obj));
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
  PyObject** items = PySequence_Fast_ITEMS(o);
  Shape s;
  s.reserve((size_t)n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (!PyIndex_Check(items[i]) || PyBool_Check(items[i]))
      fail<TypeError>(op, "shape must be a tuple of ints, got an element of type ",
                      py_type_name(items[i]));
    const long long v = PyLong_AsLongLong(items[i]);
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    s.push_back((int64_t)v);
  }
  return s;
}

py::array to_numpy(const Tensor& t) {
  // The array's base is a capsule named kStorageCapsule holding a reference to the storage,
  // so sole_owner() below can recognise the library's own outputs.
  auto* holder = new std::shared_ptr<Storage>(t.storage());
  PyObject* cap = PyCapsule_New(holder, kStorageCapsule, release_storage);
  if (!cap) {
    delete holder;
    throw py::error_already_set();
  }
  auto owner = py::reinterpret_steal<py::object>(cap);
  // NOTE (speed): straight through NumPy's C API (as pybind11's py::array constructor does,
  // less its vectors, dtype objects and checks): _C.empty((32, 32)) 0.62 -> 0.46 us on Zen 3.
  const int64_t item = (int64_t)dtype_size(t.dtype());
  const int nd = (int)t.shape().size();
  if (nd > kNumpyMaxDims) fail("to_numpy", "at most ", kNumpyMaxDims, " dims, got ", nd);
  Py_intptr_t dims[kNumpyMaxDims], strides[kNumpyMaxDims];
  for (int d = 0; d < nd; ++d) {
    dims[d] = (Py_intptr_t)t.shape()[size_t(d)];
    strides[d] = (Py_intptr_t)(t.strides()[size_t(d)] * item);
  }
  const auto& api = py::detail::npy_api::get();
  // (int64_t's own type number, as py::dtype::of<int64_t>() gives: NPY_LONG on Linux)
  static const int i64 = py::dtype::of<int64_t>().num();
  PyObject* descr =
      api.PyArray_DescrFromType_(t.dtype() == DType::f32 ? py::detail::npy_api::NPY_FLOAT_ : i64);
  // No data (an empty tensor may have no storage): NumPy allocates its own, and the array
  // gets no base, so sole_owner does not take it for the library's.
  const bool own = t.raw() != nullptr;
  auto arr = py::reinterpret_steal<py::object>(api.PyArray_NewFromDescr_(
      api.PyArray_Type_, descr, nd, dims, own ? strides : nullptr, own ? t.raw() : nullptr,
      own ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0, nullptr));
  if (!arr) throw py::error_already_set();
  if (own && api.PyArray_SetBaseObject_(arr.ptr(), owner.release().ptr()) < 0)
    throw py::error_already_set();
  return py::reinterpret_steal<py::array>(arr.release());
}

py::object opt_numpy(const Tensor& t) {
  // An empty result may carry no storage; it is still a (0-element) array, not None.
  return t.defined() && (t.storage() || t.numel() == 0) ? py::object(to_numpy(t))
                                                       : py::object(py::none());
}

NumberKind number_as_f32(PyObject* o, float* v) {
  if (PyFloat_CheckExact(o)) {
    const double d = PyFloat_AS_DOUBLE(o);
    *v = float(d);
    if (!std::isfinite(d)) return kNonFinite;
    return std::fabs(d) <= double(std::numeric_limits<float>::max()) ? kInRange : kBeyond;
  }
  if (!PyLong_CheckExact(o)) return kNotNumber;
  int overflow = 0;
  const long long i = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow || (i == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return kNotNumber;
  }
  *v = float(i);  // (|i| < 2^63, far inside float32's range)
  return kInRange;
}

bool split_at_dim(const py::detail::PyArray_Proxy* a, PyObject* dim, ArrayDimSplit* s) {
  if (!PyLong_CheckExact(dim)) return false;
  const int nd = a->nd;
  const long d_in = PyLong_AsLong(dim);
  if (d_in == -1 && PyErr_Occurred()) {  // (beyond a long)
    PyErr_Clear();
    return false;
  }
  const long n = nd > 0 ? nd : 1;
  if (d_in < -n || d_in >= n) return false;
  s->dim = int((d_in + n) % n);
  s->outer = s->r = s->inner = 1;
  for (int i = 0; i < nd; ++i) {
    const int64_t size = a->dimensions[i];
    if (i < s->dim) s->outer *= size;
    else if (i == s->dim) s->r = size;
    else s->inner *= size;
  }
  return true;
}

PyObject* new_out_array(int nd, const Py_intptr_t* dims) {
  int64_t n = 1;
  for (int d = 0; d < nd; ++d) n *= dims[d];
  if (n < kLibraryOutFloats) return new_f32_array(nd, dims);
  return new_aligned_f32_array(nd, dims);
}

PyObject* new_aligned_f32_array(int nd, const Py_intptr_t* dims) {
  try {
    return to_numpy(empty(Shape(dims, dims + nd), DType::f32)).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (...) {
    return PyErr_NoMemory();
  }
}

bool sole_owner(py::handle obj) {
  if (!py::isinstance<py::array>(obj)) return false;
  auto a = py::reinterpret_borrow<py::array>(obj);
  PyObject* base = py::detail::array_proxy(a.ptr())->base;
  // A view of a library array (e.g. the transpose of a transposed result: NumPy stops
  // collapsing the base chain at an array whose base is not an ndarray) whose only reference
  // is this view's base pointer: nothing else can reach that array, so look through it.
  if (base && py::isinstance<py::array>(base) && Py_REFCNT(base) == 1)
    base = py::detail::array_proxy(base)->base;
  if (!base || !PyCapsule_IsValid(base, kStorageCapsule)) return false;
  const auto& sp = *static_cast<std::shared_ptr<Storage>*>(PyCapsule_GetPointer(base, kStorageCapsule));
  // Owned by the library (not a view of a caller's array), referenced by this capsule only
  // (no other array or C++ tensor shares it), and the array spans the whole storage.
  return sp && sp.use_count() == 1 && static_cast<bool>(sp->deleter) && a.data() == sp->ptr &&
         static_cast<size_t>(a.nbytes()) == sp->nbytes && (a.flags() & py::array::c_style) &&
         a.writeable();
}

}  // namespace fastnn
