#include "bindings/convert.h"

namespace fastnn {

void bind_softmax(py::module_& m) {}

}  // namespace fastnn
