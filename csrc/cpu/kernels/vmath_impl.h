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
#include <type_traits>

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

// x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2 (to within rounding); ln2 split in a
// part exact in float (n * 0.693359375 is exact for |n| <= 2^15) and a correction. n is
// rounded by adding and taking away 1.5 * 2^23, where a float's last bit is 1 (exact for
// |x / ln2| < 2^22; every caller's x is within +-113): one FMA and a subtraction, against a
// multiply and round's two uops. This assumes the default rounding mode (to nearest), as
// Python, NumPy and PyTorch leave it: under fesetround(FE_UPWARD) n comes out one too high
// near 0 and tanh(1e-6) 6.3e-7 (roundscale rounded to nearest in every mode).
// NOTE (speed): Intel Xeon VM (AVX-512), 1 thread, 100k floats, best of 300, three runs,
// round -> this: exp 14.7-15.1 -> 13.7-14.0 us, tanh 25.6-26.2 -> 24.4-25.0. (x / ln2 is
// rounded once here, not twice: n can differ from round's by one next to a tie, where r is
// then a hair past ln2/2 and the polynomial as accurate.)
template <class T>
inline Reg<T> vreduce(Reg<T> x, Reg<T>* n) {
  const Reg<T> shift = T::set1(12582912.f);  // 1.5 * 2^23
  *n = T::sub(T::fma(x, T::set1(1.44269504088896341f), shift), shift);
  const Reg<T> r = T::fma(*n, T::set1(-0.693359375f), x);
  return T::fma(*n, T::set1(2.12194440e-4f), r);
}

// exp(x) for x in [-113, 104] or NaN (the callers' ranges): ~1 ulp, subnormal results
// rounded once (scalef), 0 below -103.97 and +inf above 88.72; NaN stays NaN.
template <class T>
inline Reg<T> vexp_in_range(Reg<T> x) {
  Reg<T> n;
  const Reg<T> r = vreduce<T>(x, &n);
  return T::scalef(T::add(vexpm1_reduced<T>(r), T::set1(1.f)), n);
}

// exp(x) for every x: clamped to [-104, 89] first, where exp is 0 below and +inf above,
// which also takes -inf to 0 and +inf to +inf without an inf - inf; NaN passes the clamps
// and stays NaN.
template <class T>
inline Reg<T> vexp(Reg<T> x) {
  return vexp_in_range<T>(T::min(T::set1(89.f), T::max(T::set1(-104.f), x)));
}

