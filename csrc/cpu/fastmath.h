// Branch-free float32 elementary functions, inlined so that the loops calling them vectorise
// (libm's expf, tanhf, log1pf are a call per element; tanhf was ~20 ns an element here). The
// activations (cpu/act.h), softmax and cross-entropy (cpu/softmax.cpp) and the RNN gates
// (cpu/rnn.cpp) use them. Each is a few ulp from the correctly rounded result; NaN stays NaN.
#pragma once
#include <cstdint>
#include <cstring>

// Forced inline: every file that loops over these compiles its own copy at its own ISA.
// NOTE: as plain `inline`, LTO kept one out-of-line copy (the baseline build's) for calls
// it had not inlined yet, and the AVX-512 softplus loop called it per element: 27 ns an
// element instead of ~3.
#define FASTNN_MATH_INLINE inline __attribute__((always_inline))

namespace fastnn {

// a * b + c: one fused, singly rounded operation where the file is compiled for FMA (the
// AVX2 and AVX-512 copies of the loops, which therefore give the same bits as each other),
// a rounded multiply and a rounded add elsewhere (the baseline x86-64 build has no FMA, and
// fmaf there is a libm call per element). The two differ by at most an ulp per step; the
// functions below stay within the same ulp bounds either way (tests/test_activation.py).
// NOTE (speed): about a third of these functions' operations are multiply-adds; fused, tanh
// on 100k floats went from 0.80 to 0.55 ns an element on AVX-512 (Intel Xeon, 1 thread).
FASTNN_MATH_INLINE float fmadd(float a, float b, float c) {
#ifdef __FMA__
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

// c[0] x^(N-1) + c[1] x^(N-2) + ... + c[N-1] by Horner's rule, fully unrolled so the calling
// loop vectorises.
template <int N>
FASTNN_MATH_INLINE float horner(float x, const float (&c)[N]) {
  float p = c[0];
#pragma GCC unroll 32
  for (int i = 1; i < N; ++i) p = fmadd(p, x, c[i]);
  return p;
}

// exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2: P, Cephes' expf polynomial, highest degree
// first (horner's order). Shared with the SIMD forms in kernels/vmath_impl.h.
inline constexpr float kExpPoly[] = {
    1.9875691500e-4f,
    1.3981999507e-3f,
    8.3334519073e-3f,
    4.1665795894e-2f,
    1.6666665459e-1f,
    5.0000001201e-1f,
};

// exp(x) for float32, inlined (libm's expf is a call per element and was the whole cost of
// softmax and cross-entropy). Branch-free so that it vectorises: the build sets
// -fno-trapping-math, and exp_row below compiles the row loop once per ISA.
// NOTE: range reduction x = n*ln2 + r, |r| <= ln2/2, with ln2 split in a hi part exact in
// float and a lo correction; exp(r) by the classic degree-7 (Cephes) polynomial, ~1 ulp;
// then scaled by 2^n built in the exponent bits. n is rounded with the 1.5*2^23 trick (exact
// float adds, no SSE4.1 round instruction). Between -103.97 and -87.3 the result is
// subnormal: the last multiply by 2^(n - n/2) rounds it there once (gradual underflow, as
// the AVX-512 exp16 in kernels/rowops_avx512.cpp gives); below -103.97 (where exp rounds to
// 0 in float) it is 0, so exp(-inf) = 0 exactly; above 88.7 it is +inf; NaN stays NaN (every
// comparison with NaN is false, so it falls through to the polynomial, which propagates it).
FASTNN_MATH_INLINE float exp_f32(float x) {
  const float hi = 88.7228f, lo = -103.972084f;
  // Quiet comparisons (no FP exception on NaN): NaN is neither under nor over.
  const bool under = __builtin_isless(x, lo), over = __builtin_isgreater(x, hi);
  float xc = over ? hi : x;
  xc = under ? lo : xc;
  const float magic = 12582912.f;  // 1.5 * 2^23
  const float t = fmadd(xc, 1.44269504088896341f, magic);
  const float n = t - magic;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  const float r = fmadd(n, 2.12194440e-4f, fmadd(n, -0.693359375f, xc));
  const float p = fmadd(horner(r, kExpPoly), r * r, r) + 1.f;
  // 2^n for n in [-150, 128] as 2^(n/2) * 2^(n - n/2): each factor is a normal float even
  // at n = 128 (x just below 88.72, where exp(x) is still finite) and n = -150.
  const int32_t ni = ti - 0x4B400000, n1 = ni >> 1, n2 = ni - n1;
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float y = (p * s1) * s2;
  y = under ? 0.f : y;
  y = over ? __builtin_inff() : y;
  return y;
}

// Cephes' logf polynomial in m - 1 (log1p_f32's; also vlog1p's, kernels/vmath_impl.h).
inline constexpr float kLogPoly[] = {
    7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
    -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
    2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f,
};

// log1p(u) for u >= 0 (softplus passes u = exp(-|z|) in (0, 1]), ~2 ulp.
// NOTE: w = 1 + u is rounded; its rounding error u - (w - 1) (exact, w - 1 being exact by
// Sterbenz for u <= 1) is added back as a first-order term / w, so a tiny u gives u itself.
// log(w) = k*ln2 + log(m) with m in [sqrt(1/2), sqrt(2)), by Cephes' logf polynomial in
// m - 1 and ln2 split hi/lo as in exp_f32. NaN and +inf fall through as NaN and +inf.
FASTNN_MATH_INLINE float log1p_f32(float u) {
  const float w = 1.f + u;
  const float c = u - (w - 1.f);
  // (__builtin_bit_cast, not memcpy: GCC would not vectorise log1p_f32(exp_f32(z)) with both
  // written as memcpy.)
  const int32_t bits = __builtin_bit_cast(int32_t, w);
  const int32_t mbits = (bits & 0x007FFFFF) | 0x3F800000;  // mantissa as a float in [1, 2)
  float m = __builtin_bit_cast(float, mbits);
  const bool big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  const float k = (float)(((bits >> 23) & 0xFF) - 127) + (big ? 1.f : 0.f);
  const float x = m - 1.f;
  const float z = x * x;
  const float p = horner(x, kLogPoly);
  float y = x * z * p;
  y = fmadd(k, -2.12194440e-4f, y);
  y = fmadd(-0.5f, z, y);
  float r = x + y;
  r = fmadd(k, 0.693359375f, r);
  r = r + c / w;
  // +inf and NaN (for which the quiet comparison is false) are returned as they came.
  return __builtin_isless(u, __builtin_inff()) ? r : u;
}

// 1 / (1 + exp(-x)), ~2 ulp, from the side where exp cannot overflow: e = exp(-|x|) <= 1,
// then 1 / (1 + e) for x >= 0 and e / (1 + e) below (one rounded division either way). Far
// out it gives exactly 0 or 1.
FASTNN_MATH_INLINE float sigmoid_f32(float x) {
  const float e = exp_f32(-__builtin_fabsf(x));
  return (x >= 0.f ? 1.f : e) / (1.f + e);
}

// tanh(x), ~3 ulp. |x| < 0.5: the odd Taylor series through x^17 (the next term is below
// 1e-9 relative there); above, 1 - 2 / (exp(2|x|) + 1), where the subtraction loses at most
// about a bit (the result is >= 0.46). exp overflows to +inf past |x| ~ 44, giving exactly 1.
FASTNN_MATH_INLINE float tanh_f32(float x) {
  const float a = __builtin_fabsf(x);
  const float z = x * x;
  static constexpr float kTanh[] = {
      5.90027440e-4f,  // 6404582 / 10854718875
      -1.45583438e-3f,  // -929569 / 638512875
      3.59212803e-3f,  // 21844 / 6081075
      -8.86323552e-3f,  // -1382 / 155925
      2.18694885e-2f,  // 62 / 2835
      -5.39682540e-2f,  // -17 / 315
      1.33333333e-1f,  // 2 / 15
      -3.33333333e-1f,  // -1 / 3
  };
  const float p = horner(z, kTanh);
  // (x's sign on the series too: x + x (z p) is +0 for x = -0, and tanh(-0) is -0.)
  const float small = __builtin_copysignf(fmadd(x, z * p, x), x);
  const float big = 1.f - 2.f / (exp_f32(2.f * a) + 1.f);
  const float t = __builtin_copysignf(big, x);
  return a < 0.5f ? small : t;
}

// log(1 + exp(z)), ~2 ulp, as max(z, 0) + log1p(exp(-|z|)): no overflow for any z, and
// exp(z) itself (to ~1 ulp) far below 0. (softplus applies its threshold on top.)
FASTNN_MATH_INLINE float log1pexp_f32(float z) {
  const float m = z > 0.f ? z : 0.f;
  return m + log1p_f32(exp_f32(-__builtin_fabsf(z)));
}

// normal_cdf_f32's polynomial (also vnormal_cdf's, kernels/vmath_impl.h): erfcx(a) (a + 1) / 2
// in t = (46 w - 25) / 21, w = 1 / (a + 1), for a = |u| in [0, 10.5] (t in [-1, 1]).
inline constexpr float kErfcxPoly[] = {
    -5.9966995e-05f, 8.941846e-05f,  1.5291056e-04f, -5.132364e-04f,
    5.9832056e-04f,  1.9701467e-04f, -3.0759536e-03f, 7.351752e-03f,
    -2.209495e-03f,  -4.088812e-02f, 1.0080497e-01f,  4.3755236e-01f,
};
inline constexpr float kErfcxAlpha = 2.1904762f, kErfcxBeta = -1.1904762f;  // 46/21, -25/21

// Phi(x) = erfc(-x / sqrt(2)) / 2, the standard normal CDF (gelu(x) = x Phi(x)), to a few
// ulp relative everywhere it is a normal float (below about x = -13 it is subnormal, then 0).
// NOTE: one formula for every x: with u = x / sqrt(2) and a = |u|, erfc(a) = exp(-u^2) w F(w),
// w = 1 / (a + 1), F a degree-11 polynomial fitted (Chebyshev nodes, float64, for this file)
// to erfcx(a) (a + 1) on a in [0, 10.5]; kErfcxPoly holds F / 2. F runs from 1 at a = 0 to
// 0.615 at 10.5; the float64 fit is within 2.5e-8 relative, the float32 table 5.8e-8, and
// q evaluated in float32 within 1.6 ulp. Phi = erfc/2 below 0, 1 - erfc/2 above, so the
// lower tail keeps its relative accuracy (libm's 1 + erf(u) cancels there) and 1 - erfc/2
// never cancels by more than a factor of 2. The shift by 1 (not by 0: w = 1/a is unbounded
// at 0) costs the rounding of a + 1: near 0 gelu is up to ~4.8 ulp off (the two-polynomial
// form this replaced, 1.5-3 ulp there, was slower by half), and Phi(-tiny) is 0.49999997.
// A larger shift costs more, a smaller one more terms. Checked against float64 erfc over
// every float in [-13, -1], [-1, -0.25] and [0.25, 6]: at most 6.2 ulp in gelu (x =
// -7.779716), 4.7 and 3.3; tests/test_activation.py allows 7.
// g, when given, receives exp(-x^2 / 2) (the normal density's factor, for gelu').
FASTNN_MATH_INLINE float normal_cdf_f32(float x, float* g = nullptr) {
  const float u = x * 0.707106781f;
  const float au = __builtin_fabsf(u);
  const float a = 10.5f < au ? 10.5f : au;  // (exp(-u^2) is 0 beyond; a NaN stays NaN)
  const float w = 1.f / (a + 1.f);
  const float q = horner(fmadd(w, kErfcxAlpha, kErfcxBeta), kErfcxPoly);
  // exp(-u^2) with u^2 = x^2 / 2 taken exactly, as hi + lo: rounding u or u^2 would cost
  // ~u^2 ulp relative in this factor, ~200 ulp out at x = -13. exp(-hi - lo) = exp(-hi)
  // (1 - lo) to first order, |lo| being below an ulp of hi. lo is the exact rounding error
  // of x*x: one FMA where there is one, else Dekker's exact square on a Veltkamp split of x
  // (the build does not contract those into FMAs). Both give the same lo.
  const float xc = 15.f < __builtin_fabsf(x) ? 15.f : x;  // (exp(-112) is 0 in float anyway)
  const float sq = xc * xc;
#ifdef __FMA__
  const float sq_lo = __builtin_fmaf(xc, xc, -sq);
#else
  const float split = 4097.f * xc;
  const float xh = split - (split - xc), xl = xc - xh;
  const float sq_lo = ((xh * xh - sq) + 2.f * (xh * xl)) + xl * xl;
#endif
  const float hi = 0.5f * sq, lo = 0.5f * sq_lo;
  const float e = exp_f32(-hi);
  const float ec = fmadd(-e, lo, e);
  if (g) *g = ec;
  const float half_erfc = ec * (q * w);
  return u < 0.f ? half_erfc : 1.f - half_erfc;  // (NaN: NaN)
}

}  // namespace fastnn
