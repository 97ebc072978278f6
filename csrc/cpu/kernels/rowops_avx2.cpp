// AVX2 row reductions (see rowops.h); scalar tails, except for exp_row's masked ones.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/kernels/rowops.h"
#include "cpu/kernels/simd_avx2.h"
#include "cpu/kernels/vmath_impl.h"
#include "cpu/kernels/ce_rows_impl.h"

namespace fastnn {

namespace {
inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
}  // namespace

// NOTE: _mm256_max_ps(v, acc) returns acc when v is NaN: NaNs are skipped, as in the
// reference `v > m ? v : m`.
float row_max_avx2(const float* x, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + k), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + k + 8), m1);
    m2 = _mm256_max_ps(_mm256_loadu_ps(x + k + 16), m2);
    m3 = _mm256_max_ps(_mm256_loadu_ps(x + k + 24), m3);
  }
  for (; k + 8 <= n; k += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + k), m0);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = lanes[0];
  for (int j = 1; j < 8; ++j) r = lanes[j] > r ? lanes[j] : r;
  for (; k < n; ++k) r = x[k] > r ? x[k] : r;
  return r;
}

double row_sum_f64_avx2(const float* x, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(x + k)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(x + k + 4)));
    s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm_loadu_ps(x + k + 8)));
    s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm_loadu_ps(x + k + 12)));
  }
  for (; k + 4 <= n; k += 4) s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(x + k)));
  double r = hsum(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  for (; k < n; ++k) r += x[k];
  return r;
}

double row_dot_f64_avx2(const float* a, const float* b, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + k)), _mm256_cvtps_pd(_mm_loadu_ps(b + k)), s0);
    s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + k + 4)),
                         _mm256_cvtps_pd(_mm_loadu_ps(b + k + 4)), s1);
  }
  double r = hsum(_mm256_add_pd(s0, s1));
  for (; k < n; ++k) r += (double)a[k] * b[k];
  return r;
}

namespace {
// Lanes [0, r) of a register, 0 < r <= 8, as a vmaskmovps mask.
inline __m256i lane_mask(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The one order in which exp_row_sum and the short rows reduce their two double chains.
inline double dsum(V::D a, V::D b) {
  return hsum(_mm256_add_pd(_mm256_add_pd(a.lo, a.hi), _mm256_add_pd(b.lo, b.hi)));
}

// exp((x - a) - b) * s for 8 floats: vexp (kernels/vmath_impl.h), the exp of the activation
// loops, in place of the auto-vectorised scalar exp_f32 this path used before.
inline __m256 exp8(__m256 x, __m256 a, __m256 b, __m256 s) {
  return _mm256_mul_ps(vexp<V>(_mm256_sub_ps(_mm256_sub_ps(x, a), b)), s);
}

// NOTE: four independent 8-lane exps per step (one exp is a long dependency chain; side by
// side they overlap). The row's 8-float chunks alternate between two double sums, even ones
// to the first, odd ones to the second, whatever loop they fall in; short_row_exp_sum does
// the same, so a short row and the same row padded with -inf (exp 0) sum alike.
template <bool Sum>
inline double exp_row_impl(const float* x, float a, float b, float s, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vs = _mm256_set1_ps(s);
  V::D acc0 = V::dzero(), acc1 = V::dzero();
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m256 e0 = exp8(_mm256_loadu_ps(x + k), va, vb, vs);
    const __m256 e1 = exp8(_mm256_loadu_ps(x + k + 8), va, vb, vs);
    const __m256 e2 = exp8(_mm256_loadu_ps(x + k + 16), va, vb, vs);
    const __m256 e3 = exp8(_mm256_loadu_ps(x + k + 24), va, vb, vs);
    _mm256_storeu_ps(y + k, e0);
    _mm256_storeu_ps(y + k + 8, e1);
    _mm256_storeu_ps(y + k + 16, e2);
    _mm256_storeu_ps(y + k + 24, e3);
    if (Sum) {
      acc0 = V::dacc(acc0, e0);
      acc1 = V::dacc(acc1, e1);
      acc0 = V::dacc(acc0, e2);
      acc1 = V::dacc(acc1, e3);
    }
  }
  // (k is a multiple of 32 here: chunk k / 8 is even)
  for (bool odd = false; k < n; k += 8, odd = !odd) {
    __m256 e;
    if (k + 8 <= n) {
      e = exp8(_mm256_loadu_ps(x + k), va, vb, vs);
      _mm256_storeu_ps(y + k, e);
    } else {  // masked-off lanes load 0 and sum 0 (their exp may be inf: and-ed away)
      const __m256i m = lane_mask(n - k);
      e = _mm256_and_ps(exp8(_mm256_maskload_ps(x + k, m), va, vb, vs), _mm256_castsi256_ps(m));
      _mm256_maskstore_ps(y + k, m, e);
    }
    if (Sum) {
      if (odd) acc1 = V::dacc(acc1, e);
      else acc0 = V::dacc(acc0, e);
    }
  }
  return Sum ? dsum(acc0, acc1) : 0.0;
}

// A row of at most 32 floats as up to four registers: how many, and each one's lanes.
struct ShortRows {
  int chunks;
  __m256i mk[4];
  explicit ShortRows(int64_t c) : chunks((int)((c + 7) / 8)) {
    for (int k = 0; k < 4; ++k) mk[k] = lane_mask(std::clamp<int64_t>(c - 8 * k, 0, 8));
  }
};

// One short row: its chunks in v, exp(v - max) in e (0 past the row), *m the max (as
// row_max_avx2: NaN skipped); returns the sum of e in double. row_max + exp_row_sum's
// operations in their order, so softmax's and cross-entropy's short rows match those paths.
inline double short_row_exp_sum(const float* xi, const ShortRows& sr, __m256* v, __m256* e,
                                float* m) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  __m256 mv = ninf;
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    if (k >= sr.chunks) break;
    v[k] = _mm256_maskload_ps(xi + 8 * k, sr.mk[k]);
    const __m256 in = _mm256_blendv_ps(ninf, v[k], _mm256_castsi256_ps(sr.mk[k]));
    mv = _mm256_max_ps(in, mv);  // keeps mv for a NaN lane
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float r = lanes[0];
  for (int j = 1; j < 8; ++j) r = lanes[j] > r ? lanes[j] : r;
  *m = r;
  const __m256 vm = _mm256_set1_ps(r), zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  V::D acc[2] = {V::dzero(), V::dzero()};
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    if (k >= sr.chunks) break;
    e[k] = _mm256_and_ps(exp8(v[k], vm, zero, one), _mm256_castsi256_ps(sr.mk[k]));
    acc[k % 2] = V::dacc(acc[k % 2], e[k]);
  }
  return dsum(acc[0], acc[1]);
}

