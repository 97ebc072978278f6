#include "cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "cpu/isa.h"
#include "cpu/kernels/rowops.h"

namespace fastnn {

namespace {

// Work below this many input elements stays on the calling thread.
constexpr int64_t kGrain = 1 << 15;
// Columns of the inner dim accumulated at once in the strided sum (the double accumulators
// stay in L1: 512 * 8 bytes).
constexpr int64_t kTile = 512;
// A full sum of a long row is split into blocks of this size; block sums are computed in
// parallel and then added pairwise. Fixed (not per-thread) so the result does not depend on
// the thread count.
constexpr int64_t kBlock = 1 << 16;

// NOTE: pairwise (cascade) float32 summation: 8 independent lanes over leaves of <= 128
// elements, leaves combined by recursive halving. The error grows like O(log n) ulps instead
// of O(n) for a running sum, at full float32 speed (the 8 lanes vectorise without
// reassociating anything, so the result is the same at every -O level).
float pairwise_sum(const float* x, int64_t n) {
  if (n <= 128) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) acc[k] += x[i + k];
    float tail = 0.f;
    for (; i < n; ++i) tail += x[i];
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) +
           tail;
  }
  const int64_t h = (n / 2) & ~int64_t(7);
  return pairwise_sum(x, h) + pairwise_sum(x + h, n - h);
}

float pairwise_sum_blocks(const std::vector<float>& v, int64_t b, int64_t e) {
  if (e - b == 1) return v[b];
  const int64_t m = b + (e - b) / 2;
  return pairwise_sum_blocks(v, b, m) + pairwise_sum_blocks(v, m, e);
}

// One contiguous row, split into fixed blocks when long (see kBlock).
float row_sum(const float* x, int64_t n) {
  if (n <= kBlock) return pairwise_sum(x, n);
  const int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<float> part(nb);
  parallel_for(nb, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k)
      part[k] = pairwise_sum(x + k * kBlock, std::min(kBlock, n - k * kBlock));
  });
  return pairwise_sum_blocks(part, 0, nb);
}

// dst[c] = (sum over j < r of base[j*inner + c], in double) / divisor for c < w <= kTile.
// NOTE (speed): 32 columns at a time, so their sums stay in registers down all r rows (a
// sum per column in memory cost a load and a store of it per row); every column still adds
// its rows in order, so the result is the same.
__attribute__((always_inline)) inline void sum_cols_impl(const float* base, int64_t r,
                                                         int64_t inner, int64_t w,
                                                         double divisor, float* dst) {
  constexpr int kCols = 32;
  int64_t c0 = 0;
  for (; c0 + kCols <= w; c0 += kCols) {
    double a[kCols] = {};
    for (int64_t j = 0; j < r; ++j) {
      const float* row = base + j * inner + c0;
#pragma GCC unroll 32
      for (int c = 0; c < kCols; ++c) a[c] += (double)row[c];
    }
    for (int c = 0; c < kCols; ++c) dst[c0 + c] = (float)(a[c] / divisor);
  }
  if (c0 == w) return;
  double acc[kTile];
  for (int64_t c = c0; c < w; ++c) acc[c] = 0.0;
  for (int64_t j = 0; j < r; ++j) {
    const float* row = base + j * inner;
    for (int64_t c = c0; c < w; ++c) acc[c] += (double)row[c];
  }
  for (int64_t c = c0; c < w; ++c) dst[c] = (float)(acc[c] / divisor);
}
// The same loop compiled per ISA (the target attribute keeps it in this file, as rnn.cpp's
// cells): widening and adding in double is 2 lanes an instruction on baseline x86-64, 8 on
// AVX-512. NOTE (speed), with the register blocking above, 1 thread: sum over dim 0 of
// 1000x256 52 -> 23 us (PyTorch 20-25), over dim 1 of 8x21x64x64 202 -> 104 (PyTorch 105).
void sum_cols_generic(const float* base, int64_t r, int64_t inner, int64_t w, double divisor,
                      float* dst) {
  sum_cols_impl(base, r, inner, w, divisor, dst);
}
#ifdef FASTNN_X86
__attribute__((target("avx2,fma"))) void sum_cols_avx2(const float* base, int64_t r,
                                                       int64_t inner, int64_t w, double divisor,
                                                       float* dst) {
  sum_cols_impl(base, r, inner, w, divisor, dst);
}
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
void sum_cols_avx512(const float* base, int64_t r, int64_t inner, int64_t w, double divisor,
                     float* dst) {
  sum_cols_impl(base, r, inner, w, divisor, dst);
}
#endif

}  // namespace

void sum_f32(const float* x, int64_t outer, int64_t r, int64_t inner, double divisor, float* out) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    if (outer == 1) {  // one long row: parallel inside the row
      out[0] = (float)(row_sum(x, r) / divisor);
      return;
    }
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(r, 1)),
                 [&](int64_t b, int64_t e) {
                   for (int64_t o = b; o < e; ++o)
                     out[o] = (float)(pairwise_sum(x + o * r, r) / divisor);
                 });
    return;
  }
  // NOTE: reducing a non-innermost dim adds whole rows of `inner` values, which vectorises
  // across columns; accumulating those in double keeps long reductions accurate (error
  // ~ eps32 after the final rounding) without the bookkeeping of a pairwise tree per column.
  const int64_t tiles = (inner + kTile - 1) / kTile;
  const int64_t items = outer * tiles;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, r * std::min(inner, kTile)));
  auto cols = sum_cols_generic;
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) cols = sum_cols_avx512;
  else if (active_isa() == Isa::avx2) cols = sum_cols_avx2;
