// AVX2 row reductions (see rowops.h); scalar tails.
#include <immintrin.h>

#include "cpu/kernels/rowops.h"
#include "cpu/kernels/simd_avx2.h"

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

}  // namespace fastnn

// The strided softmax strips (see softmax_strip_impl.h).
#define FASTNN_STRIP_SUFFIX avx2
#include "cpu/kernels/softmax_strip_impl.h"
#undef FASTNN_STRIP_SUFFIX

// max() / min() of a row, the value alone (see row_extreme_impl.h).
#define FASTNN_EXTREME_SUFFIX avx2
#include "cpu/kernels/row_extreme_impl.h"
#undef FASTNN_EXTREME_SUFFIX
