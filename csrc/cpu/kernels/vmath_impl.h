// exp, sigmoid and tanh on SIMD registers, for the AVX2 and AVX-512 activation loops
// (act_fwd_impl.h). Included after the ISA's `struct V` and `struct S` (simd_<isa>.h,
// simd_scalar.h); each function is written once on a register type T (V, or S for the
// elements past the last full register) whose operations round alike, so AVX2, AVX-512 and
// their tails give the same bits. The generic path keeps cpu/fastmath.h's scalar forms; the
// two agree to within the functions' ulp bounds (tests/test_activation.py).
// NOTE (speed): fastmath.h's scalar forms, auto-vectorised, build 2^n from integer ops and
// two multiplies, clamp with compares and selects, and tanh computes both a series and
// exp: 0.28 (exp) and 0.55 (tanh) ns an element on AVX-512 here. These take scalef (one
// instruction on AVX-512), min/max clamps that pass NaN through, and one formula for tanh.
#pragma once
#include <cstdint>

#include "cpu/fastmath.h"

namespace fastnn {
namespace {

template <class T>
using Reg = typename T::R;

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule with FMAs (fastmath.h's horner on T).
template <class T, int N>
inline Reg<T> vhorner(Reg<T> x, const float (&c)[N]) {
  Reg<T> p = T::set1(c[0]);
#pragma GCC unroll 32
  for (int i = 1; i < N; ++i) p = T::fma(p, x, T::set1(c[i]));
  return p;
}

// exp(r) - 1 for |r| <= ln2/2: r + r^2 P(r), P Cephes' expf polynomial (as fastmath.h's
// exp_f32).
template <class T>
inline Reg<T> vexpm1_reduced(Reg<T> r) {
  return T::fma(vhorner<T>(r, kExpPoly), T::mul(r, r), r);
}

// x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2; ln2 split in a part exact in float
// (n * 0.693359375 is exact for |n| <= 2^15) and a correction.
template <class T>
inline Reg<T> vreduce(Reg<T> x, Reg<T>* n) {
  *n = T::round(T::mul(x, T::set1(1.44269504088896341f)));
  const Reg<T> r = T::fma(*n, T::set1(-0.693359375f), x);
  return T::fma(*n, T::set1(2.12194440e-4f), r);
}

// exp(x), ~1 ulp, subnormal results rounded once (scalef). Clamped to [-104, 89] first,
// where exp is 0 below (it rounds to 0 from -103.97 on) and +inf above, which also takes
// -inf to 0 and +inf to +inf without an inf - inf; NaN passes the clamps and stays NaN.
template <class T>
inline Reg<T> vexp(Reg<T> x) {
  x = T::min(T::set1(89.f), T::max(T::set1(-104.f), x));
  Reg<T> n;
  const Reg<T> r = vreduce<T>(x, &n);
  return T::scalef(T::add(vexpm1_reduced<T>(r), T::set1(1.f)), n);
}

// 1 / (1 + exp(-x)), ~2 ulp, as fastmath.h's sigmoid_f32: e = exp(-|x|) <= 1, then 1 / (1 + e)
// for x >= 0 and e / (1 + e) below.
template <class T>
inline Reg<T> vsigmoid(Reg<T> x) {
  const Reg<T> e = vexp<T>(T::neg(T::abs(x)));
  return T::div(T::select_ge0(x, T::set1(1.f), e), T::add(T::set1(1.f), e));
}

// tanh(x), ~2 ulp: with a = |x| and e = expm1(2a), tanh(a) = e / (e + 2), one formula for
// every a. expm1 keeps its relative accuracy near 0 (n = 0 there, so e = expm1(r) itself),
// and above it is 2^n expm1(r) + (2^n - 1) in one FMA. a is clamped to 9.1, where tanh
// rounds to 1 in float (and e stays finite); NaN passes the clamp; the sign is x's.
template <class T>
inline Reg<T> vtanh(Reg<T> x) {
  const Reg<T> a = T::min(T::set1(9.1f), T::abs(x));
  Reg<T> n;
  const Reg<T> r = vreduce<T>(T::add(a, a), &n);
  const Reg<T> s = T::scalef(T::set1(1.f), n);  // 2^n, n <= 27: exact
  const Reg<T> e = T::fma(s, vexpm1_reduced<T>(r), T::sub(s, T::set1(1.f)));
  return T::with_sign_of(T::div(e, T::add(e, T::set1(2.f))), x);
}

// y[i] = F(x[i]); y may alias x. Four registers per step: each function is a long dependency
// chain, and independent ones side by side keep both vector pipes busy (as exp_row_impl in
// rowops_avx512.cpp).
template <Reg<V> (*FV)(Reg<V>), float (*FS)(float)>
inline void vmap(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W) {
    const Reg<V> a = V::load(x + i), b = V::load(x + i + V::W), c = V::load(x + i + 2 * V::W),
                 d = V::load(x + i + 3 * V::W);
    V::store(y + i, FV(a));
    V::store(y + i + V::W, FV(b));
    V::store(y + i + 2 * V::W, FV(c));
    V::store(y + i + 3 * V::W, FV(d));
  }
  for (; i + V::W <= n; i += V::W) V::store(y + i, FV(V::load(x + i)));
  for (; i < n; ++i) y[i] = FS(x[i]);
}

}  // namespace
}  // namespace fastnn
