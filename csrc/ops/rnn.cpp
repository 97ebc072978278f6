#include "ops/rnn.h"

#include "cpu/rnn.h"
#include "ops/common.h"

namespace fastnn {

namespace {

const char* op_name(RnnMode m) { return m == RnnMode::lstm ? "lstm" : "rnn"; }
int64_t n_gates(RnnMode m) { return m == RnnMode::lstm ? 4 : 1; }
Act rnn_act(RnnMode m) { return m == RnnMode::rnn_relu ? Act::relu : Act::tanh; }

void check_f32_contig(const Tensor& t, const char* op, const char* name) {
  check_dtype(t, DType::f32, op, name);
  check_contiguous(t, op, name);
}

const float* ptr_or_null(const Tensor& t) { return t.defined() && t.numel() ? t.data<float>() : nullptr; }

struct Dims { int64_t T, N, I, H, G; };

// Every argument's dtype, layout and shape; returns the sizes.
Dims check_args(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  const char* op = op_name(mode);
  const int64_t G = n_gates(mode);
  check_f32_contig(x, op, "input");
  check_f32_contig(w_ih, op, "weight_ih");
  check_f32_contig(w_hh, op, "weight_hh");
  if (x.ndim() != 3)
    fail(op, "input must be 3-D (seq_len, batch, input_size), got shape ", shape_str(x.shape()));
  const int64_t T = x.size(0), N = x.size(1), I = x.size(2);
  if (T < 1) fail(op, "input sequence length must be >= 1, got ", T);
  if (w_hh.ndim() != 2 || w_hh.size(0) != G * w_hh.size(1))
    fail(op, "weight_hh must be (", G, "*hidden_size, hidden_size), got ", shape_str(w_hh.shape()));
  const int64_t H = w_hh.size(1);
  if (w_ih.ndim() != 2 || w_ih.size(0) != G * H || w_ih.size(1) != I)
    fail(op, "weight_ih must be (", G * H, ", ", I, ") = (", G, "*hidden_size, input_size) "
         "for input ", shape_str(x.shape()), ", got ", shape_str(w_ih.shape()));
  if (b_ih.defined()) { check_f32_contig(b_ih, op, "bias_ih"); check_shape(b_ih, {G * H}, op, "bias_ih"); }
  if (b_hh.defined()) { check_f32_contig(b_hh, op, "bias_hh"); check_shape(b_hh, {G * H}, op, "bias_hh"); }
  if (h0.defined()) { check_f32_contig(h0, op, "h0"); check_shape(h0, {N, H}, op, "h0"); }
  if (c0.defined()) {
    if (mode != RnnMode::lstm) fail(op, "c0 is only for the LSTM");
    check_f32_contig(c0, op, "c0");
    check_shape(c0, {N, H}, op, "c0");
  }
  return {T, N, I, H, G};
}

}  // namespace

RnnForward rnn_forward(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                       const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                       const Tensor& b_hh) {
  const Dims d = check_args(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh);
  const int64_t GH = d.G * d.H;
  // The two biases only ever appear summed: one vector for the GEMM epilogue.
  Tensor bias;
  if (b_ih.defined() || b_hh.defined()) {
    bias = empty({GH}, DType::f32);
    float* b = bias.data<float>();
    const float* bi = ptr_or_null(b_ih);
    const float* bh = ptr_or_null(b_hh);
    for (int64_t j = 0; j < GH; ++j) b[j] = (bi ? bi[j] : 0.f) + (bh ? bh[j] : 0.f);
  }
  RnnForward r;
  r.y = empty({d.T, d.N, d.H}, DType::f32);
  if (mode == RnnMode::lstm) {
    r.c = empty({d.T, d.N, d.H}, DType::f32);
    r.gates = empty({d.T, d.N, GH}, DType::f32);
    lstm_fwd(d.T, d.N, d.I, d.H, x.data<float>(), w_ih.data<float>(), w_hh.data<float>(),
             ptr_or_null(bias), ptr_or_null(h0), ptr_or_null(c0), r.y.data<float>(),
             r.c.data<float>(), r.gates.data<float>());
  } else {
    rnn_fwd(rnn_act(mode), d.T, d.N, d.I, d.H, x.data<float>(), w_ih.data<float>(),
            w_hh.data<float>(), ptr_or_null(bias), ptr_or_null(h0), r.y.data<float>());
  }
  return r;
}

RnnGrads rnn_backward(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                      const Tensor& w_ih, const Tensor& w_hh, const RnnForward& fwd,
                      const Tensor& dy, const Tensor& dhn, const Tensor& dcn, bool need_dx,
                      bool need_dw, bool need_db) {
  const char* op = op_name(mode);
  const Dims d = check_args(mode, x, h0, c0, w_ih, w_hh, Tensor(), Tensor());
  const Shape seq{d.T, d.N, d.H}, state{d.N, d.H};
  check_f32_contig(fwd.y, op, "saved output");
  check_shape(fwd.y, seq, op, "saved output");
  if (mode == RnnMode::lstm) {
    check_f32_contig(fwd.c, op, "saved cell states");
    check_shape(fwd.c, seq, op, "saved cell states");
    check_f32_contig(fwd.gates, op, "saved gates");
    check_shape(fwd.gates, {d.T, d.N, d.G * d.H}, op, "saved gates");
  }
  if (dy.defined()) { check_f32_contig(dy, op, "grad_output"); check_shape(dy, seq, op, "grad_output"); }
  if (dhn.defined()) { check_f32_contig(dhn, op, "grad_h_n"); check_shape(dhn, state, op, "grad_h_n"); }
  if (dcn.defined()) {
    if (mode != RnnMode::lstm) fail(op, "grad_c_n is only for the LSTM");
    check_f32_contig(dcn, op, "grad_c_n");
    check_shape(dcn, state, op, "grad_c_n");
  }
  const int64_t GH = d.G * d.H;
  RnnGrads g;
  g.dh0 = empty(state, DType::f32);
  if (need_dx) g.dx = empty({d.T, d.N, d.I}, DType::f32);
  if (need_dw) { g.dw_ih = empty({GH, d.I}, DType::f32); g.dw_hh = empty({GH, d.H}, DType::f32); }
  if (need_db) g.db = empty({GH}, DType::f32);
  Tensor dpre = empty({d.T, d.N, GH}, DType::f32);
  auto p = [](const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  if (mode == RnnMode::lstm) {
    g.dc0 = empty(state, DType::f32);
    lstm_bwd(d.T, d.N, d.I, d.H, x.data<float>(), w_ih.data<float>(), w_hh.data<float>(),
             ptr_or_null(h0), ptr_or_null(c0), fwd.y.data<float>(), fwd.c.data<float>(),
             fwd.gates.data<float>(), ptr_or_null(dy), ptr_or_null(dhn), ptr_or_null(dcn),
             dpre.data<float>(), g.dh0.data<float>(), g.dc0.data<float>(), p(g.dx),
             p(g.dw_ih), p(g.dw_hh), p(g.db));
  } else {
    rnn_bwd(rnn_act(mode), d.T, d.N, d.I, d.H, x.data<float>(), w_ih.data<float>(),
            w_hh.data<float>(), ptr_or_null(h0), fwd.y.data<float>(), ptr_or_null(dy),
            ptr_or_null(dhn), dpre.data<float>(), g.dh0.data<float>(), p(g.dx), p(g.dw_ih),
            p(g.dw_hh), p(g.db));
  }
  return g;
}

}  // namespace fastnn
