#include "ops/reduce.h"

#include "cpu/reduce.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {

namespace {

// A tensor sharing t's storage with a new contiguous shape of the same element count.
Tensor reshaped(const Tensor& t, const Shape& shape) {
  return Tensor(t.storage(), t.raw(), t.dtype(), shape, contiguous_strides(shape));
}


}  // namespace

Tensor reduce_sum(const Tensor& x, const std::optional<std::vector<int64_t>>& dims, bool keepdim,
                  bool mean) {
  const char* op = mean ? "mean" : "sum";
  check_contiguous(x, op, "input");
  if (mean && x.dtype() != DType::f32)
    fail<TypeError>(op, "input must be float32 (the mean of int64 is undefined, as in PyTorch: "
                    "cast with .float()), got ", dtype_name(x.dtype()));
  const size_t nd = (size_t)x.ndim();
  // reduced[d]: is dim d reduced. A 0-d input has one notional dim of size 1.
  std::vector<bool> reduced(nd, !dims.has_value() || dims->empty());
  if (dims && !dims->empty()) {
    for (int64_t d : *dims) {
      int64_t w = wrap_dim(d, (int64_t)nd, op);
      if (nd == 0) continue;
      if (reduced[w]) fail<std::runtime_error>(op, "dim ", w, " appears multiple times in the list of dims");
      reduced[w] = true;
    }
  }
  Shape keep_shape = x.shape();
  int64_t count = 1;
  for (size_t d = 0; d < nd; ++d)
    if (reduced[d]) { count *= keep_shape[d]; keep_shape[d] = 1; }

  // Each run of consecutive reduced dims is one (outer, r, inner) pass, from the last run to
  // the first; the mean's division happens in the last pass so it is done once.
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t d = 0; d < nd;) {
    if (!reduced[d]) { ++d; continue; }
    size_t e = d;
    while (e < nd && reduced[e]) ++e;
    runs.push_back({d, e});
    d = e;
  }
  Tensor cur = x;
  Shape shape = x.shape();
  if (runs.empty()) {  // nothing reduced (0-d input): still a fresh output
    runs.push_back({0, nd});
  }
  for (size_t k = runs.size(); k-- > 0;) {
    auto [b, e] = runs[k];
    const int64_t outer = prod(shape, 0, b), r = prod(shape, b, e), inner = prod(shape, e, nd);
    for (size_t d = b; d < e; ++d) shape[d] = 1;
    Tensor out = empty(shape, x.dtype());
    if (x.dtype() == DType::f32)
      sum_f32(cur.data<float>(), outer, r, inner, (mean && k == 0) ? (double)count : 1.0,
              out.data<float>());
    else
      sum_i64(cur.data<int64_t>(), outer, r, inner, out.data<int64_t>());
    cur = out;
  }
  if (keepdim) return cur;
  Shape out_shape;
  for (size_t d = 0; d < nd; ++d)
    if (!reduced[d]) out_shape.push_back(x.shape()[d]);
  return reshaped(cur, out_shape);
}

Tensor extreme_all(const Tensor& x, bool is_max) {
  const char* op = is_max ? "max" : "min";
  check_contiguous(x, op, "input");
  if (x.numel() == 0)
    fail<std::runtime_error>(op, "expected a non-empty input for a reduction over all elements, "
                             "got shape ", shape_str(x.shape()), "; specify the reduction dim with dim=");
  Tensor out = empty({}, x.dtype());
  if (x.dtype() == DType::f32)
    extreme_f32(is_max, x.data<float>(), 1, x.numel(), 1, out.data<float>(), nullptr);
  else
    extreme_i64(is_max, x.data<int64_t>(), 1, x.numel(), 1, out.data<int64_t>(), nullptr);
  return out;
}

std::pair<Tensor, Tensor> extreme_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* op = is_max ? "max" : "min";
  check_contiguous(x, op, "input");
  const DimSplit v = split_dim(x.shape(), dim, keepdim, op);
  const int64_t outer = v.outer, r = v.r, inner = v.inner;
  if (r == 0)
    fail<IndexError>(op, "expected reduction dim ", v.d, " to have non-zero size, got shape ",
                     shape_str(x.shape()));
  const Shape& out_shape = v.out;
  Tensor val = empty(out_shape, x.dtype()), idx = empty(out_shape, DType::i64);
  if (x.dtype() == DType::f32)
    extreme_f32(is_max, x.data<float>(), outer, r, inner, val.data<float>(), idx.data<int64_t>());
  else
    extreme_i64(is_max, x.data<int64_t>(), outer, r, inner, val.data<int64_t>(),
                idx.data<int64_t>());
  return {val, idx};
}

Tensor extreme_dim_backward(const Tensor& g, const Tensor& idx, const Shape& shape, int64_t dim,
                            bool keepdim, bool is_max) {
  const char* op = is_max ? "max" : "min";
  check_dtype(g, DType::f32, op, "grad_output");
  check_dtype(idx, DType::i64, op, "indices");
  check_contiguous(g, op, "grad_output");
  check_contiguous(idx, op, "indices");
  const DimSplit v = split_dim(shape, dim, keepdim, op);
  check_shape(g, v.out, op, "grad_output");
  check_shape(idx, v.out, op, "indices");
  const int64_t outer = v.outer, r = v.r, inner = v.inner;
  const int64_t* ip = idx.data<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    if (ip[i] < 0 || ip[i] >= r)
      fail<IndexError>(op, "indices must be in [0, ", r, "), got ", ip[i]);
  Tensor dx = empty(shape, DType::f32);
  scatter_dim_f32(g.data<float>(), ip, outer, r, inner, dx.data<float>());
  return dx;
}

Tensor extreme_all_backward(const Tensor& x, const Tensor& value, const Tensor& g, bool is_max) {
  const char* op = is_max ? "max" : "min";
  check_dtype(x, DType::f32, op, "input");
  check_dtype(value, DType::f32, op, "value");
  check_dtype(g, DType::f32, op, "grad_output");
  check_contiguous(x, op, "input");
  if (value.numel() != 1) fail(op, "value must have one element, got shape ", shape_str(value.shape()));
  if (g.numel() != 1) fail(op, "grad_output must have one element, got shape ", shape_str(g.shape()));
  Tensor dx = empty(x.shape(), DType::f32);
  extreme_all_bwd_f32(x.data<float>(), x.numel(), *value.data<float>(), *g.data<float>(),
                      dx.data<float>());
  return dx;
}

}  // namespace fastnn
