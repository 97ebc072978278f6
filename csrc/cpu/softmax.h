// Softmax-family kernels (csrc/cpu/softmax.cpp) on raw, C-contiguous buffers.
//
// An N-d tensor reduced along one dim is viewed as (outer, dim, inner): element (o, k, j)
// sits at o*dim*inner + k*inner + j. inner == 1 (the last dim) is the hot case: each row is
// contiguous. Outputs are always overwritten, never accumulated.
#pragma once
#include <cstdint>
#include <cstring>

namespace fastnn {

// exp(x) for float32, inlined (libm's expf is a call per element and was the whole cost of
// softmax and cross-entropy). Branch-free so that it vectorises: the build sets
// -fno-trapping-math, and exp_row below compiles the row loop once per ISA.
// NOTE: range reduction x = n*ln2 + r, |r| <= ln2/2, with ln2 split in a hi part exact in
// float and a lo correction; exp(r) by the classic degree-7 (Cephes) polynomial, ~1 ulp;
// then scaled by 2^n built in the exponent bits. n is rounded with the 1.5*2^23 trick (exact
// float adds, no SSE4.1 round instruction). Below -87.3 the result (subnormal in float)
// is flushed to 0, so exp(-inf) = 0 exactly; above 88.7 it is +inf; NaN stays NaN (every
// comparison with NaN is false, so it falls through to the polynomial, which propagates it).
inline float exp_f32(float x) {
  const float hi = 88.7228f, lo = -87.3365f;
  // Quiet comparisons (no FP exception on NaN): NaN is neither under nor over.
  const bool under = __builtin_isless(x, lo), over = __builtin_isgreater(x, hi);
  float xc = over ? hi : x;
  xc = under ? lo : xc;
  const float magic = 12582912.f;  // 1.5 * 2^23
  const float t = xc * 1.44269504088896341f + magic;
  const float n = t - magic;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // 2^n for n in [-126, 128] as 2^(n/2) * 2^(n - n/2): each factor is a normal float even
  // at n = 128 (x just below 88.72, where exp(x) is still finite).
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

// y[k] = exp((x[k] - a) - b) * s over a row: the exp loop of softmax and cross-entropy,
// compiled for the baseline, AVX2+FMA and AVX-512 (target attributes in softmax.cpp) and
// chosen by fastnn::active_isa(), so FASTNN_ISA forces it like every other kernel path.
// y may alias x.
void exp_row(const float* x, float a, float b, float s, float* y, int64_t n);
// The same, returning sum_k y[k] (in double) from the same pass.
double exp_row_sum(const float* x, float a, float b, float s, float* y, int64_t n);

// max(x[0..n)) ignoring NaN (v > m is false for NaN), -inf for an empty row.
// Per ISA (csrc/cpu/kernels/rowops_*.cpp), chosen by fastnn::active_isa() like exp_row.
float row_max(const float* x, int64_t n);

// sum(x[0..n)) and sum(a[k]*b[k]) accumulated in double (the products exactly): next to
// exp() this costs nothing and keeps rows of 1000+ classes accurate. Per ISA, like row_max.
double row_sum_f64(const float* x, int64_t n);
double row_dot_f64(const float* a, const float* b, int64_t n);

// log == false: y = softmax(x); log == true: y = log_softmax(x).
// x: (outer, dim, inner), y: (outer, dim, inner).
void softmax_fwd(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log);

// Given the forward output y (probabilities, or log-probabilities when log):
//   softmax:     dx = y * (dy - sum_k(dy * y))
//   log_softmax: dx = dy - exp(y) * sum_k(dy)
// dy, y, dx: (outer, dim, inner); dx overwritten.
void softmax_bwd(const float* dy, const float* y, float* dx, int64_t outer, int64_t dim,
                 int64_t inner, bool log);

// idx[o, j] = the first k maximising x[o, k, j]; a NaN counts as larger than any number
// (the first NaN wins), as in PyTorch. dim >= 1.
// x: (outer, dim, inner), idx: (outer, inner).
void argmax_f32(const float* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner);
void argmax_i64(const int64_t* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner);

}  // namespace fastnn
