// NumPy-style broadcasting as a strided walk. Every operand (outputs included) is described by
// element strides in the output's index space; a broadcast dim has stride 0. The walk first
// coalesces dims (drop size-1 dims, merge neighbours that are contiguous for every operand),
// so "same shape" and "tensor op scalar" collapse to a single flat loop, and then calls a row
// function on the innermost dim, which can take a contiguous (stride 1) or scalar (stride 0)
// fast path.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/parallel.h"

namespace fastnn {

// Elementwise work below this many elements stays on the calling thread: waking the pool
// costs more than it saves.
constexpr int64_t kEwGrain = 1 << 15;

template <int N>
struct Walk {
  std::vector<int64_t> shape;                // coalesced; at least one dim
  std::vector<std::array<int64_t, N>> step;  // step[d][k]: stride of operand k in dim d
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

// shape: the output shape; strides[k]: operand k's strides over that shape (size ndim).
template <int N>
Walk<N> make_walk(const std::vector<int64_t>& shape,
                  const std::array<std::vector<int64_t>, N>& strides) {
  Walk<N> w;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // contributes nothing to any offset
    std::array<int64_t, N> st;
    for (int k = 0; k < N; ++k) st[k] = strides[k][d];
    if (!w.shape.empty()) {
      // Merge into the previous (outer) dim when, for every operand, stepping the outer dim
      // once equals stepping this dim across its whole extent.
      auto& prev = w.step.back();
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable &= prev[k] == st[k] * shape[d];
      if (mergeable) {
        w.shape.back() *= shape[d];
        prev = st;
        continue;
      }
    }
    w.shape.push_back(shape[d]);
    w.step.push_back(st);
  }
  if (w.shape.empty()) {  // all dims of size 1 (or 0-d): one element
    w.shape.push_back(1);
    w.step.push_back(std::array<int64_t, N>{});
  }
  return w;
}

// row(off, n, inner): process n elements of the innermost dim; operand k starts at element
// offset off[k] and advances by inner[k]. Rows are split across the pool; a 1-D walk (the
// common same-shape / scalar case) is split inside its single row instead.
template <int N, class Row>
void walk_rows(const Walk<N>& w, const Row& row) {
  const int nd = (int)w.shape.size();
  const int64_t inner = w.shape[nd - 1];
  const std::array<int64_t, N> istep = w.step[nd - 1];
  if (w.numel() == 0) return;
  if (nd == 1) {
    parallel_for(inner, kEwGrain, [&](int64_t b, int64_t e) {
      std::array<int64_t, N> off;
      for (int k = 0; k < N; ++k) off[k] = b * istep[k];
      row(off, e - b, istep);
    });
    return;
  }
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= w.shape[d];
  const int64_t grain = std::max<int64_t>(1, kEwGrain / inner);
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    // Unravel the first row index of this chunk, then step an odometer.
    std::vector<int64_t> idx(nd - 1);
    std::array<int64_t, N> off{};
    int64_t r = b;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = r % w.shape[d];
      r /= w.shape[d];
      for (int k = 0; k < N; ++k) off[k] += idx[d] * w.step[d][k];
    }
    for (int64_t i = b; i < e; ++i) {
      row(off, inner, istep);
      for (int d = nd - 2; d >= 0; --d) {
        for (int k = 0; k < N; ++k) off[k] += w.step[d][k];
        if (++idx[d] < w.shape[d]) break;
        for (int k = 0; k < N; ++k) off[k] -= w.step[d][k] * w.shape[d];
        idx[d] = 0;
      }
    }
  });
}

// Strides of a contiguous operand of shape `in` broadcast (right-aligned) to `out`:
// 0 where `in` has size 1 or no dim at all.
inline std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& in,
                                              const std::vector<int64_t>& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t s = 1;
  const size_t lead = out.size() - in.size();
  for (size_t i = in.size(); i-- > 0;) {
    st[lead + i] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  return st;
}

}  // namespace fastnn
