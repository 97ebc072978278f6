#include "cpu/rnn.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/fastmath.h"  // exp_f32

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
// (fastmath.h's sigmoid_f32 / tanh_f32 are the accurate forms the activations use; in the
// gate loops they made a T=100, N=32, H=512 LSTM step ~4% slower, measured, so not here.)
__attribute__((always_inline)) inline float sig_f(float x) { return 1.f / (1.f + exp_f32(-x)); }
__attribute__((always_inline)) inline float tanh_f(float x) {
  const float e = exp_f32(-2.f * std::fabs(x));
  return std::copysign((1.f - e) / (1.f + e), x);
}

// One row of one LSTM step. NOTE (speed): every pointer restrict and no branch in the loop
// (a null c_{t-1} or dy is replaced by a row of zeros by the caller), so GCC vectorises it.
//   gi, gf, gg, go (H): pre-activations in, activated gates out; cp (H) = c_{t-1};
//   c, h (H) out.
__attribute__((always_inline)) inline void lstm_row(int64_t H, float* __restrict gi,
                                                    float* __restrict gf, float* __restrict gg,
                                                    float* __restrict go,
                                                    const float* __restrict cp,
                                                    float* __restrict c, float* __restrict h) {
  for (int64_t j = 0; j < H; ++j) {
    const float i = sig_f(gi[j]), f = sig_f(gf[j]), gt = tanh_f(gg[j]), o = sig_f(go[j]);
    const float ct = f * cp[j] + i * gt;
    gi[j] = i; gf[j] = f; gg[j] = gt; go[j] = o;
    c[j] = ct;
    h[j] = o * tanh_f(ct);
  }
}

// Backward of one row: g* (H) activated gates; c (H) = c_t; cp (H) = c_{t-1}; dy (H) this
// step's output gradient; dh (H) = dL/dh_t from step t+1; dc (H) = dL/dc_t from step t+1
// in, dL/dc_{t-1} out; d* (H) out: gradients of the gate pre-activations.
__attribute__((always_inline)) inline void lstm_row_bwd(
    int64_t H, const float* __restrict gi, const float* __restrict gf,
    const float* __restrict gg, const float* __restrict go, const float* __restrict c,
    const float* __restrict cp, const float* __restrict dy, const float* __restrict dh,
    float* __restrict dc, float* __restrict di, float* __restrict df, float* __restrict dgg,
    float* __restrict dout) {
  for (int64_t j = 0; j < H; ++j) {
    const float dht = dh[j] + dy[j];
    const float i = gi[j], f = gf[j], gt = gg[j], o = go[j];
    const float tc = tanh_f(c[j]);
    const float dct = dc[j] + dht * o * (1.f - tc * tc);
    di[j] = dct * gt * i * (1.f - i);
    df[j] = dct * cp[j] * f * (1.f - f);
    dgg[j] = dct * i * (1.f - gt * gt);
    dout[j] = dht * tc * o * (1.f - o);
    dc[j] = dct * f;
  }
}

// Rows [r0, r1) of one step: g (rows, 4H), cprev (rows, H) or zrow (H zeros) when null...
__attribute__((always_inline)) inline void lstm_cell_rows_impl(int64_t r0, int64_t r1, int64_t H,
                                                               float* g, const float* cprev,
                                                               const float* zrow, float* c,
                                                               float* h) {
  for (int64_t r = r0; r < r1; ++r) {
    float* gi = g + r * 4 * H;
    lstm_row(H, gi, gi + H, gi + 2 * H, gi + 3 * H, cprev ? cprev + r * H : zrow, c + r * H,
             h + r * H);
  }
}

__attribute__((always_inline)) inline void lstm_cell_bwd_rows_impl(
    int64_t r0, int64_t r1, int64_t H, const float* g, const float* c, const float* cprev,
    const float* dyt, const float* zrow, const float* dh, float* dc, float* dg) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* gi = g + r * 4 * H;
    float* di = dg + r * 4 * H;
    lstm_row_bwd(H, gi, gi + H, gi + 2 * H, gi + 3 * H, c + r * H, cprev ? cprev + r * H : zrow,
                 dyt ? dyt + r * H : zrow, dh + r * H, dc + r * H, di, di + H, di + 2 * H,
                 di + 3 * H);
  }
}

// The same loops compiled twice: at the baseline ISA and for AVX2+FMA (8 lanes instead of 4);
// the target attribute keeps this in one file while the rest of the library stays baseline.
void lstm_cell_rows_generic(int64_t r0, int64_t r1, int64_t H, float* g, const float* cprev,
                            const float* zrow, float* c, float* h) {
  lstm_cell_rows_impl(r0, r1, H, g, cprev, zrow, c, h);
}
void lstm_cell_bwd_rows_generic(int64_t r0, int64_t r1, int64_t H, const float* g,
                                const float* c, const float* cprev, const float* dyt,
                                const float* zrow, const float* dh, float* dc, float* dg) {
  lstm_cell_bwd_rows_impl(r0, r1, H, g, c, cprev, dyt, zrow, dh, dc, dg);
}
#ifdef FASTNN_X86
__attribute__((target("avx2,fma"))) void lstm_cell_rows_avx2(int64_t r0, int64_t r1, int64_t H,
                                                             float* g, const float* cprev,
                                                             const float* zrow, float* c,
                                                             float* h) {
  lstm_cell_rows_impl(r0, r1, H, g, cprev, zrow, c, h);
}
__attribute__((target("avx2,fma"))) void lstm_cell_bwd_rows_avx2(
    int64_t r0, int64_t r1, int64_t H, const float* g, const float* c, const float* cprev,
    const float* dyt, const float* zrow, const float* dh, float* dc, float* dg) {
  lstm_cell_bwd_rows_impl(r0, r1, H, g, c, cprev, dyt, zrow, dh, dc, dg);
}
// NOTE (speed): the AVX-512 build of the same loops does 16 lanes per instruction; the cell
// (5 exp and 5 divisions per element) is the largest non-GEMM cost of an LSTM step.
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
void lstm_cell_rows_avx512(int64_t r0, int64_t r1, int64_t H, float* g, const float* cprev,
                           const float* zrow, float* c, float* h) {
  lstm_cell_rows_impl(r0, r1, H, g, cprev, zrow, c, h);
}
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
void lstm_cell_bwd_rows_avx512(int64_t r0, int64_t r1, int64_t H, const float* g,
                               const float* c, const float* cprev, const float* dyt,
                               const float* zrow, const float* dh, float* dc, float* dg) {
  lstm_cell_bwd_rows_impl(r0, r1, H, g, c, cprev, dyt, zrow, dh, dc, dg);
}
#endif

