// The matmul precision setting shared by the GEMM-based ops (ops.cpp).
#pragma once
#include <string>

#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {

void set_precision(const std::string& name);  // ValueError on an unknown name
std::string precision_name();
Precision current_precision();

}  // namespace cuda
}  // namespace fastnn