// 1 / (1 + exp(-x)), ~2 ulp, as fastmath.h's sigmoid_f32: e = exp(-|x|) <= 1, then 1 / (1 + e)
// for x >= 0 and e / (1 + e) below.
// (-|x| needs only the lower clamp, which passes NaN: sigmoid 26.6 -> 22.5 us, measured as
// vreduce's.)
template <class T>
inline Reg<T> vsigmoid(Reg<T> x) {
  const Reg<T> e = vexp_in_range<T>(T::max(T::set1(-104.f), T::neg_abs(x)));
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

// log1p(u) for u >= 0, as fastmath.h's log1p_f32 (its operations in its order; its branches
// as selects): ~2 ulp; +inf and NaN come back as they came.
template <class T>
inline Reg<T> vlog1p(Reg<T> u) {
  const Reg<T> one = T::set1(1.f);
  const Reg<T> w = T::add(one, u);
  const Reg<T> c = T::sub(u, T::sub(w, one));  // w's rounding error, exact
  Reg<T> k;
  const Reg<T> m1 = T::mant(w, &k);
  const Reg<T> s2 = T::set1(1.41421356f);
  const Reg<T> m = T::select_gt(m1, s2, T::mul(T::set1(0.5f), m1), m1);
  k = T::add(k, T::select_gt(m1, s2, one, T::set1(0.f)));
  const Reg<T> x = T::sub(m, one);
  const Reg<T> z = T::mul(x, x);
  Reg<T> y = T::mul(T::mul(x, z), vhorner<T>(x, kLogPoly));
  y = T::fma(k, T::set1(-2.12194440e-4f), y);
  y = T::fma(T::set1(-0.5f), z, y);
  Reg<T> r = T::add(x, y);
  r = T::fma(k, T::set1(0.693359375f), r);
  r = T::add(r, T::div(c, w));
  return T::select_gt(T::set1(__builtin_inff()), u, r, u);
}

// softplus(x) = log(1 + exp(beta x)) / beta, x itself where beta x > threshold (act_fwd's
// rule and order): max(z, 0) + log1p(exp(-|z|)), which cannot overflow.
struct Softplus {
  float beta, thr;
  template <class T>
  Reg<T> operator()(Reg<T> x) const {
    const Reg<T> z = T::mul(T::set1(beta), x);
    const Reg<T> e = vexp_in_range<T>(T::max(T::set1(-104.f), T::neg_abs(z)));  // (as vsigmoid)
    const Reg<T> l = T::add(T::max(z, T::set1(0.f)), vlog1p<T>(e));
    return T::select_gt(z, T::set1(thr), x, T::div(l, T::set1(beta)));
  }
};

// Phi(x), the standard normal CDF, as fastmath.h's normal_cdf_f32 (its polynomial and exact
// x^2; the branches as selects; the clamps and signs arranged for fewer uops, see below), so
// gelu's SIMD and generic forms agree to within the functions' ulp bounds.
// NOTE (speed): one formula for every x. The two-polynomial form it replaced computed a series
// (|u| < 0.5) and a degree-16 polynomial (above) for every lane and selected one. Measured
// on Zen 4, 1 thread, 100k floats, best of 15, old -> new: gelu AVX-512 109 -> 69.5 us, AVX2
// 174 -> 117, generic 800 -> 531; gelu forward + backward AVX-512 283 -> 192 (gelu' shares
// Phi's exp(-x^2 / 2)). Two registers per step (vmap's U) as before: 4 measured the same.
// NOTE (speed): |x| is clamped once, at 10.5 sqrt(2) (exp(-x^2 / 2) is 0 in float from 14.4
// on), and a = |u| derived from it; the exp needs no clamp (-x^2 / 2 >= -110.25); the signs
// go into the constants (-0.5) and an FMS. 9 uops fewer than the form that took u = x / sqrt(2)
// and |x| apart. Intel Xeon VM (AVX-512), 1 thread, 100k floats, best of 300, three runs:
// gelu 51.5 -> 39.3-40.3 us (with vreduce's rounding). The accuracy is as before: over every
// float in [-13, -1], [-1, -0.25] and [0.25, 6], at most 6.16, 4.48 and 3.32 ulp in gelu.
// A NaN x gives a finite Phi here (the clamp returns 10.5 sqrt(2) for it): gelu's x Phi and
// gelu''s x phi keep the NaN.
template <class T>
inline Reg<T> vnormal_cdf(Reg<T> x, Reg<T>* g = nullptr) {
  const Reg<T> xc = T::abs_min_num(x, T::set1(14.8492424f));  // 10.5 sqrt(2)
  const Reg<T> a = T::mul(xc, T::set1(0.707106781f));  // |x| / sqrt(2), at most 10.5
  const Reg<T> w = T::div(T::set1(1.f), T::add(a, T::set1(1.f)));
  const Reg<T> q =
      vhorner<T>(T::fma(w, T::set1(kErfcxAlpha), T::set1(kErfcxBeta)), kErfcxPoly);
  // exp(-x^2 / 2) with x^2 taken exactly as sq + sq_lo (see normal_cdf_f32).
  const Reg<T> sq = T::mul(xc, xc);
  const Reg<T> sq_lo = T::fms(xc, xc, sq);
  const Reg<T> nhi = T::mul(T::set1(-0.5f), sq), nlo = T::mul(T::set1(-0.5f), sq_lo);
  const Reg<T> e = vexp_in_range<T>(nhi);
  const Reg<T> ec = T::fma(e, nlo, e);
  if (g) *g = ec;
  const Reg<T> half_erfc = T::mul(ec, T::mul(q, w));
  return T::select_ge0(x, T::sub(T::set1(1.f), half_erfc), half_erfc);
}

// gelu(x) = x Phi(x) (act.h's act_fwd<gelu>).
template <class T>
inline Reg<T> vgelu(Reg<T> x) {
  return T::mul(x, vnormal_cdf<T>(x));
}

// gelu'(x) = Phi(x) + x phi(x), in act_grad<gelu>'s order (phi's exp(-x^2 / 2) from Phi's).
template <class T>
inline Reg<T> vgelu_grad(Reg<T> x) {
  Reg<T> g;
  const Reg<T> cdf = vnormal_cdf<T>(x, &g);
  return T::add(cdf, T::mul(x, T::mul(T::set1(0.39894228040143268f), g)));
}

// y[i] = f(x[i]) for a functor with `template <class T> Reg<T> operator()(Reg<T>) const`, on
// V then S for the tail; y may alias x. U registers per step: each function is a long
// dependency chain, and independent ones side by side keep both vector pipes busy (as
// exp_row_impl in rowops_avx512.cpp); a function with many live values (gelu, softplus)
// takes fewer, or the 16 AVX2 registers spill.
template <int U, class F>
inline void vmapf(const float* x, float* y, int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + U * V::W <= n; i += U * V::W) {
    Reg<V> r[U];
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) r[u] = f.template operator()<V>(V::load(x + i + u * V::W));
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) V::store(y + i + u * V::W, r[u]);
  }
  for (; i + V::W <= n; i += V::W) V::store(y + i, f.template operator()<V>(V::load(x + i)));
  for (; i < n; ++i) y[i] = f.template operator()<S>(x[i]);
}

