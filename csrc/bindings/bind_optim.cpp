#include "bindings/convert.h"

namespace fastnn {

void bind_optim(py::module_& m) {}

}  // namespace fastnn
