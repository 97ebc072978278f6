#include <tuple>

#include "bindings/convert.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "ops/dense.h"

namespace fastnn {

namespace {

ActParams act_params(int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail("linear", "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
}

py::object opt_numpy(const Tensor& t) {
  return t.defined() && t.storage() ? py::object(to_numpy(t)) : py::object(py::none());
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def("linear_fwd", [](py::handle x, py::handle w, py::handle b, int act, float beta,
                         float threshold) {
    ActParams p = act_params(act, beta, threshold);
    Tensor tx = arg_tensor(x, "linear", "input", DType::f32);
    Tensor tw = arg_tensor(w, "linear", "weight", DType::f32);
    Tensor tb = opt_tensor(b, "linear", "bias", DType::f32);
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = linear_forward(tx, tw, tb, p); }
    return py::make_tuple(to_numpy(r.first), opt_numpy(r.second));
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("act") = 0, py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f,
     "(y, z) with y = act(x·wᵀ + b); z = x·wᵀ + b only for gelu (4) and softplus (5), else None.");

  m.def("linear_bwd", [](py::handle dy, py::handle x, py::handle w, py::handle saved, int act,
                         float beta, float threshold, bool need_dx, bool need_dw, bool need_db) {
    ActParams p = act_params(act, beta, threshold);
    Tensor tdy = arg_tensor(dy, "linear", "grad_output", DType::f32);
    Tensor tx = arg_tensor(x, "linear", "input", DType::f32);
    Tensor tw = arg_tensor(w, "linear", "weight", DType::f32);
    Tensor ts = opt_tensor(saved, "linear", "saved", DType::f32);
    LinearGrads g;
    {
      py::gil_scoped_release nogil;
      g = linear_backward(tdy, tx, tw, ts, p, need_dx, need_dw, need_db);
    }
    return py::make_tuple(need_dx ? opt_numpy(g.dx) : py::none(),
                          need_dw ? opt_numpy(g.dw) : py::none(),
                          need_db ? opt_numpy(g.db) : py::none());
  }, py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("saved"), py::arg("act") = 0,
     py::arg("beta") = 1.f, py::arg("threshold") = 20.f, py::arg("need_dx") = true,
     py::arg("need_dw") = true, py::arg("need_db") = true,
     "(dx, dw, db) of linear; saved is z for gelu/softplus, y for relu/sigmoid/tanh.");

  m.def("gemm", [](py::handle a, py::handle b, bool trans_a, bool trans_b, py::handle out,
                   bool accumulate) {
    Tensor ta = arg_tensor(a, "matmul", "a", DType::f32);
    Tensor tb = arg_tensor(b, "matmul", "b", DType::f32);
    Tensor tc = out.is_none() ? Tensor() : arg_tensor(out, "matmul", "out", DType::f32, true);
    Tensor c;
    { py::gil_scoped_release nogil; c = gemm(ta, tb, trans_a, trans_b, tc, accumulate); }
    if (!out.is_none()) return py::reinterpret_borrow<py::object>(out);
    return py::object(to_numpy(c));
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     py::arg("out") = py::none(), py::arg("accumulate") = false,
     "c = op(a)·op(b) (2-D). With out: written into out, or added to it when accumulate.");

  m.def("bmm", [](py::handle a, py::handle b, bool trans_a, bool trans_b) {
    Tensor ta = arg_tensor(a, "matmul", "a", DType::f32);
    Tensor tb = arg_tensor(b, "matmul", "b", DType::f32);
    Tensor c;
    { py::gil_scoped_release nogil; c = bmm(ta, tb, trans_a, trans_b); }
    return to_numpy(c);
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     "c[i] = op(a[i])·op(b[i]) for 3-D a, b; a batch of 1 broadcasts.");

  m.def("peak_gflops", [](int threads) {
    if (threads < 1) fail("peak_gflops", "threads must be >= 1, got ", threads);
    py::gil_scoped_release nogil;
    return peak_gflops(threads);
  }, py::arg("threads"),
     "Measured float32 FMA peak (GFLOP/s) of the active ISA on `threads` pool threads.");

  m.def("cache_sizes", [] {
    const CacheSizes& cs = cache_sizes();
    py::dict d;
    d["l1d"] = cs.l1d; d["l2"] = cs.l2; d["l3"] = cs.l3; d["detected"] = cs.detected;
    return d;
  }, "Data cache sizes in bytes read from cpuid: {'l1d', 'l2', 'l3', 'detected'}.");

  m.def("gemm_blocks", [] {
    GemmBlocks b = gemm_blocks(gemm_kernel());
    return py::make_tuple(b.mc, b.kc, b.nc);
  }, "(mc, kc, nc) cache blocks of the active GEMM kernel.");

  m.def("gemm_kernel_name", [] { return std::string(gemm_kernel().name); },
        "Name of the GEMM micro-kernel for the active ISA.");
}

}  // namespace fastnn
