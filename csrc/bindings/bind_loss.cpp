#include "bindings/convert.h"

namespace fastnn {

void bind_loss(py::module_& m) {}

}  // namespace fastnn
