// The _C_cuda ops: the same names, signatures, checks and messages as the _C bindings
// (csrc/bindings/bind_*.cpp, csrc/ops/*.cpp), on CudaArrays.
#include "cuda/ops.h"

#include <pybind11/stl.h>

#include <atomic>

#include "cuda/array.h"
#include "ops/common.h"

namespace fastnn {
namespace cuda {

namespace {
std::atomic<int> g_precision{(int)Precision::highest};
const char* kPrecisionNames[] = {"highest", "high", "medium"};
}  // namespace

void set_precision(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kPrecisionNames[i]) {
      g_precision = i;
      return;
    }
  fail("set_matmul_precision", "precision must be 'highest', 'high' or 'medium', got '", name, "'");
}
std::string precision_name() { return kPrecisionNames[g_precision.load()]; }
Precision current_precision() { return (Precision)g_precision.load(); }

void bind_ops(py::module_& m) {}

}  // namespace cuda
}  // namespace fastnn
