#pragma once
#include "core/tensor.h"

namespace fastnn {

// Which cell: the LSTM, or the Elman RNN with tanh / relu.
enum class RnnMode : int { lstm = 0, rnn_tanh = 1, rnn_relu = 2 };

struct RnnForward {
  Tensor y;      // (T, N, H): h_t of every step
  Tensor c;      // (T, N, H): c_t of every step (LSTM only)
  Tensor gates;  // (T, N, 4H): activated gates (LSTM only)
};

struct RnnGrads {
  Tensor dx, dh0, dc0, dw_ih, dw_hh, db;  // undefined where not requested / not an LSTM
};

// One layer, one direction, time-major: x (T, N, I), w_ih (G*H, I), w_hh (G*H, H), b_ih and
// b_hh (G*H) or undefined, h0 / c0 (N, H) or undefined (zeros). G = 4 for the LSTM, else 1.
RnnForward rnn_forward(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                       const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                       const Tensor& b_hh);

// Gradients given the forward's tensors and the incoming gradients dy (T, N, H), dhn / dcn
// (N, H), each optional. dh0 (and dc0 for the LSTM) are always returned; db is the gradient
// of b_ih and of b_hh alike.
RnnGrads rnn_backward(RnnMode mode, const Tensor& x, const Tensor& h0, const Tensor& c0,
                      const Tensor& w_ih, const Tensor& w_hh, const RnnForward& fwd,
                      const Tensor& dy, const Tensor& dhn, const Tensor& dcn, bool need_dx,
                      bool need_dw, bool need_db);

}  // namespace fastnn
