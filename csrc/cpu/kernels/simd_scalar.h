// `struct S`: one float as a "register", with the operations of simd_avx2.h / simd_avx512.h's
// `struct V`, so an elementwise kernel template runs its tail (the elements past the last full
// register) through the same code, rounded alike.
#pragma once
#include <cmath>

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
  static R neg(R a) { return -a; }
  static R pos_or_zero(R y, R d) { return y > 0.f ? d : 0.f; }  // d where y > 0, else +0
};
}  // namespace
}  // namespace fastnn
