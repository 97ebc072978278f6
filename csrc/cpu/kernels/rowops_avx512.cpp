// AVX-512 row reductions (see rowops.h). Four independent accumulators per reduction hide
// the add latency; tails use masked loads, whose zero (or -inf) lanes change nothing.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/kernels/rowops.h"
#include "cpu/kernels/simd_avx512.h"
#include "cpu/kernels/vmath_impl.h"
#include "cpu/kernels/ce_rows_impl.h"

namespace fastnn {

namespace {
inline __mmask16 tail_mask(int64_t r) { return (__mmask16)((1u << r) - 1); }

// A row of fewer than 64 floats as up to four registers: how many, and each one's lanes.
struct ShortRows {
  int chunks;
  __mmask16 mk[4];
  explicit ShortRows(int64_t c) : chunks((int)((c + 15) / 16)) {
    for (int k = 0; k < 4; ++k)
      mk[k] = c - 16 * k >= 16 ? (__mmask16)0xFFFF : c > 16 * k ? tail_mask(c - 16 * k) : 0;
  }
};

// exp(v) for 16 floats: vexp (kernels/vmath_impl.h, the exp of the activation loops), n
// rounded with vrndscaleps and 2^n applied with vscalefps, which handles the whole exponent
// range itself (overflow to +inf, gradual underflow to subnormals and 0): about 14
// instructions instead of the ~30 the auto-vectorised scalar exp_f32 takes.
inline __m512 exp16(__m512 v) { return vexp<V>(v); }

template <bool Sum>
inline double exp_row_impl(const float* x, float a, float b, float s, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vs = _mm512_set1_ps(s);
  __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
  // (x - a) - b in this order, as exp_f32's callers do (the same rounding as the generic path).
  auto one = [&](const float* xp, float* yp, __mmask16 m, __m512d& acc_lo, __m512d& acc_hi) {
    const __m512 v = _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xp), va), vb);
    const __m512 e = _mm512_maskz_mul_ps(m, exp16(v), vs);  // masked-off lanes: 0
    _mm512_mask_storeu_ps(yp, m, e);
    if (Sum) {
      acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
      acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
  };
  // NOTE: four independent 16-lane exps per step. One exp is a ~60-cycle dependency chain;
  // written one at a time, the out-of-order window held only two or three of them and the
  // loop ran at ~20 cycles per 16 floats (measured); side by side they overlap.
  int64_t k = 0;
  for (; k + 64 <= n; k += 64) {
    one(x + k, y + k, 0xFFFF, acc[0], acc[1]);
    one(x + k + 16, y + k + 16, 0xFFFF, acc[2], acc[3]);
    one(x + k + 32, y + k + 32, 0xFFFF, acc[0], acc[1]);
    one(x + k + 48, y + k + 48, 0xFFFF, acc[2], acc[3]);
  }
  for (; k < n; k += 16)
    one(x + k, y + k, n - k >= 16 ? (__mmask16)0xFFFF : tail_mask(n - k), acc[0], acc[1]);
  return Sum ? _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(acc[0], acc[1]),
                                                  _mm512_add_pd(acc[2], acc[3])))
             : 0.0;
}
}  // namespace

void exp_row_avx512(const float* x, float a, float b, float s, float* y, int64_t n) {
  exp_row_impl<false>(x, a, b, s, y, n);
}
double exp_row_sum_avx512(const float* x, float a, float b, float s, float* y, int64_t n) {
  return exp_row_impl<true>(x, a, b, s, y, n);
}

// softmax / log_softmax of `rows` rows of n < 64 floats (cpu/softmax.cpp's softmax_row for
// short rows, in one call): the row in up to four registers, max, exp and the sum without
// leaving them, the same operations in the same order as row_max + exp_row_sum + the scale
// (all chunks of a row shorter than 64 go to the first pair of sums there too), so the
// results are those of that path, which still takes rows of 64 and more.
// NOTE (speed): per row, the three dispatched passes cost ~55 ns of fixed work; 32x32 through
// _C.softmax_fwd 2.57 -> 1.20 us, 64x10 1.84 (one row at a time) -> 1.45 (four side by side).
namespace {
// One row of fewer than 64 floats (ShortRows): its chunks in v, exp(v - max) in e (0 past the
// row), *m the max; returns the sum of e in double. row_max + exp_row_sum's operations in
// their order, so softmax's and cross-entropy's short rows match those paths.
inline double short_row_exp_sum(const float* xi, const ShortRows& sr, __m512* v, __m512* e,
                                float* m) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), zero = _mm512_setzero_ps();
  __m512 mv = ninf;
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    if (k >= sr.chunks) break;
    v[k] = _mm512_maskz_loadu_ps(sr.mk[k], xi + 16 * k);
    mv = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, sr.mk[k], xi + 16 * k), mv);
  }
  *m = _mm512_reduce_max_ps(mv);
  const __m512 vm = _mm512_set1_ps(*m);
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    if (k >= sr.chunks) break;
    e[k] = _mm512_maskz_mul_ps(sr.mk[k], exp16(_mm512_sub_ps(_mm512_sub_ps(v[k], vm), zero)),
                               _mm512_set1_ps(1.f));
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e[k])));
    hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e[k], 1)));
  }
  return _mm512_reduce_add_pd(
      _mm512_add_pd(_mm512_add_pd(lo, hi), _mm512_add_pd(_mm512_setzero_pd(), _mm512_setzero_pd())));
}

