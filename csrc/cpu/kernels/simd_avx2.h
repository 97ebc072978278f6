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
  static R fms(R a, R b, R c) { return _mm256_fmsub_ps(a, b, c); }  // a * b - c, one rounding
  static float hsum(R a) {  // the sum of the lanes
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static R neg(R a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.f)); }
  static R pos_or_zero(R y, R d) {  // d where y > 0 or NaN (not y <= 0), else +0
    return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_NLE_UQ), d);
  }
  // For vmath_impl.h; the same results as simd_avx512.h's, bit for bit.
  static R min(R c, R x) { return _mm256_min_ps(c, x); }  // x when either is NaN
  static R max(R c, R x) { return _mm256_max_ps(c, x); }
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static R neg_abs(R a) { return _mm256_or_ps(a, _mm256_set1_ps(-0.f)); }  // -|a|
  // min(|x|, c) for a c > 0, and c for a NaN x (min returns its second operand then).
  static R abs_min_num(R x, R c) { return _mm256_min_ps(abs(x), c); }
  static R round(R a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^n for an integer n in [-252, 254], rounded once, as AVX-512's scalef: 2^n as
  // 2^(n/2) * 2^(n - n/2), two normal floats, and p * 2^(n/2) is exact for p in [0.5, 2).
  static R scalef(R p, R n) {
    const __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const R s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const R s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, n1), bias), 23));
    // (A NaN n comes with a NaN p in vmath_impl.h, and the product stays NaN.)
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  }
  static R with_sign_of(R y, R x) {  // y (>= 0) with x's sign bit
    return _mm256_or_ps(y, _mm256_and_ps(x, _mm256_set1_ps(-0.f)));
  }
  static R mant(R w, R* k) {  // w's mantissa as a float in [1, 2); *k its exponent (w > 0)
    const __m256i bits = _mm256_castps_si256(w);
    *k = _mm256_cvtepi32_ps(_mm256_sub_epi32(
        _mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xFF)),
        _mm256_set1_epi32(127)));
    return _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x3F800000)));
  }
  static R select_gt(R x, R c, R a, R b) {  // a where x > c, else b (b for NaN)
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, c, _CMP_GT_OQ));
  }
  static R select_ge0(R x, R a, R b) {  // a where x >= 0, else b (b for NaN)
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  }
  // Sums in double over a register's lanes (softmax_strip_impl.h): D holds W doubles.
  struct D {
    __m256d lo, hi;
  };
  static D dzero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static __m256d lo_pd(R a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
  static __m256d hi_pd(R a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }
  static D dacc(D s, R a) { return {_mm256_add_pd(s.lo, lo_pd(a)), _mm256_add_pd(s.hi, hi_pd(a))}; }
  static D dacc_mul(D s, R a, R b) {  // s + a * b, the product in double
    return {_mm256_fmadd_pd(lo_pd(a), lo_pd(b), s.lo), _mm256_fmadd_pd(hi_pd(a), hi_pd(b), s.hi)};
  }
  static void dstore(double* p, D s) {
    _mm256_storeu_pd(p, s.lo);
    _mm256_storeu_pd(p + 4, s.hi);
  }
};
}  // namespace
}  // namespace fastnn
