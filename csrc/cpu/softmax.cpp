#include "cpu/softmax.h"
#include "cpu/isa.h"
#include "cpu/kernels/rowops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/parallel.h"

namespace fastnn {

namespace {
inline void exp_row_impl(const float* x, float a, float b, float s, float* y, int64_t n) {
  for (int64_t k = 0; k < n; ++k) y[k] = exp_f32((x[k] - a) - b) * s;
}
void exp_row_generic(const float* x, float a, float b, float s, float* y, int64_t n) {
  exp_row_impl(x, a, b, s, y, n);
}

// Generic row reductions: several independent lanes so the adds and compares pipeline.
float row_max_generic(const float* x, int64_t n) {
  constexpr int L = 8;
  float acc[L];
  for (int j = 0; j < L; ++j) acc[j] = -__builtin_inff();
  int64_t k = 0;
  for (; k + L <= n; k += L)
    for (int j = 0; j < L; ++j) acc[j] = x[k + j] > acc[j] ? x[k + j] : acc[j];
  for (; k < n; ++k) acc[0] = x[k] > acc[0] ? x[k] : acc[0];
  float m = acc[0];
  for (int j = 1; j < L; ++j) m = acc[j] > m ? acc[j] : m;
  return m;
}

template <bool Dot>
double row_sum_generic(const float* a, const float* b, int64_t n) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int j = 0; j < 4; ++j) acc[j] += Dot ? (double)a[k + j] * b[k + j] : (double)a[k + j];
  for (; k < n; ++k) acc[0] += Dot ? (double)a[k] * b[k] : (double)a[k];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
}  // namespace

void exp_row(const float* x, float a, float b, float s, float* y, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return exp_row_avx512(x, a, b, s, y, n);  // kernels/rowops_avx512.cpp
    case Isa::avx2: return exp_row_avx2(x, a, b, s, y, n);  // kernels/rowops_avx2.cpp
    case Isa::generic: break;
  }
#endif
  exp_row_generic(x, a, b, s, y, n);
}

double exp_row_sum(const float* x, float a, float b, float s, float* y, int64_t n) {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return exp_row_sum_avx512(x, a, b, s, y, n);
  if (active_isa() == Isa::avx2) return exp_row_sum_avx2(x, a, b, s, y, n);
#endif
  exp_row(x, a, b, s, y, n);
  return row_sum_f64(y, n);
}

int64_t short_row_max() {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return 63;
    case Isa::avx2: return 32;
    case Isa::generic: break;
  }
#endif
  return 0;
}

float row_max(const float* x, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return row_max_avx512(x, n);
    case Isa::avx2: return row_max_avx2(x, n);
    case Isa::generic: break;
  }
#endif
  return row_max_generic(x, n);
}

double row_sum_f64(const float* x, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return row_sum_f64_avx512(x, n);
    case Isa::avx2: return row_sum_f64_avx2(x, n);
    case Isa::generic: break;
  }
#endif
  return row_sum_generic<false>(x, nullptr, n);
}

double row_dot_f64(const float* a, const float* b, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return row_dot_f64_avx512(a, b, n);
    case Isa::avx2: return row_dot_f64_avx2(a, b, n);
    case Isa::generic: break;
  }
#endif
  return row_sum_generic<true>(a, b, n);
}

namespace {

// Work below this many elements stays on the calling thread (exp() dominates, so the
// threshold is lower than for plain elementwise ops).
constexpr int64_t kGrain = 1 << 14;
// Columns of a strided (inner > 1) problem handled together: the dim loop then walks
// kStrip contiguous floats per step instead of one float per cache line.
constexpr int64_t kStrip = 64;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Rows per parallel chunk so that each chunk holds at least kGrain elements.
inline int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(row_len, 1)); }

