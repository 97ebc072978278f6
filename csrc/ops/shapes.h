// Shape logic of the ops that does not depend on the device: the CPU ops (csrc/ops) and the
// CUDA ops (csrc/cuda/ops.cpp) both derive their output shapes and report shape errors
// through these, so the two backends accept the same arguments with the same messages.
// Header-only: _C and _C_cuda are separate modules that share no object files.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "ops/common.h"

namespace fastnn {

// The broadcast shape of a and b (NumPy rules), or ValueError "[op] shapes ... do not broadcast".
inline Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    // Right-aligned: a missing leading dim acts as size 1.
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes ", shape_str(a), " and ", shape_str(b), " do not broadcast (dim ", i,
           ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Product of s[b..e).
inline int64_t prod(const Shape& s, size_t b, size_t e) {
  int64_t n = 1;
  for (size_t i = b; i < e; ++i) n *= s[i];
  return n;
}

// op(a) (M x K) times op(b) (K x N), for 2-D a and b (batch = 1) or 3-D ones (batch sizes
// equal or 1: a batch of 1 takes the other's size, including 0, so an empty batch stays
// empty). ValueError on a rank, batch or inner-dimension mismatch.
struct MatmulDims {
  int64_t batch, M, N, K;
};
inline MatmulDims matmul_dims(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                              int64_t ndim, const char* op) {
  check_ndim(a, ndim, op, "a");
  check_ndim(b, ndim, op, "b");
  const int64_t o = ndim - 2;  // index of op(.)'s first matrix dim
  MatmulDims d{1, 0, 0, 0};
  if (ndim == 3) {
    const int64_t Ba = a.size(0), Bb = b.size(0);
    if (Ba != Bb && Ba != 1 && Bb != 1)
      fail(op, "batch sizes must match or be 1, got a ", shape_str(a.shape()), " and b ",
           shape_str(b.shape()));
    d.batch = Ba == 1 ? Bb : Ba;
  }
  d.M = trans_a ? a.size(o + 1) : a.size(o);
  d.K = trans_a ? a.size(o) : a.size(o + 1);
  const int64_t Kb = trans_b ? b.size(o + 1) : b.size(o);
  d.N = trans_b ? b.size(o) : b.size(o + 1);
  if (d.K != Kb)
    fail(op, "inner dimensions must match: op(a) is (", d.M, ", ", d.K, "), op(b) is (", Kb,
         ", ", d.N, ") (a ", shape_str(a.shape()), trans_a ? " transposed" : "", ", b ",
         shape_str(b.shape()), trans_b ? " transposed" : "", ")");
  return d;
}

// linear's x (N, IN) and w (OUT, IN) -> {N, IN, OUT}; ValueError naming the mismatch.
struct LinearDims {
  int64_t N, IN, OUT;
};
inline LinearDims linear_dims(const Tensor& x, const Tensor& w, const char* op) {
  check_ndim(x, 2, op, "input");
  const int64_t N = x.size(0), IN = x.size(1);
  if (w.ndim() != 2 || w.size(1) != IN)
    fail(op, "weight must be (out, in) with in=", IN, " matching input ", shape_str(x.shape()),
         ", got ", shape_str(w.shape()));
  return {N, IN, w.size(0)};
}

// cross_entropy's logits (N, C) with target (N,), or unbatched (C,) with a 0-d target (N=1).
// ce_dims_any also takes (N, C, d1, ..., dk) with target (N, d1, ..., dk): then n counts the
// positions (N * d1 * ... * dk) and inner = d1 * ... * dk (the class dim's stride).
struct CEDims {
  int64_t n, c;
  bool unbatched;
  int64_t inner = 1;
};
inline CEDims ce_dims(const Tensor& x, const Tensor& t) {
  constexpr const char* op = "cross_entropy";
  if (x.ndim() == 2) {
    if (t.shape() != Shape{x.size(0)})
      fail(op, "target must have shape (N,)=(", x.size(0), ",) for input of shape ",
           shape_str(x.shape()), ", got ", shape_str(t.shape()));
    return {x.size(0), x.size(1), false};
  }
  if (x.ndim() == 1) {
    if (t.ndim() != 0)
      fail(op, "target must be 0-d for unbatched input of shape ", shape_str(x.shape()),
           ", got ", shape_str(t.shape()));
    return {1, x.size(0), true};
  }
  fail(op, "input must be (N, C) or unbatched (C,), got ", x.ndim(), "-D with shape ",
       shape_str(x.shape()));
}
inline CEDims ce_dims_any(const Tensor& x, const Tensor& t) {
  if (x.ndim() <= 2) return ce_dims(x, t);
  const Shape& xs = x.shape();
  Shape want(xs.begin() + 1, xs.end());  // (C, d1, ..., dk) -> (N, d1, ..., dk)
  want[0] = xs[0];
  if (t.shape() != want)
    fail("cross_entropy", "target must have shape ", shape_str(want), " (the input's without the "
         "class dim 1) for input of shape ", shape_str(xs), ", got ", shape_str(t.shape()));
  const int64_t inner = prod(xs, 2, xs.size());
  return {xs[0] * inner, xs[1], false, inner};
}

// A reduction along `dim` of `shape` viewed as (outer, r, inner); `out` is the result's
// shape (dim kept as 1 or dropped). A 0-d shape reduces as one element.
struct DimSplit {
  int64_t d, outer, r, inner;
  Shape out;
};
inline DimSplit split_dim(const Shape& shape, int64_t dim, bool keepdim, const char* op) {
  const int64_t nd = (int64_t)shape.size();
  DimSplit s;
  s.d = wrap_dim(dim, nd, op);
  s.r = nd ? shape[s.d] : 1;
  s.outer = nd ? prod(shape, 0, s.d) : 1;
  s.inner = nd ? prod(shape, s.d + 1, nd) : 1;
  s.out = shape;
  if (nd) {
    if (keepdim) s.out[s.d] = 1;
    else s.out.erase(s.out.begin() + s.d);
  }
  return s;
}

// argmax over all elements (dim unset: one row of numel; keepdim keeps every dim as 1, as
// PyTorch) or along dim; ValueError for an empty reduction.
inline DimSplit argmax_split(const Shape& shape, std::optional<int64_t> dim, bool keepdim,
                             const char* op) {
  if (!dim) {
    DimSplit s{0, 1, prod(shape, 0, shape.size()), 1, {}};
    if (keepdim) s.out.assign(shape.size(), 1);
    if (s.r == 0) fail(op, "cannot take the argmax of an empty tensor of shape ", shape_str(shape));
    return s;
  }
  DimSplit s = split_dim(shape, *dim, keepdim, op);
  if (s.r == 0)
    fail(op, "cannot take the argmax along dim ", *dim, " of size 0 (shape ", shape_str(shape), ")");
  return s;
}

// A sum/mean over `dims` (none or empty: all) of `shape`: which dims are reduced, how many
// elements each output sums (count), the output shape without keepdim, and the runs of
// consecutive reduced dims, each one (outer, r, inner) pass. A 0-d shape has one notional
// dim of size 1 and one pass.
struct SumPlan {
  std::vector<bool> reduced;
  int64_t count = 1;
  Shape out;                                        // without keepdim
  std::vector<std::pair<size_t, size_t>> runs;      // [begin, end) dims, first to last
};
inline SumPlan sum_plan(const Shape& shape, const std::optional<std::vector<int64_t>>& dims,
                        const char* op) {
  const size_t nd = shape.size();
  SumPlan p;
  p.reduced.assign(nd, !dims.has_value() || dims->empty());
  if (dims && !dims->empty()) {
    for (int64_t d : *dims) {
      int64_t w = wrap_dim(d, (int64_t)nd, op);
      if (nd == 0) continue;
      if (p.reduced[w])
        fail<std::runtime_error>(op, "dim ", w, " appears multiple times in the list of dims");
      p.reduced[w] = true;
    }
  }
  for (size_t d = 0; d < nd; ++d) {
    if (p.reduced[d]) p.count *= shape[d];
    else p.out.push_back(shape[d]);
  }
  for (size_t d = 0; d < nd;) {
    if (!p.reduced[d]) { ++d; continue; }
    size_t e = d;
    while (e < nd && p.reduced[e]) ++e;
    p.runs.push_back({d, e});
    d = e;
  }
  if (p.runs.empty()) p.runs.push_back({0, nd});  // nothing reduced (0-d): still one pass
  return p;
}

}  // namespace fastnn
