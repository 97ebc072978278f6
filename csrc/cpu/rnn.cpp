#include "cpu/rnn.h"

#include <cmath>
#include <cstring>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/softmax.h"  // exp_f32

namespace fastnn {

namespace {

// Elementwise work per step below this many floats stays on the calling thread: at the
// StatQuest size (N*H = 1) waking the pool would cost far more than the step itself.
constexpr int64_t kGrain = 1 << 13;

int64_t row_grain(int64_t H) { return H >= kGrain ? 1 : kGrain / (H > 0 ? H : 1); }

// NOTE: sigmoid and tanh through the inlined, branch-free exp_f32 (not libm) so the fused
// gate loop vectorises; exp_f32 saturates to 0/inf, so sigmoid gives exactly 0 or 1 far out
// and never NaN. tanh(x) = sign(x) (1 - e)/(1 + e), e = exp(-2|x|) <= 1: no overflow; near 0
// the subtraction 1 - e costs relative accuracy but the absolute error stays ~1 ulp of 1,
// which is what the downstream sums (c = f*c + i*g, h = o*tanh(c)) see anyway.
inline float sig_f(float x) { return 1.f / (1.f + exp_f32(-x)); }
inline float tanh_f(float x) {
  const float e = exp_f32(-2.f * std::fabs(x));
  return std::copysign((1.f - e) / (1.f + e), x);
}

// One LSTM step's gates and cell update for rows [r0, r1):
//   g (rows, 4H): pre-activations in, activated gates out; cprev (rows, H) or null;
//   c, h (rows, H) out.
void lstm_cell_rows(int64_t r0, int64_t r1, int64_t H, float* g, const float* cprev, float* c,
                    float* h) {
  for (int64_t r = r0; r < r1; ++r) {
    float* gi = g + r * 4 * H;
    float* gf = gi + H;
    float* gg = gi + 2 * H;
    float* go = gi + 3 * H;
    const float* cp = cprev ? cprev + r * H : nullptr;
    float* cr = c + r * H;
    float* hr = h + r * H;
    if (cp) {
      for (int64_t j = 0; j < H; ++j) {
        const float i = sig_f(gi[j]), f = sig_f(gf[j]), gt = tanh_f(gg[j]), o = sig_f(go[j]);
        const float ct = f * cp[j] + i * gt;
        gi[j] = i; gf[j] = f; gg[j] = gt; go[j] = o;
        cr[j] = ct;
        hr[j] = o * tanh_f(ct);
      }
    } else {
      for (int64_t j = 0; j < H; ++j) {
        const float i = sig_f(gi[j]), f = sig_f(gf[j]), gt = tanh_f(gg[j]), o = sig_f(go[j]);
        const float ct = i * gt;
        gi[j] = i; gf[j] = f; gg[j] = gt; go[j] = o;
        cr[j] = ct;
        hr[j] = o * tanh_f(ct);
      }
    }
  }
}

// One LSTM step backward for rows [r0, r1):
//   g (rows, 4H) activated gates; c (rows, H) = c_t; cprev (rows, H) or null;
//   dyt (rows, H) or null; dh (rows, H) = dL/dh_t from step t+1 (read);
//   dc (rows, H) = dL/dc_t from step t+1 in, dL/dc_{t-1} out; dg (rows, 4H) out.
void lstm_cell_bwd_rows(int64_t r0, int64_t r1, int64_t H, const float* g, const float* c,
                        const float* cprev, const float* dyt, const float* dh, float* dc,
                        float* dg) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* gi = g + r * 4 * H;
    const float* gf = gi + H;
    const float* gg = gi + 2 * H;
    const float* go = gi + 3 * H;
    float* di = dg + r * 4 * H;
    float* df = di + H;
    float* dgg = di + 2 * H;
    float* dout = di + 3 * H;
    const float* cr = c + r * H;
    const float* cp = cprev ? cprev + r * H : nullptr;
    const float* dyr = dyt ? dyt + r * H : nullptr;
    const float* dhr = dh + r * H;
    float* dcr = dc + r * H;
    for (int64_t j = 0; j < H; ++j) {
      const float dht = dhr[j] + (dyr ? dyr[j] : 0.f);
      const float i = gi[j], f = gf[j], gt = gg[j], o = go[j];
      const float tc = tanh_f(cr[j]);
      const float dct = dcr[j] + dht * o * (1.f - tc * tc);
      const float cpv = cp ? cp[j] : 0.f;
      di[j] = dct * gt * i * (1.f - i);
      df[j] = dct * cpv * f * (1.f - f);
      dgg[j] = dct * i * (1.f - gt * gt);
      dout[j] = dht * tc * o * (1.f - o);
      dcr[j] = dct * f;
    }
  }
}

