// Recurrent layers (one layer, one direction) over a whole sequence: LSTM and the Elman RNN
// (tanh or relu). The time loop lives here so Python makes one call per layer.
//
// Layout: time-major, every buffer C-contiguous. Gate order i, f, g, o (PyTorch's).
// Structure (why): the input projection of every step is one GEMM over T*N rows; only the
// recurrent h_{t-1}·W_hh^T GEMM is per step; the gate nonlinearities and the cell update are
// one fused elementwise pass per step; the weight gradients are GEMMs over all T*N rows.
#pragma once
#include <cstdint>

#include "cpu/act.h"

namespace fastnn {

// Forward.
//   x (T, N, I), w_ih (4H, I), w_hh (4H, H), bias (4H) = b_ih + b_hh or null,
//   h0 (N, H) or null (zeros), c0 (N, H) or null (zeros)
//   y (T, N, H)      out: h_t for every step (overwritten)
//   c (T, N, H)      out: c_t for every step (overwritten)
//   gates (T, N, 4H) out: the activated gates i, f, g, o of every step (overwritten)
void lstm_fwd(int64_t T, int64_t N, int64_t I, int64_t H, const float* x, const float* w_ih,
              const float* w_hh, const float* bias, const float* h0, const float* c0, float* y,
              float* c, float* gates);

// Backward (all gradient outputs overwritten, never accumulated).
//   x, w_ih, w_hh, h0, c0, y, c, gates: as in / from lstm_fwd (h0, c0 may be null)
//   dy (T, N, H) or null, dhn (N, H) or null, dcn (N, H) or null: incoming gradients
//   dgates (T, N, 4H) scratch: gradients of the gate pre-activations
//   dh0, dc0 (N, H): always written (they are the running dh/dc of the time loop)
//   dx (T, N, I), dw_ih (4H, I), dw_hh (4H, H), db (4H): each skipped when null
void lstm_bwd(int64_t T, int64_t N, int64_t I, int64_t H, const float* x, const float* w_ih,
              const float* w_hh, const float* h0, const float* c0, const float* y,
              const float* c, const float* gates, const float* dy, const float* dhn,
              const float* dcn, float* dgates, float* dh0, float* dc0, float* dx, float* dw_ih,
              float* dw_hh, float* db);

// Elman RNN, h_t = act(x_t W_ih^T + h_{t-1} W_hh^T + b), act = tanh or relu.
//   x (T, N, I), w_ih (H, I), w_hh (H, H), bias (H) or null, h0 (N, H) or null
//   y (T, N, H) out (overwritten)
void rnn_fwd(Act act, int64_t T, int64_t N, int64_t I, int64_t H, const float* x,
             const float* w_ih, const float* w_hh, const float* bias, const float* h0, float* y);
//   dpre (T, N, H) scratch; dh0 (N, H) always written; dx, dw_ih, dw_hh, db skipped if null.
void rnn_bwd(Act act, int64_t T, int64_t N, int64_t I, int64_t H, const float* x,
             const float* w_ih, const float* w_hh, const float* h0, const float* y,
             const float* dy, const float* dhn, float* dpre, float* dh0, float* dx,
             float* dw_ih, float* dw_hh, float* db);

}  // namespace fastnn