#endif
  parallel_for(items, grain, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t o = it / tiles, c0 = (it % tiles) * kTile;
      cols(x + o * r * inner + c0, r, inner, std::min(kTile, inner - c0), divisor,
           out + o * inner + c0);
    }
  });
}

void sum_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out) {
  if (outer * inner == 0) return;
  // Unsigned adds: overflow wraps (two's complement, as PyTorch) instead of being undefined.
  parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, r * inner)),
               [&](int64_t b, int64_t e) {
                 std::vector<uint64_t> acc(inner);
                 for (int64_t o = b; o < e; ++o) {
                   std::fill(acc.begin(), acc.end(), 0);
                   const int64_t* base = x + o * r * inner;
                   for (int64_t j = 0; j < r; ++j)
                     for (int64_t c = 0; c < inner; ++c) acc[c] += (uint64_t)base[j * inner + c];
                   for (int64_t c = 0; c < inner; ++c) out[o * inner + c] = (int64_t)acc[c];
                 }
               });
}

namespace {

// v replaces best when strictly better (so the first index wins ties). NOTE: NaN counts as
// larger than (for min: smaller than) everything, as PyTorch: once best is NaN it stays.
template <bool IsMax, class T>
inline bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (best != best) return false;
    if (v != v) return true;
  }
  return IsMax ? v > best : v < best;
}

// max() / min() of float32 over n >= 1 elements, the value alone (no index asked for), on
// SIMD registers where the ISA has them (kernels/row_extreme_impl.h), else null: the
// index-tracking loop below, a branch per element, took ~1.2 ns an element (1M floats:
// 1.25 ms, NumPy's max 0.13).
float (*row_extreme_fn(bool is_max))(const float*, int64_t) {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return is_max ? row_max_nan_avx512 : row_min_nan_avx512;
  if (active_isa() == Isa::avx2) return is_max ? row_max_nan_avx2 : row_min_nan_avx2;
#endif
  return nullptr;
}

template <bool IsMax, class T>
void extreme_impl(const T* x, int64_t outer, int64_t r, int64_t inner, T* val, int64_t* idx) {
  if (outer * inner == 0) return;
  if (outer == 1 && inner == 1) {
    // Full reduction of one row: fixed blocks in parallel, then combined in block order so
    // ties still resolve to the first index.
    const int64_t nb = (r + kBlock - 1) / kBlock;
    float (*value_only)(const float*, int64_t) = row_extreme_fn(IsMax);
    std::vector<T> bv(nb);
    std::vector<int64_t> bi(nb);
    parallel_for(nb, std::max<int64_t>(1, kGrain / kBlock), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t s = k * kBlock, n = std::min(kBlock, r - s);
        if constexpr (std::is_same_v<T, float>) {
          if (!idx && value_only) {  // max() / min(): the value alone
            bv[k] = value_only(x + s, n);
            continue;
          }
        }
        T best = x[s];
        int64_t bj = s;
        for (int64_t j = s + 1; j < s + n; ++j)
          if (better<IsMax>(x[j], best)) { best = x[j]; bj = j; }
        bv[k] = best;
        bi[k] = bj;
      }
    });
    T best = bv[0];
    int64_t bj = bi[0];
    for (int64_t k = 1; k < nb; ++k)
      if (better<IsMax>(bv[k], best)) { best = bv[k]; bj = bi[k]; }
    val[0] = best;
    if (idx) idx[0] = bj;
    return;
  }
  parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, r * inner)),
               [&](int64_t b, int64_t e) {
                 std::vector<int64_t> tmp(idx ? 0 : inner);
                 for (int64_t o = b; o < e; ++o) {
                   const T* base = x + o * r * inner;
                   T* v = val + o * inner;
                   int64_t* id = idx ? idx + o * inner : tmp.data();
                   // Row-by-row over j keeps the inner loop contiguous in memory.
                   for (int64_t c = 0; c < inner; ++c) { v[c] = base[c]; id[c] = 0; }
                   for (int64_t j = 1; j < r; ++j) {
                     const T* row = base + j * inner;
                     for (int64_t c = 0; c < inner; ++c)
                       if (better<IsMax>(row[c], v[c])) { v[c] = row[c]; id[c] = j; }
                   }
                 }
               });
}

}  // namespace

void extreme_f32(bool is_max, const float* x, int64_t outer, int64_t r, int64_t inner, float* val,
                 int64_t* idx) {
  if (is_max) extreme_impl<true>(x, outer, r, inner, val, idx);
  else extreme_impl<false>(x, outer, r, inner, val, idx);
}

void extreme_i64(bool is_max, const int64_t* x, int64_t outer, int64_t r, int64_t inner,
                 int64_t* val, int64_t* idx) {
  if (is_max) extreme_impl<true>(x, outer, r, inner, val, idx);
  else extreme_impl<false>(x, outer, r, inner, val, idx);
}

void scatter_dim_f32(const float* g, const int64_t* idx, int64_t outer, int64_t r, int64_t inner,
                     float* dx) {
  parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, r * inner)),
               [&](int64_t b, int64_t e) {
                 for (int64_t o = b; o < e; ++o) {
                   float* d = dx + o * r * inner;
                   std::fill(d, d + r * inner, 0.f);
                   for (int64_t c = 0; c < inner; ++c)
                     d[idx[o * inner + c] * inner + c] = g[o * inner + c];
                 }
               });
}

void extreme_all_bwd_f32(const float* x, int64_t n, float v, float g, float* dx) {
  const bool nan = v != v;
  auto hit = [&](float a) { return nan ? a != a : a == v; };
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += hit(x[i]);
  // NOTE: ties share the gradient evenly (PyTorch's evenly_distribute_backward).
  const float share = count ? g / (float)count : 0.f;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = hit(x[i]) ? share : 0.f;
  });
}

}  // namespace fastnn
