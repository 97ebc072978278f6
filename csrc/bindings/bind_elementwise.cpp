#include "bindings/convert.h"

namespace fastnn {

void bind_elementwise(py::module_& m) {}

}  // namespace fastnn