// The same for a function written once on T (vexp<T>, vgelu<T>, ...): FV and FS are its V and
// S forms.
template <Reg<V> (*FV)(Reg<V>), float (*FS)(float)>
struct PerType {
  template <class T>
  Reg<T> operator()(Reg<T> x) const {
    if constexpr (std::is_same_v<T, S>) return FS(x);
    else return FV(x);
  }
};
template <Reg<V> (*FV)(Reg<V>), float (*FS)(float), int U = 4>
inline void vmap(const float* x, float* y, int64_t n) {
  vmapf<U>(x, y, n, PerType<FV, FS>{});
}

}  // namespace
}  // namespace fastnn

namespace fastnn {
namespace {

// out[i] = f(a[i], b[i]) for a functor with `template <class T> Reg<T> operator()(Reg<T>,
// Reg<T>) const`, on V then S for the tail; out may alias a or b. Two registers per step.
template <class F>
inline void vzip(const float* a, const float* b, float* out, int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    const Reg<V> r0 = f.template operator()<V>(V::load(a + i), V::load(b + i));
    const Reg<V> r1 = f.template operator()<V>(V::load(a + i + V::W), V::load(b + i + V::W));
    V::store(out + i, r0);
    V::store(out + i + V::W, r1);
  }
  for (; i + V::W <= n; i += V::W)
    V::store(out + i, f.template operator()<V>(V::load(a + i), V::load(b + i)));
  for (; i < n; ++i) out[i] = f.template operator()<S>(a[i], b[i]);
}

// dy * gelu'(x) and dy * softplus'(x) (act_grad's: 1 above the threshold, else sigmoid(z),
// z = beta x; NaN stays NaN) as vzip functors.
struct GeluGradMul {
  template <class T>
  Reg<T> operator()(Reg<T> d, Reg<T> x) const { return T::mul(d, vgelu_grad<T>(x)); }
};
struct SoftplusGradMul {
  float beta, thr;
  template <class T>
  Reg<T> operator()(Reg<T> d, Reg<T> x) const {
    const Reg<T> z = T::mul(T::set1(beta), x);
    return T::mul(d, T::select_gt(z, T::set1(thr), T::set1(1.f), vsigmoid<T>(z)));
  }
};

}  // namespace
}  // namespace fastnn
