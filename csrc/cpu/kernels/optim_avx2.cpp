// The optimizer loops on 8-float AVX2 registers, with FMA (see optim_impl.h).
#ifdef FASTNN_X86
#include <immintrin.h>

namespace fastnn {
namespace {
struct V {
  using R = __m256;
  static constexpr int W = 8;
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(float v) { return _mm256_set1_ps(v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R sqrt(R a) { return _mm256_sqrt_ps(a); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R neg(R a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.f)); }
};
}  // namespace
}  // namespace fastnn

#define FASTNN_SGD_SPAN sgd_span_avx2
#define FASTNN_ADAM_SPAN adam_span_avx2
#include "cpu/kernels/optim_impl.h"
#endif
