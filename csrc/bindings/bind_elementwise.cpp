#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <vector>
#include <string>

#include "bindings/convert.h"
#include "bindings/shared.h"
#include "cpu/elementwise.h"
#include "ops/elementwise.h"

namespace fastnn {

static BinOp parse_binop(const std::string& s) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  for (int i = 0; i < 7; ++i)
    if (s == names[i]) return (BinOp)i;
  fail("binary", "unknown op '", s, "' (expected add, sub, mul, div, pow, maximum, minimum)");
}

static UnOp parse_unop(const std::string& s) {
  static const char* names[] = {"neg", "abs", "exp", "log", "sqrt"};
  for (int i = 0; i < 5; ++i)
    if (s == names[i]) return (UnOp)i;
  fail("unary", "unknown op '", s, "' (expected neg, abs, exp, log, sqrt)");
}

PyObject* binary_plain(int op, PyObject* x, PyObject* y, bool reflected, bool* handled) {
  *handled = false;
  if (op < (int)BinOp::add || op > (int)BinOp::minimum || !plain_f32_array(x)) return nullptr;
  // y: a Python number (a 0-d operand, stride 0 everywhere; any float, as x + 1e39 is inf in
  // PyTorch too) or a plain float32 array.
  float scalar = 0.f;
  bool number = number_as_f32(y, &scalar) != kNotNumber;
  if (!number && PyLong_CheckExact(y)) {  // an int beyond int64: through double, as before
    const double v = PyLong_AsDouble(y);
    if (v == -1.0 && PyErr_Occurred()) {  // (beyond double: the general route decides)
      PyErr_Clear();
      return nullptr;
    }
    scalar = float(v);
    number = true;
  }
  if (!number && !plain_f32_array(y)) {
    return nullptr;
  }
  const auto* ax = py::detail::array_proxy(x);
  const auto* ay = number ? nullptr : py::detail::array_proxy(y);
  const int nx = ax->nd, ny = ay ? ay->nd : 0, nd = std::max(nx, ny);
  if (nd > kMaxWalkDims) return nullptr;
  // The broadcast shape, and each operand's element strides over it (0 where it broadcasts),
  // on the stack (see Walk's NOTE in cpu/broadcast.h). Shapes that do not broadcast go the
  // general way, which names them in its error.
  int64_t shape[kMaxWalkDims], sx[kMaxWalkDims], sy[kMaxWalkDims];
  Py_intptr_t dims[kMaxWalkDims];
  int64_t stride_x = 1, stride_y = 1, n = 1;
  for (int d = nd - 1; d >= 0; --d) {
    const int ix = d - (nd - nx), iy = d - (nd - ny);
    const int64_t dx = ix >= 0 ? ax->dimensions[ix] : 1, dy = iy >= 0 ? ay->dimensions[iy] : 1;
    if (dx != dy && dx != 1 && dy != 1) return nullptr;
    shape[d] = dx == 1 ? dy : dx;
    dims[d] = Py_intptr_t(shape[d]);
    sx[d] = dx != 1 ? stride_x : 0;
    sy[d] = dy != 1 ? stride_y : 0;
    stride_x *= dx;
    stride_y *= dy;
    n *= shape[d];
  }
  *handled = true;
  PyObject* out = new_out_array(nd, dims);
  if (!out) return nullptr;
  const float* px = reinterpret_cast<const float*>(ax->data);
  const float* py_ = number ? &scalar : reinterpret_cast<const float*>(ay->data);
  float* po = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, n, [&] {
    const DimsRef sh(shape, size_t(nd)), stx(sx, size_t(nd)), sty(sy, size_t(nd));
    if (reflected) binary_f32((BinOp)op, sh, py_, sty, px, stx, po);
    else binary_f32((BinOp)op, sh, px, stx, py_, sty, po);
  });
}

