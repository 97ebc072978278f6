// softmax / log_softmax on any dim, fused cross-entropy forward/backward and MSE.
// The numerics follow csrc/cpu/softmax.cpp and csrc/cpu/loss.cpp (see the NOTEs there):
// exponents are x - max <= 0, sums accumulate in double, log_softmax is (x - m) - log(sum).
// NOT VERIFIED ON A GPU.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

// Threads for one block per row of length n: a multiple of 32, at most kThreads.
int row_threads(int64_t n) {
  int64_t t = (n + 31) / 32 * 32;
  return (int)(t < 32 ? 32 : (t > kThreads ? kThreads : t));
}
unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 ? rows : 65535); }

// -inf, spelled as an expression nvcc folds in device code.
#define kNegInf (-INFINITY)

// NOTE: the max propagates NaN (MaxOp); the CPU's max skips it but its exp then makes the
// row NaN anyway, so the outputs agree (all NaN).
__device__ __forceinline__ void row_max_sum(const float* x, int64_t n, float& m, double& s) {
  float mm = kNegInf;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mm = MaxOp()(mm, x[j]);
  m = block_reduce(mm, MaxOp(), kNegInf);
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) ss += (double)expf(x[j] - m);
  s = block_reduce(ss, AddOp(), 0.0);
}

__global__ void softmax_rows(const float* x, float* y, int64_t outer, int64_t dim, bool log) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const float* xr = x + o * dim;
    float* yr = y + o * dim;
    float m;
    double s;
    row_max_sum(xr, dim, m, s);
    if (log) {
      const float ls = (float)::log(s);
      for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) yr[j] = (xr[j] - m) - ls;
    } else {
      const float inv = (float)(1.0 / s);
      for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
  }
}

// One thread per (outer, inner) column walking dim with stride inner (coalesced across the
// threads of a warp).
__global__ void softmax_cols(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner,
                             bool log) {
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner;
    const float* xc = x + o * dim * inner + c;
    float* yc = y + o * dim * inner + c;
    float m = kNegInf;
    for (int64_t k = 0; k < dim; ++k) m = MaxOp()(m, xc[k * inner]);
    double s = 0.0;
    for (int64_t k = 0; k < dim; ++k) s += (double)expf(xc[k * inner] - m);
    if (log) {
      const float ls = (float)::log(s);
      for (int64_t k = 0; k < dim; ++k) yc[k * inner] = (xc[k * inner] - m) - ls;
    } else {
      const float inv = (float)(1.0 / s);
      for (int64_t k = 0; k < dim; ++k) yc[k * inner] = expf(xc[k * inner] - m) * inv;
    }
  }
}

__global__ void softmax_bwd_rows(const float* dy, const float* y, float* dx, int64_t outer,
                                 int64_t dim, bool log) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const float* dyr = dy + o * dim;
    const float* yr = y + o * dim;
    float* dxr = dx + o * dim;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
      s += log ? (double)dyr[j] : (double)dyr[j] * yr[j];
    const float sf = (float)block_reduce(s, AddOp(), 0.0);
    for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
      dxr[j] = log ? dyr[j] - expf(yr[j]) * sf : yr[j] * (dyr[j] - sf);
  }
}

__global__ void softmax_bwd_cols(const float* dy, const float* y, float* dx, int64_t outer,
                                 int64_t dim, int64_t inner, bool log) {
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner, base = o * dim * inner + c;
    double s = 0.0;
    for (int64_t k = 0; k < dim; ++k) {
      const int64_t i = base + k * inner;
      s += log ? (double)dy[i] : (double)dy[i] * y[i];
    }
    const float sf = (float)s;
    for (int64_t k = 0; k < dim; ++k) {
      const int64_t i = base + k * inner;
      dx[i] = log ? dy[i] - expf(y[i]) * sf : y[i] * (dy[i] - sf);
    }
  }
}

// NOTE: loss = (m - x[t]) + log(sum exp(x - m)), stats = (m, log(sum)): the CPU op's
// formulation, exact for large logits (see csrc/cpu/loss.cpp).
__global__ void ce_fwd_rows(const float* x, const int64_t* t, float* loss, float* stats,
                            int64_t n, int64_t c, int64_t ignore_index) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t ti = t[i];  // uniform across the block: the branch below is too
    if (ti == ignore_index) {
      if (threadIdx.x == 0) {
        loss[i] = 0.f;  // PyTorch: ignored rows contribute exactly 0
        stats[2 * i] = 0.f;
        stats[2 * i + 1] = 0.f;
      }
      continue;
    }
    const float* xr = x + i * c;
    float m;
    double s;
    row_max_sum(xr, c, m, s);
    if (threadIdx.x == 0) {
      const float ls = (float)::log(s);
      loss[i] = (m - xr[ti]) + ls;
      stats[2 * i] = m;
      stats[2 * i + 1] = ls;
    }
  }
}