// NOTE (stability): softmax(x) = exp(x - m) / sum(exp(x - m)) with m = max(x), so every
// exponent is <= 0: nothing overflows for logits of 1e4 and the largest term is exactly 1,
// so the sum is >= 1 and its log is well defined. log_softmax is computed as
// (x - m) - log(sum), never as log(softmax): x - m is exact when x is near m, and tiny
// probabilities keep their log instead of underflowing to log(0) = -inf.
// NOTE (NaN/inf): the max ignores NaN (v > m is false), but exp(NaN - m) is NaN, so the sum
// and then the whole row become NaN, as in PyTorch. A row of all -inf gives m = -inf and
// -inf - (-inf) = NaN: the row is NaN, as in PyTorch. The sum is accumulated in double: it
// costs nothing next to exp() and keeps rows of 1000+ classes accurate.

void softmax_row(const float* x, float* y, int64_t n, bool log) {
  const float m = row_max(x, n);
  // The exps go through y (even for log_softmax, where y is then overwritten) so that this
  // loop has no reduction in it and vectorises.
  const double s = exp_row_sum(x, m, 0.f, 1.f, y, n);
  if (log) {
    const float ls = (float)std::log(s);
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - m) - ls;
  } else {
    const float inv = (float)(1.0 / s);
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
  }
}

// The same on a strip of w <= kStrip columns of one outer slice (row stride `inner`).
void softmax_strip(const float* x, float* y, int64_t dim, int64_t inner, int64_t w, bool log) {
  float m[kStrip];
  double s[kStrip];
  std::fill(m, m + w, kNegInf);
  std::fill(s, s + w, 0.0);
  for (int64_t k = 0; k < dim; ++k) {
    const float* xk = x + k * inner;
    for (int64_t j = 0; j < w; ++j) m[j] = xk[j] > m[j] ? xk[j] : m[j];
  }
  for (int64_t k = 0; k < dim; ++k) {
    const float* xk = x + k * inner;
    float* yk = y + k * inner;
    for (int64_t j = 0; j < w; ++j) {
      float e = exp_f32(xk[j] - m[j]);
      if (!log) yk[j] = e;
      s[j] += e;
    }
  }
  float f[kStrip];  // log: log(sum); softmax: 1/sum
  for (int64_t j = 0; j < w; ++j) f[j] = log ? (float)std::log(s[j]) : (float)(1.0 / s[j]);
  for (int64_t k = 0; k < dim; ++k) {
    const float* xk = x + k * inner;
    float* yk = y + k * inner;
    if (log)
      for (int64_t j = 0; j < w; ++j) yk[j] = (xk[j] - m[j]) - f[j];
    else
      for (int64_t j = 0; j < w; ++j) yk[j] *= f[j];
  }
}

void softmax_bwd_row(const float* dy, const float* y, float* dx, int64_t n, bool log) {
  if (log) {
    const float sf = (float)row_sum_f64(dy, n);
    // exp(y) * sum through the per-ISA exp loop into dx, then dy minus it. dx is a fresh
    // buffer (ops/softmax.cpp), never dy.
    exp_row(y, 0.f, 0.f, sf, dx, n);
    for (int64_t k = 0; k < n; ++k) dx[k] = dy[k] - dx[k];
  } else {
    const float sf = (float)row_dot_f64(dy, y, n);
    for (int64_t k = 0; k < n; ++k) dx[k] = y[k] * (dy[k] - sf);
  }
}

void softmax_bwd_strip(const float* dy, const float* y, float* dx, int64_t dim, int64_t inner,
                       int64_t w, bool log) {
  double s[kStrip];
  std::fill(s, s + w, 0.0);
  for (int64_t k = 0; k < dim; ++k) {
    const float* dyk = dy + k * inner;
    const float* yk = y + k * inner;
    if (log)
      for (int64_t j = 0; j < w; ++j) s[j] += dyk[j];
    else
      for (int64_t j = 0; j < w; ++j) s[j] += (double)dyk[j] * yk[j];
  }
  float sf[kStrip];
  for (int64_t j = 0; j < w; ++j) sf[j] = (float)s[j];
  for (int64_t k = 0; k < dim; ++k) {
    const float* dyk = dy + k * inner;
    const float* yk = y + k * inner;
    float* dxk = dx + k * inner;
    if (log)
      for (int64_t j = 0; j < w; ++j) dxk[j] = dyk[j] - exp_f32(yk[j]) * sf[j];
    else
      for (int64_t j = 0; j < w; ++j) dxk[j] = yk[j] * (dyk[j] - sf[j]);
  }
}

