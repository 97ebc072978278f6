#include "bindings/convert.h"

namespace fastnn {

void bind_reduce(py::module_& m) {}

}  // namespace fastnn
