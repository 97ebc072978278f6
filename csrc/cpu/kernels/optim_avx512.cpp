// The optimizer loops on 16-float AVX-512 registers (see optim_impl.h).
#ifdef FASTNN_X86
#include <immintrin.h>

#include <cstdint>

namespace fastnn {
namespace {
struct V {
  using R = __m512;
  static constexpr int W = 16;
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R sqrt(R a) { return _mm512_sqrt_ps(a); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R neg(R a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a),
                                                  _mm512_set1_epi32(INT32_MIN))); }
};
}  // namespace
}  // namespace fastnn

#define FASTNN_SGD_SPAN sgd_span_avx512
#define FASTNN_ADAM_SPAN adam_span_avx512
#include "cpu/kernels/optim_impl.h"
#endif
