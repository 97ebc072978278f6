// The row loop of the short-row cross-entropy forwards (ce_fwd_rows_short_<isa> in
// rowops_<isa>.cpp): cpu/loss.cpp's per-row arithmetic, with the row's max and exp-sum from
// the ISA's register path. Included by rowops_<isa>.cpp after its own helpers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace fastnn {
namespace {

// exp_sum(xi, &m) returns the sum of exp(xi - m) in double and sets m to the row's max.
// Four rows at a time: each row is one long dependency chain (max, exp, sum), so the vector
// work of four is written side by side for the scheduler, before their four calls to log.
template <class ExpSum>
inline void ce_fwd_short_rows(const float* x, const int64_t* t, float* loss, float* stats,
                              int64_t n, int64_t c, int64_t ignore_index, ExpSum exp_sum) {
  constexpr int R = 4;
  for (int64_t i0 = 0; i0 < n; i0 += R) {
    const int rows = (int)std::min<int64_t>(R, n - i0);
    float mx[R];
    double s[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      if (r >= rows) break;
      s[r] = exp_sum(x + (i0 + r) * c, &mx[r]);
    }
    for (int r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      if (t[i] == ignore_index) {  // PyTorch: ignored rows contribute exactly 0
        loss[i] = 0.f;
        continue;
      }
      const float ls = (float)std::log(s[r]);
      loss[i] = (mx[r] - x[i * c + t[i]]) + ls;
      stats[2 * i] = mx[r];
      stats[2 * i + 1] = ls;
    }
  }
}

}  // namespace
}  // namespace fastnn
