#include "bindings/convert.h"

namespace fastnn {

void bind_dense(py::module_& m) {}

}  // namespace fastnn