namespace {

// A compare_plain / where_plain operand: *v from a Python number in float32's range, or inf or
// NaN (number_as_f32; *step 0), or *v the data of a plain float32 array of `like`'s shape
// (*step 1). False for anything else (a finite number beyond float32's range rounds to inf:
// the general route decides those).
bool f32_operand(PyObject* y, const py::detail::PyArray_Proxy* like, float* scalar,
                 const float** v, int64_t* step) {
  const NumberKind k = number_as_f32(y, scalar);
  if (k != kNotNumber) {
    *v = scalar;
    *step = 0;
    return k == kInRange || k == kNonFinite;
  }
  if (!plain_f32_array(y)) return false;
  const auto* ay = py::detail::array_proxy(y);
  if (ay->nd != like->nd || !std::equal(like->dimensions, like->dimensions + like->nd, ay->dimensions))
    return false;
  *v = reinterpret_cast<const float*>(ay->data);
  *step = 1;
  return true;
}

int64_t numel_of(const py::detail::PyArray_Proxy* a) {
  int64_t n = 1;
  for (int d = 0; d < a->nd; ++d) n *= a->dimensions[d];
  return n;
}

}  // namespace

PyObject* compare_plain(int op, PyObject* x, PyObject* y, bool* handled) {
  *handled = false;
  if (op < 0 || op > 5 || !plain_f32_array(x)) return nullptr;
  const auto* ax = py::detail::array_proxy(x);
  float scalar = 0.f;
  const float* py_ = nullptr;
  int64_t step = 0;
  if (!f32_operand(y, ax, &scalar, &py_, &step)) return nullptr;
  *handled = true;
  const auto& api = py::detail::npy_api::get();
  PyObject* out = api.PyArray_NewFromDescr_(api.PyArray_Type_,
                                            api.PyArray_DescrFromType_(py::detail::npy_api::NPY_BOOL_),
                                            ax->nd, ax->dimensions, nullptr, nullptr, 0, nullptr);
  if (!out) return nullptr;
  const int64_t n = numel_of(ax);
  const float* px = reinterpret_cast<const float*>(ax->data);
  bool* po = reinterpret_cast<bool*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, n, [&] { compare_f32(op, px, py_, step, po, n); });
}