// db[j] = sum over rows of d[r, j]; d (rows, cols).
// NOTE: float accumulation down each column; T*N rows of O(1) terms lose ~sqrt(T*N) ulps,
// the same order as the GEMM sums beside it.
void column_sums(const float* d, int64_t rows, int64_t cols, float* db) {
  parallel_for(cols, 256, [&](int64_t c0, int64_t c1) {
    for (int64_t j = c0; j < c1; ++j) db[j] = 0.f;
    for (int64_t r = 0; r < rows; ++r) {
      const float* dr = d + r * cols;
      for (int64_t j = c0; j < c1; ++j) db[j] += dr[j];
    }
  });
}

// The weight and input gradients shared by both cells, from the pre-activation gradients
// dg (T*N, G) with G = gates*H:
//   dx = dg·W_ih,  dW_ih = dg^T·x,  dW_hh = dg_0^T·h0 + dg_{1..T-1}^T·y_{0..T-2},  db = Σ dg.
void weight_grads(int64_t T, int64_t N, int64_t I, int64_t H, int64_t G, const float* x,
                  const float* w_ih, const float* h0, const float* y, const float* dg,
                  float* dx, float* dw_ih, float* dw_hh, float* db) {
  const int64_t TN = T * N;
  if (dx) gemm_f32(false, false, TN, I, G, dg, G, w_ih, I, dx, I, false);
  if (dw_ih) gemm_f32(true, false, G, I, TN, dg, G, x, I, dw_ih, I, false);
  if (dw_hh) {
    // h_{t-1} for t >= 1 is y_{t-1}: the rows of y line up with dg shifted by one step, so
    // steps 1..T-1 are one GEMM; step 0 pairs with h0 (zero when null).
    gemm_f32(true, false, G, H, (T - 1) * N, dg + N * G, G, y, H, dw_hh, H, false);
    if (h0) gemm_f32(true, false, G, H, N, dg, G, h0, H, dw_hh, H, true);
  }
  if (db) column_sums(dg, TN, G, db);
}

}  // namespace

void lstm_fwd(int64_t T, int64_t N, int64_t I, int64_t H, const float* x, const float* w_ih,
              const float* w_hh, const float* bias, const float* h0, const float* c0, float* y,
              float* c, float* gates) {
  const int64_t G = 4 * H;
  if (T == 0 || N == 0 || H == 0) return;
  GemmEpilogue ep;
  ep.bias = bias;
  // Input projection of every step at once (bias folded into the epilogue).
  gemm_f32(false, true, T * N, G, I, x, I, w_ih, I, gates, G, false, bias ? &ep : nullptr);
  const int64_t grain = row_grain(H);
  for (int64_t t = 0; t < T; ++t) {
    float* gt = gates + t * N * G;
    const float* hprev = t ? y + (t - 1) * N * H : h0;
    const float* cprev = t ? c + (t - 1) * N * H : c0;
    if (hprev) gemm_f32(false, true, N, G, H, hprev, H, w_hh, H, gt, G, true);
    float* ct = c + t * N * H;
    float* ht = y + t * N * H;
    if (N * H < kGrain) {
      lstm_cell_rows(0, N, H, gt, cprev, ct, ht);
    } else {
      parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
        lstm_cell_rows(r0, r1, H, gt, cprev, ct, ht);
      });
    }
  }
}

