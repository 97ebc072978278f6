// `struct V`: one 16-float AVX-512 register and the operations the elementwise kernel templates
// (optim_impl.h, act_bwd_impl.h) are written in, plus `struct S`, the same on one float for the
// elements past the last full register. Include only from a file built with AVX-512 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/kernels/simd_scalar.h"

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
  static R fms(R a, R b, R c) { return _mm512_fmsub_ps(a, b, c); }  // a * b - c, one rounding
  static float hsum(R a) { return _mm512_reduce_add_ps(a); }  // the sum of the lanes
  static R neg(R a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a),
                                                  _mm512_set1_epi32(INT32_MIN))); }
  static R pos_or_zero(R y, R d) {  // d where y > 0 or NaN (not y <= 0), else +0
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_NLE_UQ), d);
  }
  // For vmath_impl.h. min/max return their second operand when either is NaN (x86's rule),
  // so min(c, x) and max(c, x) pass a NaN x through.
  static R min(R c, R x) { return _mm512_min_ps(c, x); }
  static R max(R c, R x) { return _mm512_max_ps(c, x); }
  static R abs(R a) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a),
                                                _mm512_set1_epi32(0x7FFFFFFF)));
  }
  static R neg_abs(R a) {  // -|a| (one OR of the sign bit)
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a),
                                               _mm512_set1_epi32(INT32_MIN)));
  }
  // min(|x|, c) for a c > 0, and c for a quiet NaN x (IEEE minNum: not min's NaN
  // pass-through), in one instruction: range's "smaller magnitude" with the sign cleared. (A
  // signalling NaN x comes back as a quiet NaN; vmath_impl.h's callers keep a NaN x's NaN
  // either way.)
  static R abs_min_num(R x, R c) { return _mm512_range_ps(x, c, 0x0A); }
  static R round(R a) {  // to the nearest integer, ties to even
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static R scalef(R p, R n) { return _mm512_scalef_ps(p, n); }  // p * 2^n, rounded once
  static R with_sign_of(R y, R x) {  // y (>= 0) with x's sign bit
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(y),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN))));
  }
  static R mant(R w, R* k) {  // w's mantissa as a float in [1, 2); *k its exponent (w > 0)
    const __m512i bits = _mm512_castps_si512(w);
    *k = _mm512_cvtepi32_ps(_mm512_sub_epi32(
        _mm512_and_si512(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(0xFF)),
        _mm512_set1_epi32(127)));
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(bits, _mm512_set1_epi32(0x007FFFFF)), _mm512_set1_epi32(0x3F800000)));
  }
  static R select_gt(R x, R c, R a, R b) {  // a where x > c, else b (b for NaN)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, c, _CMP_GT_OQ), b, a);
  }
  static R select_ge0(R x, R a, R b) {  // a where x >= 0, else b (b for NaN)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), b, a);
  }
  // Sums in double over a register's lanes (softmax_strip_impl.h): D holds W doubles.
  struct D {
    __m512d lo, hi;
  };
  static D dzero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static __m512d lo_pd(R a) { return _mm512_cvtps_pd(_mm512_castps512_ps256(a)); }
  static __m512d hi_pd(R a) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)); }
  static D dacc(D s, R a) { return {_mm512_add_pd(s.lo, lo_pd(a)), _mm512_add_pd(s.hi, hi_pd(a))}; }
  static D dacc_mul(D s, R a, R b) {  // s + a * b, the product in double
    return {_mm512_fmadd_pd(lo_pd(a), lo_pd(b), s.lo), _mm512_fmadd_pd(hi_pd(a), hi_pd(b), s.hi)};
  }
  static void dstore(double* p, D s) {
    _mm512_storeu_pd(p, s.lo);
    _mm512_storeu_pd(p + 8, s.hi);
  }
};
}  // namespace
}  // namespace fastnn