PyObject* where_plain(PyObject* cond, PyObject* a, PyObject* b, bool* handled) {
  *handled = false;
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(cond)) return nullptr;
  const auto* ac = py::detail::array_proxy(cond);
  if (py::detail::array_descriptor_proxy(ac->descr)->type_num != py::detail::npy_api::NPY_BOOL_ ||
      !(ac->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
    return nullptr;
  float sa = 0.f, sb = 0.f;
  const float *pa = nullptr, *pb = nullptr;
  int64_t step_a = 0, step_b = 0;
  if (!f32_operand(a, ac, &sa, &pa, &step_a) || !f32_operand(b, ac, &sb, &pb, &step_b) ||
      (step_a == 0 && step_b == 0))
    return nullptr;
  *handled = true;
  PyObject* out = new_out_array(ac->nd, ac->dimensions);
  if (!out) return nullptr;
  const int64_t n = numel_of(ac);
  const bool* pc = reinterpret_cast<const bool*>(ac->data);
  float* po = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  return fill_plain(out, n, [&] { where_f32(pc, pa, step_a, pb, step_b, po, n); });
}

PyObject* clamp_plain(PyObject* x, PyObject* lo, PyObject* hi, bool* handled) {
  *handled = false;
  float b[2];
  const float* bound[2] = {nullptr, nullptr};
  PyObject* given[2] = {lo, hi};
  for (int i = 0; i < 2; ++i) {
    if (given[i] == Py_None) continue;
    // (inf, NaN and numbers beyond float32: the general route's rules and errors)
    if (number_as_f32(given[i], &b[i]) != kInRange) return nullptr;
    bound[i] = &b[i];
  }
  if (!bound[0] && !bound[1]) return nullptr;
  return elementwise_plain(x, handled, [&](const float* src, float* y, int64_t n) {
    clamp_f32(src, y, n, bound[0], bound[1]);
  });
}

PyObject* unary_plain(int op, PyObject* x, bool* handled) {
  *handled = false;
  if (op < (int)UnOp::neg || op > (int)UnOp::sqrt) return nullptr;
  return elementwise_plain(x, handled, [op](const float* src, float* y, int64_t n) {
    unary_f32((UnOp)op, src, y, n);
  });
}

namespace {

// The pybind11 function that handles binary_op's general case (set once in bind_elementwise).
PyObject* g_binary_general = nullptr;
const char* const kBinNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};

// _C.binary_op(a, b, op_code): binary_plain for plain float32 arrays, anything else through
// _C.binary (int64, other ops; it reports errors). Recorded arithmetic calls this once per op
// (Binary.forward), where pybind11's dispatch and the op-name parsing were ~0.7 us.
PyObject* binary_op_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3 || !PyLong_CheckExact(args[2])) {
    PyErr_SetString(PyExc_TypeError, "[binary_op] takes (a, b, op_code: int)");
    return nullptr;
  }
  const long op = PyLong_AsLong(args[2]);
  if (op < 0 || op > 6) {
    if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "[binary_op] unknown op code %ld", op);
    return nullptr;
  }
  bool handled = false;
  PyObject* out = binary_plain((int)op, args[0], args[1], false, &handled);
  if (handled) return out;
  PyObject* name = PyUnicode_FromString(kBinNames[op]);
  if (!name) return nullptr;
  PyObject* call[3] = {args[0], args[1], name};
  PyObject* r = PyObject_Vectorcall(g_binary_general, call, 3, nullptr);
  Py_DECREF(name);
  return r;
}

