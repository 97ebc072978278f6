// Loss kernels (csrc/cpu/loss.cpp) on raw, C-contiguous buffers. Gradient outputs are
// overwritten, never accumulated.
#pragma once
#include <cstdint>

namespace fastnn {

// Cross-entropy on logits, fused with log-softmax. Targets must already be validated
// (each in [0, C) or == ignore_index).
// x: (N, C) logits; t: (N,) class indices;
// loss: (N,) per-row loss, 0 for ignored rows;
// stats: (N, 2) per row [max, log(sum(exp(x - max)))], what the backward needs (see NOTE in
//        loss.cpp); left unset for ignored rows.
// inner > 1: x is (N / inner, C, inner), the class dim `inner` floats apart (PyTorch's
// (N, C, d1, ..., dk) logits), and the N "rows" are its positions in (batch, position) order.
void cross_entropy_fwd(const float* x, const int64_t* t, float* loss, float* stats, int64_t n,
                       int64_t c, int64_t ignore_index, int64_t inner = 1);

// dx = (softmax(x) - onehot(t)) * g[i * g_stride] * scale, 0 on ignored rows. One pass over x.
// x: (N, C); t: (N,); stats: (N, 2) from the forward; g: N floats (g_stride 1, reduction
// "none") or one float (g_stride 0); scale: 1/count for "mean", else 1; dx: (N, C) overwritten.
void cross_entropy_bwd(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t n, int64_t c,
                       int64_t ignore_index, int64_t inner = 1);

// Squared error. x, y, out: n floats. out[i] = (x[i] - y[i])^2.
void mse_fwd_none(const float* x, const float* y, float* out, int64_t n);
// sum_i (x[i] - y[i])^2, accumulated in double; the result does not depend on the thread count.
double mse_fwd_sum(const float* x, const float* y, int64_t n);
// gx = 2 * (x - y) * g[i * g_stride] * scale, gy = -gx. x, y, gx, gy: n floats; either of gx,
// gy may be null (not wanted); g: n floats (g_stride 1) or one (g_stride 0); scale 1/n for
// "mean", else 1.
void mse_bwd(const float* x, const float* y, const float* g, int64_t g_stride, float scale,
             float* gx, float* gy, int64_t n);

}  // namespace fastnn