// Rows [i0, i0 + R) of softmax_rows_short_avx512, side by side (each row is a chain of
// dependent steps: max, its reduction, exp, the sum's reduction, log or 1/sum).
template <int R>
inline void softmax_rows_short_block(const float* x, float* y, int64_t i0, int64_t n,
                                     const ShortRows& sr, bool log) {
  __m512 v[R][4], e[R][4];
  float m[R];
  double sum[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) sum[r] = short_row_exp_sum(x + (i0 + r) * n, sr, v[r], e[r], &m[r]);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    float* yi = y + (i0 + r) * n;
    const __m512 vm = _mm512_set1_ps(m[r]);
    const __m512 f = _mm512_set1_ps(log ? (float)std::log(sum[r]) : (float)(1.0 / sum[r]));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (k >= sr.chunks) break;
      const __m512 out =
          log ? _mm512_sub_ps(_mm512_sub_ps(v[r][k], vm), f) : _mm512_mul_ps(e[r][k], f);
      _mm512_mask_storeu_ps(yi + 16 * k, sr.mk[k], out);
    }
  }
}
}  // namespace

void softmax_rows_short_avx512(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  const ShortRows sr(n);
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) softmax_rows_short_block<4>(x, y, i, n, sr, log);
  for (; i < rows; ++i) softmax_rows_short_block<1>(x, y, i, n, sr, log);
}

// Cross-entropy rows of fewer than 64 classes (the row in up to four registers): what
// cross_entropy_fwd / _bwd (cpu/loss.cpp) compute per row through row_max + exp_row_sum + log
// and exp_row, with the same operations in the same order (all chunks of a row shorter than
// 64 go to exp_row_impl's first pair of sums too), so the results are those of that path,
// which still takes 64 classes and more.
// NOTE (speed): 2.08 -> 1.60 us (forward) and 1.27 -> 1.03 us (backward) for 64 rows of 10
// logits through the Python binding (an MNIST-style classifier head), from the per-row calls
// and ISA dispatch these replace; rows of 17-63 classes (a 21-class segmentation head's
// pixels) went the per-row way until session 12.
void ce_fwd_rows_short_avx512(const float* x, const int64_t* t, float* loss, float* stats,
                              int64_t n, int64_t c, int64_t ignore_index) {
  const ShortRows sr(c);
  ce_fwd_short_rows(x, t, loss, stats, n, c, ignore_index, [&](const float* xi, float* m) {
    __m512 v[4], e[4];
    return short_row_exp_sum(xi, sr, v, e, m);
  });
}

void ce_bwd_rows_short_avx512(const float* x, const int64_t* t, const float* stats,
                              const float* g, int64_t g_stride, float scale, float* dx,
                              int64_t n, int64_t c, int64_t ignore_index) {
  const ShortRows sr(c);
  for (int64_t i = 0; i < n; ++i) {
    float* dxi = dx + i * c;
    const float* xi = x + i * c;
    if (t[i] == ignore_index) {
      for (int k = 0; k < sr.chunks; ++k)
        _mm512_mask_storeu_ps(dxi + 16 * k, sr.mk[k], _mm512_setzero_ps());
      continue;
    }
    const float gi = g[i * g_stride] * scale;
    const __m512 m = _mm512_set1_ps(stats[2 * i]), ls = _mm512_set1_ps(stats[2 * i + 1]);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      if (k >= sr.chunks) break;
      const __m512 v =
          _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(sr.mk[k], xi + 16 * k), m), ls);
      _mm512_mask_storeu_ps(dxi + 16 * k, sr.mk[k],
                            _mm512_maskz_mul_ps(sr.mk[k], exp16(v), _mm512_set1_ps(gi)));
    }
    dxi[t[i]] -= gi;
  }
}

float row_max_avx512(const float* x, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
  int64_t k = 0;
  for (; k + 64 <= n; k += 64) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + k), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(x + k + 16), m1);
    m2 = _mm512_max_ps(_mm512_loadu_ps(x + k + 32), m2);
    m3 = _mm512_max_ps(_mm512_loadu_ps(x + k + 48), m3);
  }
  for (; k + 16 <= n; k += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(x + k), m0);
  if (k < n) m1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail_mask(n - k), x + k), m1);
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

// Sum in double: each 16 floats widen to two 8-double halves.
double row_sum_f64_avx512(const float* x, int64_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + 16);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)));
    s2 = _mm512_add_pd(s2, _mm512_cvtps_pd(_mm512_castps512_ps256(b)));
    s3 = _mm512_add_pd(s3, _mm512_cvtps_pd(_mm512_extractf32x8_ps(b, 1)));
  }
  for (; k < n; k += 16) {
    const __m512 a = n - k >= 16 ? _mm512_loadu_ps(x + k)
                                 : _mm512_maskz_loadu_ps(tail_mask(n - k), x + k);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

// sum(a*b) with the products formed in double (exact for float inputs).
double row_dot_f64_avx512(const float* a, const float* b, int64_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : tail_mask(n - k);
    const __m512 va = _mm512_maskz_loadu_ps(m, a + k), vb = _mm512_maskz_loadu_ps(m, b + k);
    s0 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(va)),
                         _mm512_cvtps_pd(_mm512_castps512_ps256(vb)), s0);
    s1 = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(va, 1)),
                         _mm512_cvtps_pd(_mm512_extractf32x8_ps(vb, 1)), s1);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

}  // namespace fastnn

// The strided softmax strips (see softmax_strip_impl.h).
#define FASTNN_STRIP_SUFFIX avx512
#include "cpu/kernels/softmax_strip_impl.h"
#undef FASTNN_STRIP_SUFFIX

// max() / min() of a row, the value alone (see row_extreme_impl.h).
#define FASTNN_EXTREME_SUFFIX avx512
#include "cpu/kernels/row_extreme_impl.h"
#undef FASTNN_EXTREME_SUFFIX
