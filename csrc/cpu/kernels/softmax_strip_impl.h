// softmax / log_softmax over a dim that is not the last one (cpu/softmax.cpp's strips: w
// columns side by side, consecutive elements of the dim `inner` floats apart), forward and
// backward, and cross-entropy over such a class dim (cpu/loss.cpp, (N, C, d1, ...) logits),
// on SIMD registers: one register of columns at a time walks the dim, the
// remaining columns one float at a time (struct S). Included by rowops_<isa>.cpp after its
// simd_<isa>.h, which defines FASTNN_STRIP_SUFFIX. The arithmetic is softmax.cpp's
// (max, exp(x - max) summed in double, then 1/sum or log(sum)), with vexp for exp.
// NOTE (speed): the scalar strip loops (exp_f32 per element, a double sum per column) ran at
// ~6.5 ns an element: softmax over dim 1 of 8x21x64x64 took 4.5 ms against PyTorch's 0.6.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/kernels/vmath_impl.h"

namespace fastnn {
namespace {

// Columns [0, T::W) of x, y (each pointing at its column 0 of the strip's first row).
template <class T>
inline void softmax_cols(const float* x, float* y, int64_t dim, int64_t inner, bool log) {
  using R = typename T::R;
  R m = T::set1(-std::numeric_limits<float>::infinity());
  // max(v, m) keeps m for a NaN v: the max ignores NaN, whose exp then makes the column NaN.
  for (int64_t k = 0; k < dim; ++k) m = T::max(T::load(x + k * inner), m);
  typename T::D s = T::dzero();
  for (int64_t k = 0; k < dim; ++k) {
    const R e = vexp<T>(T::sub(T::load(x + k * inner), m));
    if (!log) T::store(y + k * inner, e);
    s = T::dacc(s, e);
  }
  double sd[T::W];
  float f[T::W];  // log: log(sum); softmax: 1/sum
  T::dstore(sd, s);
  for (int j = 0; j < T::W; ++j) f[j] = log ? (float)std::log(sd[j]) : (float)(1.0 / sd[j]);
  const R fv = T::load(f);
  for (int64_t k = 0; k < dim; ++k) {
    float* yk = y + k * inner;
    if (log) T::store(yk, T::sub(T::sub(T::load(x + k * inner), m), fv));
    else T::store(yk, T::mul(T::load(yk), fv));
  }
}

template <class T>
inline void softmax_bwd_cols(const float* dy, const float* y, float* dx, int64_t dim,
                             int64_t inner, bool log) {
  using R = typename T::R;
  typename T::D s = T::dzero();
  for (int64_t k = 0; k < dim; ++k) {
    const R d = T::load(dy + k * inner);
    s = log ? T::dacc(s, d) : T::dacc_mul(s, d, T::load(y + k * inner));
  }
  double sd[T::W];
  float sf[T::W];
  T::dstore(sd, s);
  for (int j = 0; j < T::W; ++j) sf[j] = (float)sd[j];
  const R sv = T::load(sf);
  for (int64_t k = 0; k < dim; ++k) {
    const R d = T::load(dy + k * inner), yk = T::load(y + k * inner);
    // log: dx = dy - exp(y) * sum(dy); softmax: dx = y * (dy - sum(dy * y)).
    const R r = log ? T::sub(d, T::mul(vexp<T>(yk), sv)) : T::mul(yk, T::sub(d, sv));
    T::store(dx + k * inner, r);
  }
}

// Cross-entropy of columns [0, T::W) (positions side by side, the class dim `inner` floats
// apart; t, loss, stats at the first column's entries): cpu/loss.cpp's row arithmetic
// (max, exp(x - max) summed in double, log) with the positions in the lanes.
template <class T>
inline void ce_fwd_cols(const float* x, const int64_t* t, float* loss, float* stats, int64_t c,
                        int64_t inner, int64_t ignore_index) {
  using R = typename T::R;
  R m = T::set1(-std::numeric_limits<float>::infinity());
  for (int64_t k = 0; k < c; ++k) m = T::max(T::load(x + k * inner), m);
  typename T::D s = T::dzero();
  for (int64_t k = 0; k < c; ++k)
    s = T::dacc(s, vexp<T>(T::sub(T::load(x + k * inner), m)));
  double sd[T::W];
  float mf[T::W];
  T::dstore(sd, s);
  T::store(mf, m);
  for (int j = 0; j < T::W; ++j) {
    if (t[j] == ignore_index) {  // PyTorch: ignored positions contribute exactly 0
      loss[j] = 0.f;
      continue;
    }
    const float ls = (float)std::log(sd[j]);
    loss[j] = (mf[j] - x[t[j] * inner + j]) + ls;
    stats[2 * j] = mf[j];
    stats[2 * j + 1] = ls;
  }
}

// dx = (softmax - onehot) * g * scale over columns [0, T::W), 0 at ignored positions.
template <class T>
inline void ce_bwd_cols(const float* x, const int64_t* t, const float* stats, const float* g,
                        int64_t g_stride, float scale, float* dx, int64_t c, int64_t inner,
                        int64_t ignore_index) {
  using R = typename T::R;
  float mf[T::W], lf[T::W], gf[T::W];
  for (int j = 0; j < T::W; ++j) {
    const bool ign = t[j] == ignore_index;  // (their stats are unset: zeroed below)
    mf[j] = ign ? 0.f : stats[2 * j];
    lf[j] = ign ? 0.f : stats[2 * j + 1];
    gf[j] = ign ? 0.f : g[j * g_stride] * scale;
  }
  const R m = T::load(mf), ls = T::load(lf), gv = T::load(gf);
  for (int64_t k = 0; k < c; ++k)
    T::store(dx + k * inner, T::mul(vexp<T>(T::sub(T::sub(T::load(x + k * inner), m), ls)), gv));
  for (int j = 0; j < T::W; ++j) {
    if (t[j] == ignore_index) {
      for (int64_t k = 0; k < c; ++k) dx[k * inner + j] = 0.f;
    } else {
      dx[t[j] * inner + j] -= gf[j];
    }
  }
}

}  // namespace

#define FASTNN_STRIP_CAT2(a, b) a##b
#define FASTNN_STRIP_CAT(a, b) FASTNN_STRIP_CAT2(a, b)

void FASTNN_STRIP_CAT(softmax_strip_, FASTNN_STRIP_SUFFIX)(const float* x, float* y, int64_t dim,
                                                            int64_t inner, int64_t w, bool log) {
  int64_t j = 0;
  for (; j + V::W <= w; j += V::W) softmax_cols<V>(x + j, y + j, dim, inner, log);
  for (; j < w; ++j) softmax_cols<S>(x + j, y + j, dim, inner, log);
}

void FASTNN_STRIP_CAT(softmax_bwd_strip_, FASTNN_STRIP_SUFFIX)(const float* dy, const float* y,
                                                                float* dx, int64_t dim,
                                                                int64_t inner, int64_t w,
                                                                bool log) {
  int64_t j = 0;
  for (; j + V::W <= w; j += V::W) softmax_bwd_cols<V>(dy + j, y + j, dx + j, dim, inner, log);
  for (; j < w; ++j) softmax_bwd_cols<S>(dy + j, y + j, dx + j, dim, inner, log);
}

void FASTNN_STRIP_CAT(ce_fwd_strip_, FASTNN_STRIP_SUFFIX)(const float* x, const int64_t* t,
                                                           float* loss, float* stats, int64_t c,
                                                           int64_t inner, int64_t w,
                                                           int64_t ignore_index) {
  int64_t j = 0;
  for (; j + V::W <= w; j += V::W)
    ce_fwd_cols<V>(x + j, t + j, loss + j, stats + 2 * j, c, inner, ignore_index);
  for (; j < w; ++j) ce_fwd_cols<S>(x + j, t + j, loss + j, stats + 2 * j, c, inner, ignore_index);
}

void FASTNN_STRIP_CAT(ce_bwd_strip_, FASTNN_STRIP_SUFFIX)(const float* x, const int64_t* t,
                                                           const float* stats, const float* g,
                                                           int64_t g_stride, float scale,
                                                           float* dx, int64_t c, int64_t inner,
                                                           int64_t w, int64_t ignore_index) {
  int64_t j = 0;
  for (; j + V::W <= w; j += V::W)
    ce_bwd_cols<V>(x + j, t + j, stats + 2 * j, g + j * g_stride, g_stride, scale, dx + j, c,
                   inner, ignore_index);
  for (; j < w; ++j)
    ce_bwd_cols<S>(x + j, t + j, stats + 2 * j, g + j * g_stride, g_stride, scale, dx + j, c,
                   inner, ignore_index);
}

#undef FASTNN_STRIP_CAT
#undef FASTNN_STRIP_CAT2

}  // namespace fastnn
