#include "cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/parallel.h"
#include "cpu/fastmath.h"
#include "cpu/isa.h"
#include "cpu/kernels/rowops.h"
#include "cpu/softmax.h"  // exp_row, exp_row_sum, row_max

namespace fastnn {

namespace {
constexpr int64_t kGrain = 1 << 14;      // elements a chunk must hold before threads pay off
constexpr int64_t kSumBlock = 1 << 14;   // fixed partial-sum blocks (thread-count independent)

inline int64_t row_grain(int64_t row_len) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(row_len, 1));
}
// Cross-entropy over a strip of w positions of (N, C, inner) logits, one position at a time
// (the generic path; the ISA files take a register of positions, softmax_strip_impl.h).
void ce_fwd_strip_generic(const float* x, const int64_t* t, float* loss, float* stats,
                          int64_t c, int64_t inner, int64_t w, int64_t ignore_index) {
  for (int64_t j = 0; j < w; ++j) {
    const float* xj = x + j;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < c; ++k) m = xj[k * inner] > m ? xj[k * inner] : m;  // skips NaN
    double sum = 0.0;
    for (int64_t k = 0; k < c; ++k) sum += exp_f32(xj[k * inner] - m);
    if (t[j] == ignore_index) {
      loss[j] = 0.f;
      continue;
    }
    const float ls = (float)std::log(sum);
    loss[j] = (m - xj[t[j] * inner]) + ls;
    stats[2 * j] = m;
    stats[2 * j + 1] = ls;
  }
}

void ce_bwd_strip_generic(const float* x, const int64_t* t, const float* stats, const float* g,
                          int64_t g_stride, float scale, float* dx, int64_t c, int64_t inner,
                          int64_t w, int64_t ignore_index) {
  for (int64_t j = 0; j < w; ++j) {
    if (t[j] == ignore_index) {
      for (int64_t k = 0; k < c; ++k) dx[k * inner + j] = 0.f;
      continue;
    }
    const float m = stats[2 * j], ls = stats[2 * j + 1], gi = g[j * g_stride] * scale;
    for (int64_t k = 0; k < c; ++k) dx[k * inner + j] = exp_f32((x[k * inner + j] - m) - ls) * gi;
    dx[t[j] * inner + j] -= gi;
  }
}

// Runs fn(x offset, position offset, w) over every (batch, strip of up to 64 positions) of
// (n / inner, c, inner) logits, in parallel.
template <class F>
void for_each_ce_strip(int64_t n, int64_t c, int64_t inner, F&& fn) {
  constexpr int64_t kStrip = 64;
  const int64_t batches = n / inner, strips = (inner + kStrip - 1) / kStrip;
  parallel_for(batches * strips, row_grain(c * kStrip), [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t bb = it / strips, j0 = (it % strips) * kStrip;
      fn(bb * c * inner + j0, bb * inner + j0, std::min(kStrip, inner - j0));
    }
  });
}

}  // namespace

