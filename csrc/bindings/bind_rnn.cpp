#include "bindings/convert.h"
#include "ops/rnn.h"

namespace fastnn {

namespace {

RnnMode mode_of(int mode) {
  if (mode < 0 || mode > 2) fail("rnn", "unknown mode ", mode, " (0 lstm, 1 rnn_tanh, 2 rnn_relu)");
  return (RnnMode)mode;
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_fwd", [](int mode, py::handle x, py::handle h0, py::handle c0, py::handle w_ih,
                      py::handle w_hh, py::handle b_ih, py::handle b_hh) {
    RnnMode md = mode_of(mode);
    const char* op = md == RnnMode::lstm ? "lstm" : "rnn";
    Tensor tx = arg_tensor(x, op, "input", DType::f32);
    Tensor th = opt_tensor(h0, op, "h0", DType::f32);
    Tensor tc = opt_tensor(c0, op, "c0", DType::f32);
    Tensor twi = arg_tensor(w_ih, op, "weight_ih", DType::f32);
    Tensor twh = arg_tensor(w_hh, op, "weight_hh", DType::f32);
    Tensor tbi = opt_tensor(b_ih, op, "bias_ih", DType::f32);
    Tensor tbh = opt_tensor(b_hh, op, "bias_hh", DType::f32);
    RnnForward r;
    { py::gil_scoped_release nogil; r = rnn_forward(md, tx, th, tc, twi, twh, tbi, tbh); }
    return py::make_tuple(to_numpy(r.y), opt_numpy(r.c), opt_numpy(r.gates));
  }, py::arg("mode"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"),
     py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
     "One recurrent layer over the whole sequence, time-major x (T, N, I). mode: 0 lstm, "
     "1 rnn tanh, 2 rnn relu. Returns (y (T, N, H), c (T, N, H) or None, gates (T, N, 4H) or None).");

  m.def("rnn_bwd", [](int mode, py::handle x, py::handle h0, py::handle c0, py::handle w_ih,
                      py::handle w_hh, py::handle y, py::handle c, py::handle gates,
                      py::handle dy, py::handle dhn, py::handle dcn, bool need_dx, bool need_dw,
                      bool need_db) {
    RnnMode md = mode_of(mode);
    const char* op = md == RnnMode::lstm ? "lstm" : "rnn";
    Tensor tx = arg_tensor(x, op, "input", DType::f32);
    Tensor th = opt_tensor(h0, op, "h0", DType::f32);
    Tensor tc = opt_tensor(c0, op, "c0", DType::f32);
    Tensor twi = arg_tensor(w_ih, op, "weight_ih", DType::f32);
    Tensor twh = arg_tensor(w_hh, op, "weight_hh", DType::f32);
    RnnForward f;
    f.y = arg_tensor(y, op, "saved output", DType::f32);
    f.c = opt_tensor(c, op, "saved cell states", DType::f32);
    f.gates = opt_tensor(gates, op, "saved gates", DType::f32);
    if (md == RnnMode::lstm && (!f.c.defined() || !f.gates.defined()))
      fail(op, "backward needs the saved cell states and gates, got None");
    Tensor tdy = opt_tensor(dy, op, "grad_output", DType::f32);
    Tensor tdh = opt_tensor(dhn, op, "grad_h_n", DType::f32);
    Tensor tdc = opt_tensor(dcn, op, "grad_c_n", DType::f32);
    RnnGrads g;
    {
      py::gil_scoped_release nogil;
      g = rnn_backward(md, tx, th, tc, twi, twh, f, tdy, tdh, tdc, need_dx, need_dw, need_db);
    }
    return py::make_tuple(opt_numpy(g.dx), opt_numpy(g.dh0), opt_numpy(g.dc0),
                          opt_numpy(g.dw_ih), opt_numpy(g.dw_hh), opt_numpy(g.db));
  }, py::arg("mode"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"),
     py::arg("w_hh"), py::arg("y"), py::arg("c"), py::arg("gates"), py::arg("dy"),
     py::arg("dhn"), py::arg("dcn"), py::arg("need_dx") = true, py::arg("need_dw") = true,
     py::arg("need_db") = true,
     "(dx, dh0, dc0, dw_ih, dw_hh, db) of one recurrent layer; None where not requested "
     "(dc0 only for the LSTM); db is the gradient of bias_ih and of bias_hh alike.");
}

}  // namespace fastnn
