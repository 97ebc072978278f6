// fastnn._C: one bind_<area>.cpp per area; this file registers them and maps the C++ error
// types onto Python's built-in exceptions.
#include "bindings/convert.h"
#include "bindings/shared.h"
#include "core/error.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn compiled kernels (internal; use the fastnn package)";
  fastnn::register_error_translator();
  fastnn::bind_core(m);
  fastnn::bind_activation(m);
  fastnn::bind_dense(m);
  fastnn::bind_softmax(m);
  fastnn::bind_loss(m);
  fastnn::bind_elementwise(m);
  fastnn::bind_reduce(m);
  fastnn::bind_optim(m);
  fastnn::bind_rnn(m);
  fastnn::bind_conv(m);
  fastnn::bind_mlp(m);
  fastnn::bind_autograd(m);
}