using CellFwd = void (*)(int64_t, int64_t, int64_t, float*, const float*, const float*, float*,
                         float*);
using CellBwd = void (*)(int64_t, int64_t, int64_t, const float*, const float*, const float*,
                         const float*, const float*, const float*, float*, float*);
CellFwd cell_fwd() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return lstm_cell_rows_avx512;
  if (active_isa() != Isa::generic) return lstm_cell_rows_avx2;
#endif
  return lstm_cell_rows_generic;
}
CellBwd cell_bwd() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return lstm_cell_bwd_rows_avx512;
  if (active_isa() != Isa::generic) return lstm_cell_bwd_rows_avx2;
#endif
  return lstm_cell_bwd_rows_generic;
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
  const CellFwd cell = cell_fwd();
  const std::vector<float> zeros(size_t(H), 0.f);  // c_{t-1} when c0 is null
  const float* zrow = zeros.data();
  // NOTE (speed): W_hh^T (H, 4H) is packed once into the GEMM's panel format and reused by
  // every step; gemm_f32 would re-pack (or re-read with 16 KB strides) the whole weight at
  // each of the T steps.
  GemmPackedB whT;
  if (T > 1 || h0) whT = gemm_pack_b_f32(true, H, G, w_hh, H);
  for (int64_t t = 0; t < T; ++t) {
    float* gt = gates + t * N * G;
    const float* hprev = t ? y + (t - 1) * N * H : h0;
    const float* cprev = t ? c + (t - 1) * N * H : c0;
    if (hprev) gemm_f32_packed(false, N, hprev, H, whT, gt, G, true);
    float* ct = c + t * N * H;
    float* ht = y + t * N * H;
    if (N * H < kGrain) {
      cell(0, N, H, gt, cprev, zrow, ct, ht);
    } else {
      parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
        cell(r0, r1, H, gt, cprev, zrow, ct, ht);
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
    const CellBwd cell = cell_bwd();
    const std::vector<float> zeros(size_t(H), 0.f);  // stands for a null c0 or dy
    const float* zrow = zeros.data();
    // dh recurrence: W_hh (4H, H) as op(B), packed once for all T steps.
    const GemmPackedB wh = gemm_pack_b_f32(false, G, H, w_hh, H);
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* gt = gates + t * N * G;
      const float* ct = c + t * NH;
      const float* cprev = t ? c + (t - 1) * NH : c0;
      const float* dyt = dy ? dy + t * NH : nullptr;
      float* dgt = dgates + t * N * G;
      if (NH < kGrain) {
        cell(0, N, H, gt, ct, cprev, dyt, zrow, dh0, dc0, dgt);
      } else {
        parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
          cell(r0, r1, H, gt, ct, cprev, dyt, zrow, dh0, dc0, dgt);
        });
      }
      // dL/dh_{t-1} (without its own dy term, added at the next step).
      gemm_f32_packed(false, N, dgt, G, wh, dh0, H, false);
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
  GemmPackedB wh;  // W_hh^T (H, H), packed once for every step that has an h_{t-1}
  if (T > 1 || h0) wh = gemm_pack_b_f32(true, H, H, w_hh, H);
  for (int64_t t = 0; t < T; ++t) {
    float* yt = y + t * N * H;
    const float* hprev = t ? yt - N * H : h0;
    if (hprev) {
      gemm_f32_packed(false, N, hprev, H, wh, yt, H, true, &ep);
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
    const GemmPackedB wh = gemm_pack_b_f32(false, H, H, w_hh, H);  // once for all T steps
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* yt = y + t * NH;
      const float* dyt = dy ? dy + t * NH : nullptr;
      float* dp = dpre + t * NH;
      auto body = [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const float d = dh0[k] + (dyt ? dyt[k] : 0.f);
          // NOTE: both derivatives from the output: tanh' = 1 - h^2; relu a select (0 where
          // h <= 0 even for a NaN or inf d, d where h > 0 or NaN: PyTorch's threshold_backward).
          dp[k] = is_relu ? (yt[k] <= 0.f ? 0.f : d) : d * (1.f - yt[k] * yt[k]);
        }
      };
      if (NH < kGrain) body(0, NH); else parallel_for(NH, kGrain, body);
      gemm_f32_packed(false, N, dp, H, wh, dh0, H, false);
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