void lstm_bwd(int64_t T, int64_t N, int64_t I, int64_t H, const float* x, const float* w_ih,
              const float* w_hh, const float* h0, const float* c0, const float* y,
              const float* c, const float* gates, const float* dy, const float* dhn,
              const float* dcn, float* dgates, float* dh0, float* dc0, float* dx, float* dw_ih,
              float* dw_hh, float* db) {
  const int64_t G = 4 * H, NH = N * H;
  if (dhn) std::memcpy(dh0, dhn, sizeof(float) * NH); else std::memset(dh0, 0, sizeof(float) * NH);
  if (dcn) std::memcpy(dc0, dcn, sizeof(float) * NH); else std::memset(dc0, 0, sizeof(float) * NH);
  if (T > 0 && N > 0 && H > 0) {
    const int64_t grain = row_grain(H);
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* gt = gates + t * N * G;
      const float* ct = c + t * NH;
      const float* cprev = t ? c + (t - 1) * NH : c0;
      const float* dyt = dy ? dy + t * NH : nullptr;
      float* dgt = dgates + t * N * G;
      if (NH < kGrain) {
        lstm_cell_bwd_rows(0, N, H, gt, ct, cprev, dyt, dh0, dc0, dgt);
      } else {
        parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
          lstm_cell_bwd_rows(r0, r1, H, gt, ct, cprev, dyt, dh0, dc0, dgt);
        });
      }
      // dL/dh_{t-1} (without its own dy term, added at the next step).
      gemm_f32(false, false, N, H, G, dgt, G, w_hh, H, dh0, H, false);
    }
  }
  if (H == 0 || T == 0) {
    if (dx) std::memset(dx, 0, sizeof(float) * T * N * I);
    if (dw_ih) std::memset(dw_ih, 0, sizeof(float) * G * I);
    if (dw_hh) std::memset(dw_hh, 0, sizeof(float) * G * H);
    if (db) std::memset(db, 0, sizeof(float) * G);
    return;
  }
  weight_grads(T, N, I, H, G, x, w_ih, h0, y, dgates, dx, dw_ih, dw_hh, db);
}

void rnn_fwd(Act act, int64_t T, int64_t N, int64_t I, int64_t H, const float* x,
             const float* w_ih, const float* w_hh, const float* bias, const float* h0, float* y) {
  if (T == 0 || N == 0 || H == 0) return;
  // y first holds the input projections (with bias); each step then adds h_{t-1}·W_hh^T and
  // applies the activation in the GEMM's epilogue, in place.
  gemm_f32(false, true, T * N, H, I, x, I, w_ih, I, y, H, false, nullptr);
  GemmEpilogue ep;
  ep.bias = bias;
  ep.act.act = act;
  for (int64_t t = 0; t < T; ++t) {
    float* yt = y + t * N * H;
    const float* hprev = t ? yt - N * H : h0;
    if (hprev) {
      gemm_f32(false, true, N, H, H, hprev, H, w_hh, H, yt, H, true, &ep);
    } else {
      // h0 = 0: no recurrent term, just the bias and activation (K = 0 leaves C unchanged).
      gemm_f32(false, true, N, H, 0, hprev, H, w_hh, H, yt, H, true, &ep);
    }
  }
}

void rnn_bwd(Act act, int64_t T, int64_t N, int64_t I, int64_t H, const float* x,
             const float* w_ih, const float* w_hh, const float* h0, const float* y,
             const float* dy, const float* dhn, float* dpre, float* dh0, float* dx,
             float* dw_ih, float* dw_hh, float* db) {
  const int64_t NH = N * H;
  if (dhn) std::memcpy(dh0, dhn, sizeof(float) * NH); else std::memset(dh0, 0, sizeof(float) * NH);
  if (T > 0 && N > 0 && H > 0) {
    const bool is_relu = act == Act::relu;
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* yt = y + t * NH;
      const float* dyt = dy ? dy + t * NH : nullptr;
      float* dp = dpre + t * NH;
      auto body = [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const float d = dh0[k] + (dyt ? dyt[k] : 0.f);
          // NOTE: both derivatives from the output: tanh' = 1 - h^2, relu' = [h > 0].
          dp[k] = d * (is_relu ? (yt[k] > 0.f ? 1.f : 0.f) : 1.f - yt[k] * yt[k]);
        }
      };
      if (NH < kGrain) body(0, NH); else parallel_for(NH, kGrain, body);
      gemm_f32(false, false, N, H, H, dp, H, w_hh, H, dh0, H, false);
    }
  }
  if (H == 0 || T == 0) {
    if (dx) std::memset(dx, 0, sizeof(float) * T * N * I);
    if (dw_ih) std::memset(dw_ih, 0, sizeof(float) * H * I);
    if (dw_hh) std::memset(dw_hh, 0, sizeof(float) * H * H);
    if (db) std::memset(db, 0, sizeof(float) * H);
    return;
  }
  weight_grads(T, N, I, H, H, x, w_ih, h0, y, dpre, dx, dw_ih, dw_hh, db);
}

}  // namespace fastnn