// _C.clamp(x, lo, hi): clamp_f32 on a C-contiguous float32 host array, lo and hi Python
// floats or None (fastnn.clamp's float32 path; one fastcall, as binary_op).
PyObject* clamp_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  float b[2];
  const float* bound[2] = {nullptr, nullptr};
  bool ok = nargs == 3 && plain_f32_array(args[0]);
  for (int i = 0; i < 2 && ok; ++i) {
    if (args[1 + i] == Py_None) continue;
    ok = PyFloat_CheckExact(args[1 + i]);
    if (ok) {
      b[i] = (float)PyFloat_AS_DOUBLE(args[1 + i]);
      bound[i] = &b[i];
    }
  }
  if (!ok) {
    PyErr_SetString(PyExc_TypeError,
                    "[clamp] takes (x: a C-contiguous float32 array, lo: float or None, "
                    "hi: float or None)");
    return nullptr;
  }
  bool handled = false;
  return elementwise_plain(args[0], &handled, [&](const float* x, float* y, int64_t n) {
    clamp_f32(x, y, n, bound[0], bound[1]);
  });
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("binary", [](py::handle a, py::handle b, const std::string& op) {
    BinOp o = parse_binop(op);
    Tensor ta = arg_tensor(a, binop_name(o), "input", std::nullopt);
    Tensor tb = arg_tensor(b, binop_name(o), "other", std::nullopt);
    Tensor out;
    { py::gil_scoped_release nogil; out = binary(o, ta, tb); }
    return to_numpy(out);
  }, py::arg("a"), py::arg("b"), py::arg("op"),
     "out = a op b with NumPy broadcasting; a, b: C-contiguous, same dtype (float32, or int64 "
     "for add/sub/mul/maximum/minimum).");
  g_binary_general = m.attr("binary").ptr();
  Py_INCREF(g_binary_general);  // kept for the life of the process, as the module is
  static PyMethodDef binary_op_def = {
      "binary_op", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&binary_op_fast)),
      METH_FASTCALL,
      "binary_op(a, b, op_code) -> array\n\nbinary(a, b, op) with the op as its code (add 0, "
      "sub 1, mul 2, div 3, pow 4, maximum 5, minimum 6), with the least per-call work for "
      "float32 operands."};
  add_fastcall(m, &binary_op_def);
  static PyMethodDef clamp_def = {
      "clamp", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&clamp_fast)),
      METH_FASTCALL,
      "clamp(x, lo, hi) -> array\n\nx limited to [lo, hi] (None: no limit), as torch.clamp: x "
      "itself within the bounds (-0 stays -0), a NaN x or bound gives NaN; x a C-contiguous "
      "float32 array."};
  add_fastcall(m, &clamp_def);
  m.def("binary_bwd", [](py::handle g, py::handle a, py::handle b, const std::string& op,
                         bool need_a, bool need_b) {
    BinOp o = parse_binop(op);
    const char* n = binop_name(o);
    Tensor tg = arg_tensor(g, n, "grad_output", DType::f32);
    Tensor ta = arg_tensor(a, n, "input", DType::f32);
    Tensor tb = arg_tensor(b, n, "other", DType::f32);
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = binary_backward(o, tg, ta, tb, need_a, need_b); }
    return py::make_tuple(need_a ? py::object(to_numpy(r.first)) : py::none(),
                          need_b ? py::object(to_numpy(r.second)) : py::none());
  }, py::arg("g"), py::arg("a"), py::arg("b"), py::arg("op"), py::arg("need_a") = true,
     py::arg("need_b") = true,
     "(da, db): gradients of sum(g * (a op b)) at the broadcast shape (None where not wanted).");
  m.def("binary_inplace", [](py::handle dst, py::handle src, const std::string& op, double alpha,
                             const std::string& name) {
    BinOp o = parse_binop(op);
    Tensor td = arg_tensor(dst, name.c_str(), "self", std::nullopt, /*writable=*/true);
    Tensor ts = arg_tensor(src, name.c_str(), "other", std::nullopt);
    { py::gil_scoped_release nogil; binary_inplace(o, td, ts, alpha, name.c_str()); }
  }, py::arg("dst"), py::arg("src"), py::arg("op"), py::arg("alpha") = 1.0,
     py::arg("name") = "add_",
     "dst = dst op (alpha * src) in place (op: add, mul, div); src broadcasts to dst's shape.");
  m.def("unary", [](py::handle x, const std::string& op) {
    UnOp o = parse_unop(op);
    Tensor tx = arg_tensor(x, unop_name(o), "input", std::nullopt);
    Tensor y;
    { py::gil_scoped_release nogil; y = unary(o, tx); }
    return to_numpy(y);
  }, py::arg("x"), py::arg("op"), "y = op(x): neg, abs (float32, int64), exp, log, sqrt (float32).");
  m.def("unary_bwd", [](py::handle g, py::handle x, py::handle y, const std::string& op) {
    UnOp o = parse_unop(op);
    const char* n = unop_name(o);
    Tensor tg = arg_tensor(g, n, "grad_output", DType::f32);
    Tensor tx = opt_tensor(x, n, "input", DType::f32);
    Tensor ty = opt_tensor(y, n, "output", DType::f32);
    Tensor dx;
    { py::gil_scoped_release nogil; dx = unary_backward(o, tg, tx, ty); }
    return to_numpy(dx);
  }, py::arg("g"), py::arg("x"), py::arg("y"), py::arg("op"),
     "dx = g * op'(x); x or y may be None where op does not need it.");
  m.def("expand", [](py::handle src, std::vector<int64_t> shape, double scale) {
    Tensor ts = arg_tensor(src, "expand", "grad_output", DType::f32);
    Tensor out;
    { py::gil_scoped_release nogil; out = expand(ts, shape, scale, "expand"); }
    return to_numpy(out);
  }, py::arg("src"), py::arg("shape"), py::arg("scale") = 1.0,
     "scale * src broadcast to shape (a new contiguous array).");
}

}  // namespace fastnn