__global__ void ce_bwd_kernel(const float* x, const int64_t* t, const float* stats,
                              const float* g, int64_t g_stride, float scale, float* dx,
                              int64_t n, int64_t c, int64_t ignore_index) {
  FASTNN_GRID_STRIDE(e, n * c) {
    const int64_t i = e / c, j = e - i * c;
    const int64_t ti = t[i];
    if (ti == ignore_index) {
      dx[e] = 0.f;
      continue;
    }
    const float gi = g[i * g_stride] * scale;
    float v = expf((x[e] - stats[2 * i]) - stats[2 * i + 1]) * gi;
    if (j == ti) v -= gi;  // p*g - g, as the CPU op
    dx[e] = v;
  }
}

__global__ void accumulate_sum(const float* x, const float* y, int64_t n, double* acc) {
  double s = 0.0;
  FASTNN_GRID_STRIDE(i, n) {
    if (y) {
      const double d = (double)x[i] - (double)y[i];
      s += d * d;
    } else {
      s += (double)x[i];
    }
  }
  s = block_reduce(s, AddOp(), 0.0);
  // NOTE: atomics make the order of the block partials vary between runs: the double total
  // can differ in its last bits, which the final float rounding almost always hides.
  if (threadIdx.x == 0) atomicAdd(acc, s);
}

__global__ void finish_sum(const double* acc, double divisor, float* out) {
  out[0] = (float)(*acc / divisor);
}

__global__ void mse_none_kernel(const float* x, const float* y, float* out, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    const float d = x[i] - y[i];
    out[i] = d * d;
  }
}

__global__ void mse_bwd_kernel(const float* x, const float* y, const float* g, int64_t g_stride,
                               float scale, float* gx, float* gy, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    const float v = 2.f * (x[i] - y[i]) * (g[i * g_stride] * scale);
    if (gx) gx[i] = v;
    if (gy) gy[i] = -v;
  }
}

}  // namespace

void softmax_fwd(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  if (outer * dim * inner <= 0) return;
  if (inner == 1) softmax_rows<<<row_blocks(outer), row_threads(dim)>>>(x, y, outer, dim, log);
  else softmax_cols<<<grid_for(outer * inner), kThreads>>>(x, y, outer, dim, inner, log);
  FASTNN_CUDA_LAUNCHED(log ? "log_softmax" : "softmax");
}

void softmax_bwd(const float* dy, const float* y, float* dx, int64_t outer, int64_t dim,
                 int64_t inner, bool log) {
  if (outer * dim * inner <= 0) return;
  if (inner == 1)
    softmax_bwd_rows<<<row_blocks(outer), row_threads(dim)>>>(dy, y, dx, outer, dim, log);
  else
    softmax_bwd_cols<<<grid_for(outer * inner), kThreads>>>(dy, y, dx, outer, dim, inner, log);
  FASTNN_CUDA_LAUNCHED(log ? "log_softmax" : "softmax");
}

void cross_entropy_fwd(const float* x, const int64_t* t, float* loss, float* stats, int64_t n,
                       int64_t c, int64_t ignore_index) {
  if (n <= 0) return;
  ce_fwd_rows<<<row_blocks(n), row_threads(c)>>>(x, t, loss, stats, n, c, ignore_index);
  FASTNN_CUDA_LAUNCHED("cross_entropy");
}

void cross_entropy_bwd(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t n, int64_t c,
                       int64_t ignore_index) {
  if (n * c <= 0) return;
  ce_bwd_kernel<<<grid_for(n * c), kThreads>>>(x, t, stats, g, g_stride, scale, dx, n, c,
                                               ignore_index);
  FASTNN_CUDA_LAUNCHED("cross_entropy");
}

void sum_to_scalar(const float* x, const float* y, int64_t n, double divisor, float* out) {
  Scratch acc(1);
  FASTNN_CUDA_CHECK(cudaMemsetAsync(acc.p, 0, 8, 0), "sum");
  if (n > 0) {
    // At most a few thousand partials: enough blocks to fill the GPU, few atomics.
    const unsigned blocks = grid_for(n) < 2048 ? grid_for(n) : 2048;
    accumulate_sum<<<blocks, kThreads>>>(x, y, n, acc.f64());
    FASTNN_CUDA_LAUNCHED("sum");
  }
  finish_sum<<<1, 1>>>(acc.f64(), divisor, out);
  FASTNN_CUDA_LAUNCHED("sum");
}

void mse_none(const float* x, const float* y, float* out, int64_t n) {
  if (n <= 0) return;
  mse_none_kernel<<<grid_for(n), kThreads>>>(x, y, out, n);
  FASTNN_CUDA_LAUNCHED("mse_loss");
}

void mse_bwd(const float* x, const float* y, const float* g, int64_t g_stride, float scale,
             float* gx, float* gy, int64_t n) {
  if (n <= 0 || (!gx && !gy)) return;
  mse_bwd_kernel<<<grid_for(n), kThreads>>>(x, y, g, g_stride, scale, gx, gy, n);
  FASTNN_CUDA_LAUNCHED("mse_loss");
}

}  // namespace cuda
}  // namespace fastnn