// Runs row(offset, w) over every (outer slice, strip of columns): rows of `dim` elements
// when inner == 1, strips of up to kStrip columns otherwise. `offset` is the element offset
// of the strip's first element, w its width.
template <class F>
void for_each_strip(int64_t outer, int64_t dim, int64_t inner, F&& fn) {
  if (outer == 0 || dim == 0 || inner == 0) return;
  if (inner == 1) {
    parallel_for(outer, row_grain(dim), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) fn(o * dim, 1);
    });
    return;
  }
  const int64_t strips = (inner + kStrip - 1) / kStrip;
  parallel_for(outer * strips, row_grain(dim * std::min(inner, kStrip)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / strips, j0 = (t % strips) * kStrip;
      fn(o * dim * inner + j0, std::min(kStrip, inner - j0));
    }
  });
}

template <class T>
inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// NOTE: `v > best` keeps the first index on ties (as NumPy and PyTorch); a NaN is taken as
// the maximum and, once found, nothing can replace it, so the first NaN wins (as PyTorch).
template <class T>
void argmax_impl(const T* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner) {
  if (outer == 0 || inner == 0) return;
  parallel_for(outer * inner, row_grain(dim), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / inner, j = t % inner;
      const T* p = x + o * dim * inner + j;
      T best = p[0];
      int64_t bi = 0;
      if (!is_nan(best)) {
        for (int64_t k = 1; k < dim; ++k) {
          const T v = p[k * inner];
          if (v > best || is_nan(v)) {
            best = v;
            bi = k;
            if (is_nan(v)) break;
          }
        }
      }
      idx[t] = bi;
    }
  });
}

}  // namespace

void softmax_fwd(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  // Nothing to do for an empty tensor, however many empty rows it has (the short-row loop
  // below would visit each of them).
  if (outer == 0 || dim == 0 || inner == 0) return;
  // The strips' SIMD forms (kernels/softmax_strip_impl.h) where the ISA has them.
  auto strip = softmax_strip;
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) strip = softmax_strip_avx512;
  else if (active_isa() == Isa::avx2) strip = softmax_strip_avx2;
  if (inner == 1 && dim <= short_row_max()) {
    // Short rows in one call per chunk of rows (see softmax_rows_short_avx512).
    auto rows_short = active_isa() == Isa::avx512 ? softmax_rows_short_avx512
                                                  : softmax_rows_short_avx2;
    parallel_for(outer, row_grain(dim), [&](int64_t b, int64_t e) {
      rows_short(x + b * dim, y + b * dim, e - b, dim, log);
    });
    return;
  }
#endif
  for_each_strip(outer, dim, inner, [&](int64_t off, int64_t w) {
    if (inner == 1) softmax_row(x + off, y + off, dim, log);
    else strip(x + off, y + off, dim, inner, w, log);
  });
}

void softmax_bwd(const float* dy, const float* y, float* dx, int64_t outer, int64_t dim,
                 int64_t inner, bool log) {
  if (outer == 0 || dim == 0 || inner == 0) return;  // (as softmax_fwd)
  auto strip = softmax_bwd_strip;
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) strip = softmax_bwd_strip_avx512;
  else if (active_isa() == Isa::avx2) strip = softmax_bwd_strip_avx2;
#endif
  for_each_strip(outer, dim, inner, [&](int64_t off, int64_t w) {
    if (inner == 1) softmax_bwd_row(dy + off, y + off, dx + off, dim, log);
    else strip(dy + off, y + off, dx + off, dim, inner, w, log);
  });
}

void argmax_f32(const float* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner) {
  argmax_impl(x, idx, outer, dim, inner);
}
void argmax_i64(const int64_t* x, int64_t* idx, int64_t outer, int64_t dim, int64_t inner) {
  argmax_impl(x, idx, outer, dim, inner);
}

}  // namespace fastnn
