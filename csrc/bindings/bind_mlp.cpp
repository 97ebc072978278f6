#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "ops/mlp.h"

namespace fastnn {

namespace {

constexpr const char* kOp = "linear";

py::sequence as_list(py::handle obj, const char* name, size_t n) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    fail<TypeError>(kOp, name, " must be a list, got ",
                    py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (n != (size_t)-1 && seq.size() != n)
    fail(kOp, name, " must have one entry per layer (", n, "), got ", seq.size());
  return seq;
}

// ws, bs (None for no bias), acts, betas, thresholds: one entry per layer.
std::vector<MlpLayer> layers_from(py::handle ws, py::handle bs, py::handle acts,
                                  py::handle betas, py::handle thresholds) {
  auto w = as_list(ws, "weights", (size_t)-1);
  const size_t L = w.size();
  auto b = as_list(bs, "biases", L);
  auto a = as_list(acts, "acts", L);
  auto be = as_list(betas, "betas", L);
  auto th = as_list(thresholds, "thresholds", L);
  std::vector<MlpLayer> layers(L);
  for (size_t i = 0; i < L; ++i) {
    const int act = a[i].cast<int>();
    if (act < 0 || act > (int)Act::softplus) fail(kOp, "unknown activation code ", act);
    layers[i].w = arg_tensor(w[i], kOp, "weight", DType::f32);
    layers[i].b = opt_tensor(b[i], kOp, "bias", DType::f32);
    layers[i].p = ActParams{(Act)act, be[i].cast<float>(), th[i].cast<float>()};
  }
  return layers;
}

int64_t chain_macs(const Tensor& x, const std::vector<MlpLayer>& layers) {
  int64_t macs = 0;
  for (const auto& l : layers) macs += x.size(0) * l.w.numel();
  return macs;
}

std::vector<Tensor> tensors_from(py::handle obj, const char* name, size_t n, bool optional) {
  auto seq = as_list(obj, name, n);
  std::vector<Tensor> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = optional ? opt_tensor(seq[i], kOp, name, DType::f32)
                      : arg_tensor(seq[i], kOp, name, DType::f32);
  return out;
}

py::list numpy_list(const std::vector<Tensor>& ts) {
  py::list out(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) out[i] = opt_numpy(ts[i]);
  return out;
}

}  // namespace

void bind_mlp(py::module_& m) {
  m.def("mlp_fwd", [](py::handle x, py::handle ws, py::handle bs, py::handle acts,
                      py::handle betas, py::handle thresholds) {
    Tensor tx = arg_tensor(x, kOp, "input", DType::f32);
    std::vector<MlpLayer> layers = layers_from(ws, bs, acts, betas, thresholds);
    MlpSaved s;
    {
      // Work counted in multiply-adds, as bind_dense.cpp's GEMMs (against 2x the threshold).
      ReleaseGilFor nogil(tx.ndim() == 2 ? chain_macs(tx, layers) / 2 : 0);
      s = mlp_forward(tx, layers);
    }
    return py::make_tuple(numpy_list(s.ys), numpy_list(s.zs));
  }, py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("acts"), py::arg("betas"),
     py::arg("thresholds"),
     "Linear layers in a chain, each y = act(x·wᵀ + b) feeding the next. Returns (ys, zs): "
     "every layer's output (the last is the chain's) and, for gelu/softplus layers, its "
     "pre-activation (None for the others).");

  m.def("mlp_bwd", [](py::handle dy, py::handle x, py::handle ws, py::handle bs, py::handle acts,
                      py::handle betas, py::handle thresholds, py::handle ys, py::handle zs,
                      bool need_dx, const std::vector<bool>& need_dw,
                      const std::vector<bool>& need_db) {
    Tensor tdy = arg_tensor(dy, kOp, "grad_output", DType::f32);
    Tensor tx = arg_tensor(x, kOp, "input", DType::f32);
    std::vector<MlpLayer> layers = layers_from(ws, bs, acts, betas, thresholds);
    MlpSaved s;
    s.ys = tensors_from(ys, "saved outputs", layers.size(), false);
    s.zs = tensors_from(zs, "saved pre-activations", layers.size(), true);
    MlpGrads g;
    {
      ReleaseGilFor nogil(tx.ndim() == 2 ? chain_macs(tx, layers) : 0);  // 2 GEMMs per layer
      g = mlp_backward(tdy, tx, layers, s, need_dx, need_dw, need_db);
    }
    return py::make_tuple(opt_numpy(g.dx), numpy_list(g.dw), numpy_list(g.db));
  }, py::arg("dy"), py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("acts"),
     py::arg("betas"), py::arg("thresholds"), py::arg("ys"), py::arg("zs"), py::arg("need_dx"),
     py::arg("need_dw"), py::arg("need_db"),
     "(dx, dws, dbs) of mlp_fwd's chain given the gradient of its output; None where not "
     "requested (dx unless need_dx, a layer's dw / db unless need_dw[i] / need_db[i]).");
}

}  // namespace fastnn
