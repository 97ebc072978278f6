#include <string>

#include "bindings/convert.h"
#include "ops/loss.h"

namespace fastnn {

void bind_loss(py::module_& m) {
  m.def("cross_entropy_fwd", [](py::handle input, py::handle target, const std::string& reduction,
                                int64_t ignore_index) {
    const char* op = "cross_entropy";
    Reduction r = parse_reduction(reduction, op);
    Tensor tx = arg_tensor(input, op, "input", DType::f32);
    Tensor tt = arg_tensor(target, op, "target", DType::i64);
    CrossEntropyOut out;
    { ReleaseGilFor nogil(tx.numel()); out = cross_entropy_forward(tx, tt, r, ignore_index); }
    return py::make_tuple(to_numpy(out.loss), to_numpy(out.stats));
  }, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     py::arg("ignore_index") = -100,
     "(loss, stats): cross-entropy of (N, C) logits against (N,) int64 targets; stats (N, 2) "
     "is what cross_entropy_bwd needs.");
  m.def("cross_entropy_bwd", [](py::handle grad, py::handle input, py::handle target,
                                py::handle stats, const std::string& reduction,
                                int64_t ignore_index) {
    const char* op = "cross_entropy";
    Reduction r = parse_reduction(reduction, op);
    Tensor tg = arg_tensor(grad, op, "grad_output", DType::f32);
    Tensor tx = arg_tensor(input, op, "input", DType::f32);
    Tensor tt = arg_tensor(target, op, "target", DType::i64);
    Tensor ts = arg_tensor(stats, op, "stats", DType::f32);
    Tensor dx;
    { ReleaseGilFor nogil(tx.numel()); dx = cross_entropy_backward(tg, tx, tt, ts, r, ignore_index); }
    return to_numpy(dx);
  }, py::arg("grad"), py::arg("input"), py::arg("target"), py::arg("stats"),
     py::arg("reduction") = "mean", py::arg("ignore_index") = -100,
     "grad_input = (softmax(input) - onehot(target)) * grad, in one pass over the logits.");
  m.def("mse_fwd", [](py::handle input, py::handle target, const std::string& reduction) {
    const char* op = "mse_loss";
    Reduction r = parse_reduction(reduction, op);
    Tensor tx = arg_tensor(input, op, "input", DType::f32);
    Tensor ty = arg_tensor(target, op, "target", DType::f32);
    Tensor out;
    { ReleaseGilFor nogil(tx.numel()); out = mse_forward(tx, ty, r); }
    return to_numpy(out);
  }, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     "(input - target)^2 reduced by 'mean', 'sum' (SSR) or 'none'; shapes must match.");
  m.def("mse_bwd", [](py::handle grad, py::handle input, py::handle target,
                      const std::string& reduction, bool need_input, bool need_target) {
    const char* op = "mse_loss";
    Reduction r = parse_reduction(reduction, op);
    Tensor tg = arg_tensor(grad, op, "grad_output", DType::f32);
    Tensor tx = arg_tensor(input, op, "input", DType::f32);
    Tensor ty = arg_tensor(target, op, "target", DType::f32);
    std::pair<Tensor, Tensor> g;
    { ReleaseGilFor nogil(tx.numel()); g = mse_backward(tg, tx, ty, r, need_input, need_target); }
    py::object gx = need_input ? py::object(to_numpy(g.first)) : py::none();
    py::object gy = need_target ? py::object(to_numpy(g.second)) : py::none();
    return py::make_tuple(gx, gy);
  }, py::arg("grad"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     py::arg("need_input") = true, py::arg("need_target") = true,
     "(grad_input, grad_target), each None unless asked for.");
}

}  // namespace fastnn
