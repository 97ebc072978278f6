// `struct S`: one float as a "register", with the operations of simd_avx2.h / simd_avx512.h's
// `struct V`, so an elementwise kernel template runs its tail (the elements past the last full
// register) through the same code, rounded alike.
#pragma once
#include <cmath>
#include <cstdint>

namespace fastnn {
namespace {
struct S {
  using R = float;
  static constexpr int W = 1;
  static R load(const float* p) { return *p; }
  static void store(float* p, R v) { *p = v; }
  static R set1(float v) { return v; }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R div(R a, R b) { return a / b; }
  static R sqrt(R a) { return std::sqrt(a); }
  static R fma(R a, R b, R c) { return std::fma(a, b, c); }  // a * b + c, one rounding
  static R fms(R a, R b, R c) { return std::fma(a, b, -c); }  // a * b - c, one rounding
  static R neg(R a) { return -a; }
  static R pos_or_zero(R y, R d) { return y <= 0.f ? 0.f : d; }  // d where not y <= 0, else +0
  // For vmath_impl.h (the elements past the last register), rounding as the SIMD forms do.
  static R min(R c, R x) { return c < x ? c : x; }  // x when either is NaN, as minps
  static R max(R c, R x) { return c > x ? c : x; }
  static R abs(R a) { return std::fabs(a); }
  // -|a| as the SIMD forms' OR of the sign bit: written as -fabs(a), GCC folds the negation
  // into the ops after it (vsigmoid's clamp and exp), and a NaN came out with the other sign.
  static R neg_abs(R a) {
    return __builtin_bit_cast(float, __builtin_bit_cast(uint32_t, a) | 0x80000000u);
  }
  static R abs_min_num(R x, R c) {  // min(|x|, c) for a c > 0, and c for a NaN x
    const float a = std::fabs(x);
    return a < c ? a : c;
  }
  static R round(R a) { return std::nearbyint(a); }  // ties to even (the default mode)
  static R scalef(R p, R n) {  // p * 2^n, n an integer in [-252, 254] (see simd_avx2.h)
    if (!(n == n)) return p + n;  // NaN (no int conversion of a NaN)
    const int ni = (int)n, n1 = ni >> 1, n2 = ni - n1;
    return (p * std::ldexp(1.f, n1)) * std::ldexp(1.f, n2);
  }
  static R with_sign_of(R y, R x) { return std::copysign(y, x); }  // y >= 0
  static R mant(R w, R* k) {  // w's mantissa as a float in [1, 2); *k its exponent (w > 0)
    const int32_t bits = __builtin_bit_cast(int32_t, w);
    *k = (float)(((bits >> 23) & 0xFF) - 127);
    return __builtin_bit_cast(float, (bits & 0x007FFFFF) | 0x3F800000);
  }
  static R select_gt(R x, R c, R a, R b) { return x > c ? a : b; }
  static R select_ge0(R x, R a, R b) { return x >= 0.f ? a : b; }
  // Sums in double (softmax_strip_impl.h), as the SIMD forms' lanes.
  using D = double;
  static D dzero() { return 0.0; }
  static D dacc(D s, R a) { return s + (double)a; }
  static D dacc_mul(D s, R a, R b) { return std::fma((double)a, (double)b, s); }
  static void dstore(double* p, D s) { *p = s; }
};
}  // namespace
}  // namespace fastnn