inline void store_chunk(float* p, const ShortRows& sr, int k, __m256 v) {
  if (k + 1 < sr.chunks) _mm256_storeu_ps(p, v);  // (vmaskmovps stores are slow on AMD)
  else _mm256_maskstore_ps(p, sr.mk[k], v);
}

// Rows [i0, i0 + R) of softmax_rows_short_avx2, side by side (each row is a chain of
// dependent steps: max, its reduction, exp, the sum's reduction, log or 1/sum).
template <int R>
inline void softmax_rows_short_block(const float* x, float* y, int64_t i0, int64_t n,
                                     const ShortRows& sr, bool log) {
  __m256 v[R][4], e[R][4];
  float m[R];
  double sum[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) sum[r] = short_row_exp_sum(x + (i0 + r) * n, sr, v[r], e[r], &m[r]);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* yi = y + (i0 + r) * n;
    const __m256 vm = _mm256_set1_ps(m[r]);
    const __m256 f = _mm256_set1_ps(log ? (float)std::log(sum[r]) : (float)(1.0 / sum[r]));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (k >= sr.chunks) break;
      store_chunk(yi + 8 * k, sr, k,
                  log ? _mm256_sub_ps(_mm256_sub_ps(v[r][k], vm), f) : _mm256_mul_ps(e[r][k], f));
    }
  }
}
}  // namespace

void exp_row_avx2(const float* x, float a, float b, float s, float* y, int64_t n) {
  exp_row_impl<false>(x, a, b, s, y, n);
}
double exp_row_sum_avx2(const float* x, float a, float b, float s, float* y, int64_t n) {
  return exp_row_impl<true>(x, a, b, s, y, n);
}

// Short rows (at most 32 floats) in one call, as softmax_rows_short_avx512 does for < 64.
// NOTE (speed): Zen 3, 1 thread, through F.softmax: 32x16 3.65 -> 3.26 us, 64x10 5.0 -> 4.2
// (with exp_row's vexp); cross-entropy fwd + bwd of 64x10: 12.0 -> 10.1 us.
void softmax_rows_short_avx2(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  const ShortRows sr(n);
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) softmax_rows_short_block<4>(x, y, i, n, sr, log);
  for (; i < rows; ++i) softmax_rows_short_block<1>(x, y, i, n, sr, log);
}

// Cross-entropy rows of at most 32 classes (cpu/loss.cpp's per-row arithmetic, the same
// operations in the same order; see ce_fwd_rows_short_avx512).
void ce_fwd_rows_short_avx2(const float* x, const int64_t* t, float* loss, float* stats,
                            int64_t n, int64_t c, int64_t ignore_index) {
  const ShortRows sr(c);
  ce_fwd_short_rows(x, t, loss, stats, n, c, ignore_index, [&](const float* xi, float* m) {
    __m256 v[4], e[4];
    return short_row_exp_sum(xi, sr, v, e, m);
  });
}

void ce_bwd_rows_short_avx2(const float* x, const int64_t* t, const float* stats,
                            const float* g, int64_t g_stride, float scale, float* dx,
                            int64_t n, int64_t c, int64_t ignore_index) {
  const ShortRows sr(c);
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    float* dxi = dx + i * c;
    const float* xi = x + i * c;
    if (t[i] == ignore_index) {
      for (int k = 0; k < sr.chunks; ++k) store_chunk(dxi + 8 * k, sr, k, zero);
      continue;
    }
    const float gi = g[i * g_stride] * scale;
    const __m256 m = _mm256_set1_ps(stats[2 * i]), ls = _mm256_set1_ps(stats[2 * i + 1]);
    const __m256 vg = _mm256_set1_ps(gi);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (k >= sr.chunks) break;
      store_chunk(dxi + 8 * k, sr, k,
                  exp8(_mm256_maskload_ps(xi + 8 * k, sr.mk[k]), m, ls, vg));
    }
    dxi[t[i]] -= gi;
  }
}

}  // namespace fastnn

// The strided softmax strips (see softmax_strip_impl.h).
#define FASTNN_STRIP_SUFFIX avx2
#include "cpu/kernels/softmax_strip_impl.h"
#undef FASTNN_STRIP_SUFFIX

// max() / min() of a row, the value alone (see row_extreme_impl.h).
#define FASTNN_EXTREME_SUFFIX avx2
#include "cpu/kernels/row_extreme_impl.h"
#undef FASTNN_EXTREME_SUFFIX