// NOTE (log-sum-exp): loss_i = logsumexp(x_i) - x_i[t] is evaluated as
//   (m - x_i[t]) + log(sum_k exp(x_ik - m)),  m = max_k x_ik.
// Every exponent is <= 0, so nothing overflows for logits of 1e4, and the sum is >= 1 (the
// max term is exactly 1), so the log is finite. Subtracting m - x[t] first, rather than
// forming lse = m + log(sum) and then lse - x[t], avoids rounding lse at the magnitude of the
// logits (ulp(1e4) ~ 1e-3) when the loss itself is small.
// The backward needs softmax(x) = exp((x - m) - log(sum)); saving m and log(sum) separately
// (2 floats per row instead of a single lse) keeps that exact for large logits for the same
// reason, and makes the backward one pass over x with no max or sum to recompute.
// A NaN logit makes its row's sum, loss and gradient NaN (max ignores NaN, exp does not).
void cross_entropy_fwd(const float* x, const int64_t* t, float* loss, float* stats, int64_t n,
                       int64_t c, int64_t ignore_index, int64_t inner) {
  if (inner > 1) {  // (N, C, d1, ...) logits: positions side by side, no transposing copy
    auto strip = ce_fwd_strip_generic;
#ifdef FASTNN_X86
    if (active_isa() == Isa::avx512) strip = ce_fwd_strip_avx512;
    else if (active_isa() == Isa::avx2) strip = ce_fwd_strip_avx2;
#endif
    for_each_ce_strip(n, c, inner, [&](int64_t xo, int64_t p, int64_t w) {
      strip(x + xo, t + p, loss + p, stats + 2 * p, c, inner, w, ignore_index);
    });
    return;
  }
  parallel_for(n, row_grain(c), [&](int64_t b, int64_t e) {
#ifdef FASTNN_X86
    if (c <= short_row_max()) {
      auto rows = active_isa() == Isa::avx512 ? ce_fwd_rows_short_avx512 : ce_fwd_rows_short_avx2;
      return rows(x + b * c, t + b, loss + b, stats + 2 * b, e - b, c, ignore_index);
    }
#endif
    std::vector<float> ex(c);  // this chunk's scratch: the row's exps, so the loop vectorises
    for (int64_t i = b; i < e; ++i) {
      if (t[i] == ignore_index) {  // PyTorch: ignored rows contribute exactly 0
        loss[i] = 0.f;
        continue;
      }
      const float* xi = x + i * c;
      const float m = row_max(xi, c);
      // double: free next to the exps, accurate for 1000+ classes
      const float ls = (float)std::log(exp_row_sum(xi, m, 0.f, 1.f, ex.data(), c));
      loss[i] = (m - xi[t[i]]) + ls;
      stats[2 * i] = m;
      stats[2 * i + 1] = ls;
    }
  });
}

void cross_entropy_bwd(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t n, int64_t c,
                       int64_t ignore_index, int64_t inner) {
  if (inner > 1) {
    auto strip = ce_bwd_strip_generic;
#ifdef FASTNN_X86
    if (active_isa() == Isa::avx512) strip = ce_bwd_strip_avx512;
    else if (active_isa() == Isa::avx2) strip = ce_bwd_strip_avx2;
#endif
    for_each_ce_strip(n, c, inner, [&](int64_t xo, int64_t p, int64_t w) {
      strip(x + xo, t + p, stats + 2 * p, g + p * g_stride, g_stride, scale, dx + xo, c, inner,
            w, ignore_index);
    });
    return;
  }
  parallel_for(n, row_grain(c), [&](int64_t b, int64_t e) {
#ifdef FASTNN_X86
    if (c <= short_row_max()) {
      auto rows = active_isa() == Isa::avx512 ? ce_bwd_rows_short_avx512 : ce_bwd_rows_short_avx2;
      return rows(x + b * c, t + b, stats + 2 * b, g + b * g_stride, g_stride, scale,
                  dx + b * c, e - b, c, ignore_index);
    }
#endif
    for (int64_t i = b; i < e; ++i) {
      float* dxi = dx + i * c;
      if (t[i] == ignore_index) {
        std::fill(dxi, dxi + c, 0.f);
        continue;
      }
      const float* xi = x + i * c;
      const float m = stats[2 * i], ls = stats[2 * i + 1];
      const float gi = g[i * g_stride] * scale;
      exp_row(xi, m, ls, gi, dxi, c);
      // NOTE: subtract the one-hot after scaling, p*g - g, not (p - 1)*g: same rounding,
      // and keeps the inner loop free of a compare.
      dxi[t[i]] -= gi;
    }
  });
}

void mse_fwd_none(const float* x, const float* y, float* out, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float d = x[i] - y[i];
      out[i] = d * d;
    }
  });
}

double mse_fwd_sum(const float* x, const float* y, int64_t n) {
  // NOTE: fixed-size blocks (not one partial per thread) so the rounding, and hence the
  // result, is the same for every thread count; partials and total in double.
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> part(blocks, 0.0);
  parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t i0 = blk * kSumBlock, i1 = std::min(n, i0 + kSumBlock);
      double s = 0.0;
      for (int64_t i = i0; i < i1; ++i) {
        const double d = (double)x[i] - (double)y[i];
        s += d * d;
      }
      part[blk] = s;
    }
  });
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

void mse_bwd(const float* x, const float* y, const float* g, int64_t g_stride, float scale,
             float* gx, float* gy, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = 2.f * (x[i] - y[i]) * (g[i * g_stride] * scale);
      if (gx) gx[i] = v;
      if (gy) gy[i] = -v;
    }
  });
}

}  // namespace fastnn
