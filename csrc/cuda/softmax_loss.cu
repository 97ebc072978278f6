// softmax / log_softmax on any dim, fused cross-entropy forward/backward and MSE.
// The numerics follow csrc/cpu/softmax.cpp and csrc/cpu/loss.cpp (see the NOTEs there):
// exponents are x - max <= 0, sums accumulate in double, log_softmax is (x - m) - log(sum).
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

// ---- cross-entropy: one read of the logits forward, one read + one write backward.
// NOTE (online max and sum): the forward keeps, per thread, the running max m and
// s = sum exp(x - m) in double, rescaling s by exp(m_old - m_new) when the max grows
// (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018), and merges the
// threads' (m, s) pairs the same way. One pass over the row instead of a max pass and a sum
// pass. A term exp(x - m) with x = -inf is 0 whatever m is, so -inf entries are skipped (a
// thread whose values so far are all -inf has m = -inf, where x - m would be NaN); a NaN
// entry makes s NaN, so the row's loss and gradient are NaN, as on the CPU.
struct MaxSum {
  float m;
  double s;
};

__device__ __forceinline__ void ms_push(MaxSum& a, float x) {
  if (x > a.m) {
    a.s = a.s * (double)expf(a.m - x) + 1.0;  // a.m = -inf: exp(-inf) = 0
    a.m = x;
  } else if (x != kNegInf) {
    a.s += (double)expf(x - a.m);              // NaN x: s becomes NaN
  }
}

__device__ __forceinline__ MaxSum ms_merge(MaxSum a, MaxSum b) {
  if (b.m > a.m) { MaxSum t = a; a = b; b = t; }  // a.m >= b.m unless NaN
  if (b.s != 0.0) a.s += b.s * (double)expf(b.m - a.m);  // b.s = 0: nothing (b.m may be -inf)
  return a;
}

__device__ MaxSum block_max_sum(MaxSum v) {
  __shared__ float pm[32];
  __shared__ double ps[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1)
    v = ms_merge(v, MaxSum{__shfl_xor_sync(0xffffffffu, v.m, o),
                           __shfl_xor_sync(0xffffffffu, v.s, o)});
  __syncthreads();  // pm/ps may still be read by the previous row
  if (lane == 0) { pm[warp] = v.m; ps[warp] = v.s; }
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? MaxSum{pm[lane], ps[lane]} : MaxSum{kNegInf, 0.0};
  for (int o = 16; o > 0; o >>= 1)
    v = ms_merge(v, MaxSum{__shfl_xor_sync(0xffffffffu, v.m, o),
                           __shfl_xor_sync(0xffffffffu, v.s, o)});
  return v;
}

// Rows are read as float4 when every row starts 16-byte aligned (vec: c % 4 == 0 and the
// base pointers aligned; checked by the host), else one float at a time.
// loss = (m - x[t]) + log(sum exp(x - m)), stats = (m, log(sum)): the CPU op's formulation,
// exact for large logits (see csrc/cpu/loss.cpp).
template <bool Vec>
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
    MaxSum a{kNegInf, 0.0};
    if (Vec) {
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      for (int64_t j = threadIdx.x; j < c / 4; j += blockDim.x) {
        const float4 v = __ldg(x4 + j);
        ms_push(a, v.x);
        ms_push(a, v.y);
        ms_push(a, v.z);
        ms_push(a, v.w);
      }
    } else {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x) ms_push(a, __ldg(xr + j));
    }
    a = block_max_sum(a);
    if (threadIdx.x == 0) {
      const float ls = (float)::log(a.s);
      loss[i] = (a.m - xr[ti]) + ls;
      stats[2 * i] = a.m;
      stats[2 * i + 1] = ls;
    }
  }
}

// dx[i, j] = (p_ij - [j == t_i]) * g_i * scale with p = exp((x - m) - log(sum)): one block
// per row, so the row's target, stats and g are read once and no index is divided.
__device__ __forceinline__ float ce_grad(float x, float m, float ls, float gi, bool hit) {
  const float v = expf((x - m) - ls) * gi;
  return hit ? v - gi : v;  // p*g - g, as the CPU op
}

template <bool Vec>
__global__ void ce_bwd_rows(const float* x, const int64_t* t, const float* stats,
                            const float* g, int64_t g_stride, float scale, float* dx,
                            int64_t n, int64_t c, int64_t ignore_index) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const int64_t ti = t[i];
    const bool ignored = ti == ignore_index;
    const float gi = ignored ? 0.f : g[i * g_stride] * scale;
    const float m = stats[2 * i], ls = stats[2 * i + 1];
    const float* xr = x + i * c;
    float* dr = dx + i * c;
    if (Vec) {
      const float4* x4 = reinterpret_cast<const float4*>(xr);
      float4* d4 = reinterpret_cast<float4*>(dr);
      for (int64_t j = threadIdx.x; j < c / 4; j += blockDim.x) {
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        if (!ignored) {
          const float4 v = __ldg(x4 + j);
          const int64_t k = 4 * j;
          o = make_float4(ce_grad(v.x, m, ls, gi, k == ti), ce_grad(v.y, m, ls, gi, k + 1 == ti),
                          ce_grad(v.z, m, ls, gi, k + 2 == ti),
                          ce_grad(v.w, m, ls, gi, k + 3 == ti));
        }
        d4[j] = o;
      }
    } else {
      for (int64_t j = threadIdx.x; j < c; j += blockDim.x)
        dr[j] = ignored ? 0.f : ce_grad(__ldg(xr + j), m, ls, gi, j == ti);
    }
  }
}

bool rows_vec4(int64_t c, const void* a, const void* b) {
  return c % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
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
  const unsigned blocks = row_blocks(n);
  const int threads = row_threads(rows_vec4(c, x, x) ? c / 4 : c);
  if (rows_vec4(c, x, x))
    ce_fwd_rows<true><<<blocks, threads>>>(x, t, loss, stats, n, c, ignore_index);
  else
    ce_fwd_rows<false><<<blocks, threads>>>(x, t, loss, stats, n, c, ignore_index);
  FASTNN_CUDA_LAUNCHED("cross_entropy");
}

void cross_entropy_bwd(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t n, int64_t c,
                       int64_t ignore_index) {
  if (n * c <= 0) return;
  const unsigned blocks = row_blocks(n);
  const bool vec = rows_vec4(c, x, dx);
  const int threads = row_threads(vec ? c / 4 : c);
  if (vec)
    ce_bwd_rows<true><<<blocks, threads>>>(x, t, stats, g, g_stride, scale, dx, n, c,
                                           ignore_index);
  else
    ce_bwd_rows<false><<<blocks, threads>>>(x, t, stats, g, g_stride, scale, dx, n, c,
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
