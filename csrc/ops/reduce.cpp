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
  const SumPlan plan = sum_plan(x.shape(), dims, op);
  const auto& runs = plan.runs;
  const int64_t count = plan.count;
  // Each run of consecutive reduced dims is one (outer, r, inner) pass, from the last run to
  // the first; the mean's division happens in the last pass so it is done once.
  Tensor cur = x;
  Shape shape = x.shape();
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
  return reshaped(cur, plan.out);
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
