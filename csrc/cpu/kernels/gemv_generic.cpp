// The matrix-vector loops one float at a time (see gemv_impl.h), for the generic path: S's
// operations, except a multiply and an add for S::fma (at the baseline ISA std::fma is a
// library call per element).
#include "cpu/kernels/simd_scalar.h"

namespace fastnn {
namespace {
struct V : S {
  static R fma(R a, R b, R c) { return a * b + c; }
  static float hsum(R a) { return a; }
};
}  // namespace
}  // namespace fastnn

#define FASTNN_GEMV_ROWS gemv_rows_generic
#define FASTNN_GEMV_COLS gemv_cols_generic
#define FASTNN_GEMV_PANELS gemv_panels_generic
#define FASTNN_GEMV_OUTER gemv_outer_generic
#include "cpu/kernels/gemv_impl.h"
