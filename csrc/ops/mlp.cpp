#include "ops/mlp.h"

#include "ops/common.h"
#include "ops/dense.h"

namespace fastnn {

namespace {

// Layer i's weight and bias against the width that reaches it; errors say which layer, since
// the caller (nn.Sequential) has no single "weight" argument to point at.
void check_layer(const MlpLayer& l, size_t i, int64_t in) {
  const char* op = "linear";
  check_dtype(l.w, DType::f32, op, "weight");
  if (l.w.ndim() != 2 || l.w.size(1) != in)
    fail(op, "layer ", i, ": weight must be (out, in) with in=", in,
         i == 0 ? " (the input's columns)" : " (the previous layer's outputs)", ", got ",
         shape_str(l.w.shape()));
  if (l.b.defined() && l.b.shape() != Shape{l.w.size(0)})
    fail(op, "layer ", i, ": bias must have shape (", l.w.size(0), ",), got ",
         shape_str(l.b.shape()));
}

}  // namespace

MlpSaved mlp_forward(const Tensor& x, const std::vector<MlpLayer>& layers) {
  if (layers.empty()) fail("linear", "a chain needs at least one layer, got none");
  check_dtype(x, DType::f32, "linear", "input");
  check_ndim(x, 2, "linear", "input");
  std::vector<LinearFwdJob> jobs;
  jobs.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const Tensor& in = i == 0 ? x : jobs.back().y;
    check_layer(layers[i], i, in.size(1));
    jobs.push_back(prepare_linear_forward(in, layers[i].w, layers[i].b, layers[i].p));
  }
  run_linear_forward(jobs);
  MlpSaved s;
  s.ys.reserve(layers.size());
  s.zs.reserve(layers.size());
  for (LinearFwdJob& j : jobs) {
    s.ys.push_back(std::move(j.y));
    s.zs.push_back(std::move(j.z));
  }
  return s;
}

MlpGrads mlp_backward(const Tensor& dy, const Tensor& x, const std::vector<MlpLayer>& layers,
                      const MlpSaved& saved, bool need_dx, const std::vector<bool>& need_dw,
                      const std::vector<bool>& need_db) {
  const size_t L = layers.size();
  if (L == 0 || saved.ys.size() != L || saved.zs.size() != L || need_dw.size() != L ||
      need_db.size() != L)
    fail("linear", "chain backward needs one saved output, pre-activation and grad flag per "
         "layer (", L, " layers), got ", saved.ys.size(), ", ", saved.zs.size(), ", ",
         need_dw.size(), " and ", need_db.size());
  // Every layer is checked and allocated first (layer k's dx is layer k-1's dy), then the
  // chain runs in as few parallel regions as its shapes allow.
  std::vector<LinearBwdJob> jobs;
  jobs.reserve(L);
  for (size_t k = L; k-- > 0;) {
    const MlpLayer& l = layers[k];
    const Tensor& in = k == 0 ? x : saved.ys[k - 1];
    const Tensor& act_saved = act_backward_needs_input(l.p.act) ? saved.zs[k] : saved.ys[k];
    const Tensor& d = k == L - 1 ? dy : jobs.back().g.dx;
    jobs.push_back(prepare_linear_backward(d, in, l.w, act_saved, l.p, k > 0 || need_dx,
                                           need_dw[k], need_db[k] && l.b.defined()));
  }
  run_linear_backward(jobs);
  MlpGrads g;
  g.dw.resize(L);
  g.db.resize(L);
  for (size_t k = 0; k < L; ++k) {
    LinearGrads& lg = jobs[L - 1 - k].g;
    g.dw[k] = std::move(lg.dw);
    g.db[k] = std::move(lg.db);
    if (k == 0) g.dx = std::move(lg.dx);
  }
  return g;
}

}  // namespace fastnn
