// `struct V`: one 8-float AVX2 register (with FMA) and the operations the elementwise kernel
// templates (optim_impl.h, act_bwd_impl.h) are written in, plus `struct S` (simd_scalar.h).
// Include only from a file built with AVX2 and FMA flags.
#pragma once
#include <immintrin.h>

#include "cpu/kernels/simd_scalar.h"

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
  static R pos_or_zero(R y, R d) {  // d where y > 0, else +0
    return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), d);
  }
};
}  // namespace
}  // namespace fastnn
