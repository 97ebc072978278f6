#include "ops/loss.h"

#include <algorithm>
#include <limits>

#include "cpu/loss.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {

Reduction parse_reduction(const std::string& r, const char* op) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  fail(op, "reduction must be 'mean', 'sum' or 'none', got '", r, "'");
}

namespace {
constexpr const char* kCE = "cross_entropy";


// Checks input/target and returns (N, C); unbatched (C,) input with a 0-d target is N = 1.
CEDims ce_check(const Tensor& x, const Tensor& t, int64_t ignore_index) {
  check_dtype(x, DType::f32, kCE, "input");
  check_contiguous(x, kCE, "input");
  check_dtype(t, DType::i64, kCE, "target");
  check_contiguous(t, kCE, "target");
  const CEDims d = ce_dims_any(x, t);
  const int64_t* tp = t.data<int64_t>();
  for (int64_t i = 0; i < d.n; ++i)
    if (tp[i] != ignore_index && (tp[i] < 0 || tp[i] >= d.c))
      fail<IndexError>(kCE, "target ", tp[i], " is out of range for ", d.c, " classes");
  return d;
}

int64_t ce_count(const Tensor& t, int64_t n, int64_t ignore_index) {
  const int64_t* tp = t.data<int64_t>();
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) k += tp[i] != ignore_index;
  return k;
}

// Shape of the loss before reduction: the target's ((N,), (N, d1, ..., dk) or 0-d).
Shape ce_loss_shape(const Tensor& t) { return t.shape(); }

Tensor scalar(double v) {
  Tensor s = empty({}, DType::f32);
  *s.data<float>() = (float)v;
  return s;
}
}  // namespace

CrossEntropyOut cross_entropy_forward(const Tensor& x, const Tensor& t, Reduction r,
                                      int64_t ignore_index) {
  CEDims d = ce_check(x, t, ignore_index);
  Tensor loss = empty(ce_loss_shape(t), DType::f32);
  Tensor stats = empty({d.n, 2}, DType::f32);
  cross_entropy_fwd(x.data<float>(), t.data<int64_t>(), loss.data<float>(), stats.data<float>(),
                    d.n, d.c, ignore_index, d.inner);
  if (r == Reduction::none) return {loss, stats};
  double s = 0.0;
  const float* lp = loss.data<float>();
  for (int64_t i = 0; i < d.n; ++i) s += lp[i];
  // NOTE: "mean" divides by the number of non-ignored targets; with none (empty batch, or
  // all ignored) that is 0/0 = NaN, as PyTorch.
  if (r == Reduction::mean) s /= (double)ce_count(t, d.n, ignore_index);
  return {scalar(s), stats};
}

Tensor cross_entropy_backward(const Tensor& g, const Tensor& x, const Tensor& t,
                              const Tensor& stats, Reduction r, int64_t ignore_index) {
  CEDims d = ce_check(x, t, ignore_index);
  check_dtype(g, DType::f32, kCE, "grad_output");
  check_contiguous(g, kCE, "grad_output");
  check_shape(g, r == Reduction::none ? ce_loss_shape(t) : Shape{}, kCE, "grad_output");
  check_dtype(stats, DType::f32, kCE, "stats");
  check_contiguous(stats, kCE, "stats");
  check_shape(stats, {d.n, 2}, kCE, "stats");
  float scale = 1.f;
  if (r == Reduction::mean) {
    const int64_t k = ce_count(t, d.n, ignore_index);
    scale = k ? (float)(1.0 / (double)k) : std::numeric_limits<float>::quiet_NaN();
  }
  Tensor dx = empty(x.shape(), DType::f32);
  cross_entropy_bwd(x.data<float>(), t.data<int64_t>(), stats.data<float>(), g.data<float>(),
                    r == Reduction::none ? 1 : 0, scale, dx.data<float>(), d.n, d.c,
                    ignore_index, d.inner);
  return dx;
}

namespace {
constexpr const char* kMSE = "mse_loss";
void mse_check(const Tensor& x, const Tensor& y) {
  check_dtype(x, DType::f32, kMSE, "input");
  check_contiguous(x, kMSE, "input");
  check_dtype(y, DType::f32, kMSE, "target");
  check_contiguous(y, kMSE, "target");
  // NOTE: no broadcasting, on purpose: (N, 1) against (N,) would silently give an (N, N) loss.
  if (x.shape() != y.shape())
    fail(kMSE, "input and target must have the same shape, got input ", shape_str(x.shape()),
         " and target ", shape_str(y.shape()));
}
}  // namespace

Tensor mse_forward(const Tensor& x, const Tensor& y, Reduction r) {
  mse_check(x, y);
  const int64_t n = x.numel();
  if (r == Reduction::none) {
    Tensor out = empty(x.shape(), DType::f32);
    mse_fwd_none(x.data<float>(), y.data<float>(), out.data<float>(), n);
    return out;
  }
  double s = mse_fwd_sum(x.data<float>(), y.data<float>(), n);
  if (r == Reduction::mean) s /= (double)n;  // empty input: 0/0 = NaN, as PyTorch
  return scalar(s);
}

std::pair<Tensor, Tensor> mse_backward(const Tensor& g, const Tensor& x, const Tensor& y,
                                       Reduction r, bool need_x, bool need_y) {
  mse_check(x, y);
  check_dtype(g, DType::f32, kMSE, "grad_output");
  check_contiguous(g, kMSE, "grad_output");
  check_shape(g, r == Reduction::none ? x.shape() : Shape{}, kMSE, "grad_output");
  const int64_t n = x.numel();
  const float scale = r == Reduction::mean ? (float)(1.0 / (double)std::max<int64_t>(n, 1)) : 1.f;
  Tensor gx, gy;
  if (need_x) gx = empty(x.shape(), DType::f32);
  if (need_y) gy = empty(x.shape(), DType::f32);
  if (need_x || need_y)
    mse_bwd(x.data<float>(), y.data<float>(), g.data<float>(), r == Reduction::none ? 1 : 0,
            scale, need_x ? gx.data<float>() : nullptr, need_y ? gy.data<float>() : nullptr, n);
  return {gx, gy};
}

}  // namespace fastnn
