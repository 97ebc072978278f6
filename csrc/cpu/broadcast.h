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
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/parallel.h"

namespace fastnn {

// Elementwise work below this many elements stays on the calling thread: waking the pool
// costs more than it saves.
constexpr int64_t kEwGrain = 1 << 15;

// The most dims a walk takes: NumPy 2's limit on an array's dims (NPY_MAXDIMS).
constexpr int kMaxWalkDims = 64;

// A run of sizes or strides (a std::vector<int64_t> converts to it).
using DimsRef = std::span<const int64_t>;

// NOTE (speed): the walk lives in fixed arrays, not vectors. An elementwise op on 1,000 floats
// takes ~0.5 us through the Python API, and the ~10 small heap blocks the vectors took (shape,
// steps, and the stride lists built for them) cost ~0.1 us of that: besides their own malloc
// and free, freed small blocks make glibc consolidate on the next larger allocation, such as
// the result's NumPy buffer.
template <int N>
struct Walk {
  int nd = 0;                                // coalesced; at least one dim
  int64_t shape[kMaxWalkDims];               // (entries from nd on are unset)
  std::array<int64_t, N> step[kMaxWalkDims];  // step[d][k]: stride of operand k in dim d
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < nd; ++d) n *= shape[d];
    return n;
  }
};

// shape: the output shape; strides[k]: operand k's strides over that shape (shape.size() of
// them), or null for an operand laid out contiguously in that shape (the output, usually).
// More than kMaxWalkDims dims is fine as long as they coalesce to at most that many (host
// arrays never have more; a device array may); otherwise std::invalid_argument naming op.
template <int N>
Walk<N> make_walk(DimsRef shape, const std::array<const int64_t*, N>& strides,
                  const char* op = "broadcast") {
  const int nd = (int)shape.size();
  int64_t small[kMaxWalkDims];
  std::vector<int64_t> large(nd > kMaxWalkDims ? size_t(nd) : 0);
  int64_t* contiguous = nd > kMaxWalkDims ? large.data() : small;
  for (int64_t d = nd - 1, s = 1; d >= 0; --d) {
    contiguous[d] = s;
    s *= shape[size_t(d)];
  }
  Walk<N> w;
  for (int d = 0; d < nd; ++d) {
    const int64_t size = shape[size_t(d)];
    if (size == 1) continue;  // contributes nothing to any offset
    std::array<int64_t, N> st;
    for (int k = 0; k < N; ++k) st[k] = strides[k] ? strides[k][d] : contiguous[d];
    if (w.nd > 0) {
      // Merge into the previous (outer) dim when, for every operand, stepping the outer dim
      // once equals stepping this dim across its whole extent.
      auto& prev = w.step[w.nd - 1];
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable &= prev[k] == st[k] * size;
      if (mergeable) {
        w.shape[w.nd - 1] *= size;
        prev = st;
        continue;
      }
    }
    if (w.nd == kMaxWalkDims)
      throw std::invalid_argument(std::string("[") + op + "] at most " +
                                  std::to_string(kMaxWalkDims) +
                                  " dims that do not merge are supported, got more (" +
                                  std::to_string(nd) + " dims)");
    w.shape[w.nd] = size;
    w.step[w.nd] = st;
    ++w.nd;
  }
  if (w.nd == 0) {  // all dims of size 1 (or 0-d): one element
    w.nd = 1;
    w.shape[0] = 1;
    w.step[0] = std::array<int64_t, N>{};
  }
  return w;
}

// row(off, n, inner): process n elements of the innermost dim; operand k starts at element
// offset off[k] and advances by inner[k]. Rows are split across the pool; a 1-D walk (the
// common same-shape / scalar case) is split inside its single row instead.
template <int N, class Row>
void walk_rows(const Walk<N>& w, const Row& row) {
  const int nd = w.nd;
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
    int64_t idx[kMaxWalkDims];
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
