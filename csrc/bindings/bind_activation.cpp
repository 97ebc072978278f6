#include "bindings/convert.h"
#include "bindings/shared.h"
#include "cpu/act.h"
#include "ops/activation.h"

namespace fastnn {

static ActParams params(int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail("activation", "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
}

namespace {

// The pybind11 activation_fwd, which relu_fast hands everything but its fast case to.
PyObject* g_activation_fwd = nullptr;

// _C.relu(x): act_plain for a plain float32 ndarray (output from new_out_array, the GIL kept
// for small inputs), anything else through activation_fwd (which reports errors).
PyObject* relu_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs == 1) {
    bool handled = false;
    PyObject* out = act_plain((int)Act::relu, args[0], &handled);
    if (handled) return out;
  }
  if (nargs != 1) {
    PyErr_Format(PyExc_TypeError, "[relu] takes one argument (x), got %zd", nargs);
    return nullptr;
  }
  PyObject* call[2] = {args[0], PyLong_FromLong((long)Act::relu)};
  if (!call[1]) return nullptr;
  PyObject* r = PyObject_Vectorcall(g_activation_fwd, call, 2, nullptr);
  Py_DECREF(call[1]);
  return r;
}

}  // namespace

PyObject* act_plain(int act, PyObject* x, bool* handled) {
  *handled = false;
  if (act != (int)Act::relu && act != (int)Act::sigmoid && act != (int)Act::tanh) return nullptr;
  return elementwise_plain(x, handled, [act](const float* src, float* y, int64_t n) {
    activation_fwd(ActParams{(Act)act}, src, y, n);
  });
}

void bind_activation(py::module_& m) {
  m.def("activation_fwd", [](py::handle x, int act, float beta, float threshold) {
    ActParams p = params(act, beta, threshold);
    Tensor tx = arg_tensor(x, act_name(p.act), "input", DType::f32);
    Tensor y;
    {
      ReleaseGilFor nogil(tx.numel());
      y = activation_forward(tx, p);
    }
    return to_numpy(y);
  }, py::arg("x"), py::arg("act"), py::arg("beta") = 1.f, py::arg("threshold") = 20.f,
     "y = act(x). act codes: 0 identity, 1 relu, 2 sigmoid, 3 tanh, 4 gelu, 5 softplus.");
  // relu is the op a small network calls most, and pybind11's generic dispatch (~0.2 us) was
  // a fifth of its cost on 1000 floats: a plain CPython METH_FASTCALL function instead.
  g_activation_fwd = m.attr("activation_fwd").ptr();
  Py_INCREF(g_activation_fwd);  // kept for the life of the process, as the module is
  static PyMethodDef relu_def = {
      "relu", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&relu_fast)),
      METH_FASTCALL,
      "relu(x) -> ndarray\n\nactivation_fwd(x, 1) with the least per-call work for a "
      "C-contiguous float32 ndarray (anything else is handled, or reported, as by "
      "activation_fwd)."};
  add_fastcall(m, &relu_def);
  m.def("activation_bwd", [](py::handle dy, py::handle x, py::handle y, int act, float beta,
                             float threshold) {
    ActParams p = params(act, beta, threshold);
    const char* op = act_name(p.act);
    Tensor tdy = arg_tensor(dy, op, "grad_output", DType::f32);
    Tensor tx = opt_tensor(x, op, "input", DType::f32);
    Tensor ty = opt_tensor(y, op, "output", DType::f32);
    Tensor dx;
    {
      ReleaseGilFor nogil(tdy.numel());
      dx = activation_backward(tdy, tx, ty, p);
    }
    return to_numpy(dx);
  }, py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("act"), py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f, "dx = dy * act'(x); x or y may be None when not needed.");
}

}  // namespace fastnn
