#include "bindings/convert.h"
#include "ops/activation.h"

namespace fastnn {

static ActParams params(int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail("activation", "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
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
