// max() / min() of a float32 row, the value alone (cpu/reduce.cpp's value-only path), on SIMD
// registers. Included by rowops_<isa>.cpp after its simd_<isa>.h, which defines
// FASTNN_EXTREME_SUFFIX. (GCC does not vectorise a running max written as a select without
// -ffast-math: it ran as scalar compares and moves.)
#pragma once
#include <cstdint>
#include <limits>

namespace fastnn {
namespace {

// V::max(v, m) / V::min(v, m) return m when v is NaN, so the running value skips NaN; a
// separate pass (which GCC vectorises) says whether there was one, and then the result is
// NaN, as PyTorch's max().
template <bool IsMax>
inline float row_extreme_nan(const float* x, int64_t n) {
  auto step = [](typename V::R v, typename V::R m) { return IsMax ? V::max(v, m) : V::min(v, m); };
  int64_t i = 0;
  float best = x[0];
  if (n >= 4 * V::W) {
    typename V::R a0 = V::set1(x[0]), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 4 * V::W <= n; i += 4 * V::W) {
      a0 = step(V::load(x + i), a0);
      a1 = step(V::load(x + i + V::W), a1);
      a2 = step(V::load(x + i + 2 * V::W), a2);
      a3 = step(V::load(x + i + 3 * V::W), a3);
    }
    a0 = step(step(a1, a0), step(a3, a2));
    float lanes[V::W];
    V::store(lanes, a0);
    for (int k = 0; k < V::W; ++k) best = IsMax ? S::max(lanes[k], best) : S::min(lanes[k], best);
  }
  for (; i < n; ++i) best = IsMax ? S::max(x[i], best) : S::min(x[i], best);
  int nan = 0;
  for (int64_t j = 0; j < n; ++j) nan |= x[j] != x[j];
  return nan ? std::numeric_limits<float>::quiet_NaN() : best;
}

}  // namespace

#define FASTNN_EXTREME_CAT2(a, b) a##b
#define FASTNN_EXTREME_CAT(a, b) FASTNN_EXTREME_CAT2(a, b)

float FASTNN_EXTREME_CAT(row_max_nan_, FASTNN_EXTREME_SUFFIX)(const float* x, int64_t n) {
  return row_extreme_nan<true>(x, n);
}
float FASTNN_EXTREME_CAT(row_min_nan_, FASTNN_EXTREME_SUFFIX)(const float* x, int64_t n) {
  return row_extreme_nan<false>(x, n);
}

#undef FASTNN_EXTREME_CAT
#undef FASTNN_EXTREME_CAT2

}  // namespace fastnn
