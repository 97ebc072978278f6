#include "bindings/convert.h"
#include "ops/activation.h"

namespace fastnn {

static ActParams params(int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail("activation", "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
}

namespace {
// NOTE: below this many elements the kernel takes about as long as releasing and re-taking
// the GIL (~0.1 us), so small calls keep it (they never call back into Python). The same
// reasoning as kReleaseGilMacs in bind_dense.cpp.
constexpr int64_t kReleaseGilElems = int64_t(1) << 14;
}  // namespace

void bind_activation(py::module_& m) {
  m.def("activation_fwd", [](py::handle x, int act, float beta, float threshold) {
    ActParams p = params(act, beta, threshold);
    Tensor tx = arg_tensor(x, act_name(p.act), "input", DType::f32);
    Tensor y;
    if (tx.numel() >= kReleaseGilElems) {
      py::gil_scoped_release nogil;
      y = activation_forward(tx, p);
    } else {
      y = activation_forward(tx, p);
    }
    return to_numpy(y);
  }, py::arg("x"), py::arg("act"), py::arg("beta") = 1.f, py::arg("threshold") = 20.f,
     "y = act(x). act codes: 0 identity, 1 relu, 2 sigmoid, 3 tanh, 4 gelu, 5 softplus.");
  m.def("activation_bwd", [](py::handle dy, py::handle x, py::handle y, int act, float beta,
                             float threshold) {
    ActParams p = params(act, beta, threshold);
    const char* op = act_name(p.act);
    Tensor tdy = arg_tensor(dy, op, "grad_output", DType::f32);
    Tensor tx = opt_tensor(x, op, "input", DType::f32);
    Tensor ty = opt_tensor(y, op, "output", DType::f32);
    Tensor dx;
    if (tdy.numel() >= kReleaseGilElems) {
      py::gil_scoped_release nogil;
      dx = activation_backward(tdy, tx, ty, p);
    } else {
      dx = activation_backward(tdy, tx, ty, p);
    }
    return to_numpy(dx);
  }, py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("act"), py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f, "dx = dy * act'(x); x or y may be None when not needed.");
}

}  // namespace fastnn
