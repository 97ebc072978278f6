// Elementwise kernels: activations, unary and broadcasting binary ops (forward, backward, in
// place), expand, fill, casts and strided gathers. Grid-stride loops with int64 indices; the
// formulas are those of csrc/cpu/elementwise.cpp and csrc/cpu/act.h.
#include <cuda_runtime.h>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

enum Bin { kAdd = 0, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };
enum Un { kNeg = 0, kAbs, kExp, kLog, kSqrt };

// Element offsets of operands 0..NOP-1 for output index i (row-major over w.shape).
template <int NOP>
__device__ __forceinline__ void offsets(const Walk& w, int64_t i, int64_t (&off)[NOP]) {
#pragma unroll
  for (int k = 0; k < NOP; ++k) off[k] = 0;
  for (int d = w.nd - 1; d >= 0; --d) {
    const int64_t q = i / w.shape[d], r = i - q * w.shape[d];
    i = q;
#pragma unroll
    for (int k = 0; k < NOP; ++k) off[k] += r * w.st[k][d];
  }
}

__device__ __forceinline__ float bin_f32(int op, float a, float b) {
  switch (op) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    case kDiv: return a / b;
    case kPow: return powf(a, b);
    case kMaximum: return (a > b || a != a) ? a : b;  // NaN wins, as the CPU op
    default: return (a < b || a != a) ? a : b;
  }
}

// NOTE: add/sub/mul in unsigned arithmetic: overflow wraps (as PyTorch) instead of being UB.
__device__ __forceinline__ int64_t bin_i64(int op, int64_t a, int64_t b) {
  const uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  switch (op) {
    case kAdd: return (int64_t)(ua + ub);
    case kSub: return (int64_t)(ua - ub);
    case kMul: return (int64_t)(ua * ub);
    case kMaximum: return a > b ? a : b;
    default: return a < b ? a : b;
  }
}

__global__ void act_fwd_kernel(int act, float beta, float thr, const float* x, float* y, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) y[i] = d_act_fwd(act, x[i], beta, thr);
}

__global__ void act_bwd_kernel(int act, float beta, float thr, const float* dy, const float* x,
                               const float* y, float* dx, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    // relu as a select, as the CPU: 0 where y <= 0 even for a NaN or inf dy (PyTorch's
    // threshold_backward), dy elsewhere (a NaN y included).
    if (act == kRelu) dx[i] = y[i] <= 0.f ? 0.f : dy[i];
    else dx[i] = dy[i] * d_act_grad(act, x ? x[i] : 0.f, y ? y[i] : 0.f, beta, thr);
  }
}

__global__ void unary_f32_kernel(int op, const float* x, float* y, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    const float v = x[i];
    switch (op) {
      case kNeg: y[i] = -v; break;
      case kAbs: y[i] = fabsf(v); break;
      case kExp: y[i] = expf(v); break;
      case kLog: y[i] = logf(v); break;
      default: y[i] = sqrtf(v); break;
    }
  }
}

__global__ void unary_i64_kernel(int op, const int64_t* x, int64_t* y, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    const uint64_t u = (uint64_t)x[i];  // -INT64_MIN wraps, as PyTorch
    y[i] = (int64_t)((op == kNeg || x[i] < 0) ? (0 - u) : u);
  }
}

__global__ void unary_bwd_kernel(int op, const float* g, const float* x, const float* y,
                                 float* dx, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    switch (op) {
      case kNeg: dx[i] = -g[i]; break;
      // NOTE: abs'(0) = 0 (sign(0)), as PyTorch and the CPU op.
      case kAbs: dx[i] = x[i] > 0.f ? g[i] : (x[i] < 0.f ? -g[i] : 0.f * g[i]); break;
      case kExp: dx[i] = g[i] * y[i]; break;
      case kLog: dx[i] = g[i] / x[i]; break;
      default: dx[i] = g[i] / (2.f * y[i]); break;
    }
  }
}

template <class T>
__global__ void binary_kernel(int op, Walk w, const T* a, const T* b, T* out, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    int64_t off[2];
    offsets<2>(w, i, off);
    if constexpr (sizeof(T) == 4) out[i] = bin_f32(op, a[off[0]], b[off[1]]);
    else out[i] = bin_i64(op, a[off[0]], b[off[1]]);
  }
}

__global__ void binary_bwd_kernel(int op, Walk w, const float* g, const float* a, const float* b,
                                  float* ga, float* gb, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    int64_t off[2];
    offsets<2>(w, i, off);
    const float gi = g[i], x = a[off[0]], y = b[off[1]];
    float da, db;
    switch (op) {
      case kAdd: da = gi; db = gi; break;
      case kSub: da = gi; db = -gi; break;
      case kMul: da = gi * y; db = gi * x; break;
      case kDiv: da = gi / y; db = -gi * x / (y * y); break;
      case kPow:
        // NOTE: the CPU op's (and PyTorch's) edge cases: b == 0 gives d/da = 0; a == 0 with
        // b >= 0 gives d/db = 0; a < 0 gives NaN through log.
        da = y == 0.f ? 0.f : gi * y * powf(x, y - 1.f);
        db = (x == 0.f && y >= 0.f) ? 0.f : gi * powf(x, y) * logf(x);
        break;
      default: {
        // NOTE: ties split the gradient half/half; a NaN operand sends g to both sides.
        const bool a_loses = op == kMaximum ? x < y : x > y;
        const bool b_loses = op == kMaximum ? x > y : x < y;
        if (x == y) { da = db = 0.5f * gi; }
        else { da = a_loses ? 0.f : gi; db = b_loses ? 0.f : gi; }
      }
    }
    if (ga) ga[i] = da;
    if (gb) gb[i] = db;
  }
}

template <class T>
__global__ void inplace_kernel(int op, Walk w, T* dst, const T* src, T alpha, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    int64_t off[1];
    offsets<1>(w, i, off);
    const T s = src[off[0]];
    if constexpr (sizeof(T) == 4) {
      // NOTE: rounded multiply then add (no FMA contraction), as the CPU op computes it.
      dst[i] = op == kAdd ? __fadd_rn(dst[i], __fmul_rn(alpha, s)) : bin_f32(op, dst[i], s);
    } else {
      dst[i] = op == kAdd ? bin_i64(kAdd, dst[i], bin_i64(kMul, alpha, s)) : bin_i64(op, dst[i], s);
    }
  }
}

__global__ void expand_kernel(Walk w, const float* src, float scale, float* out, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    int64_t off[1];
    offsets<1>(w, i, off);
    out[i] = src[off[0]] * scale;
  }
}

template <class T>
__global__ void fill_kernel(T* p, T v, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) p[i] = v;
}

template <class S, class D>
__global__ void cast_kernel(const S* s, D* d, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    if constexpr (sizeof(D) == 1) d[i] = s[i] != S(0);  // to bool: nonzero (NaN too)
    else d[i] = (D)s[i];
  }
}

template <class T>
__global__ void gather_kernel(Walk w, const T* src, T* dst, int64_t n) {
  FASTNN_GRID_STRIDE(i, n) {
    int64_t off[1];
    offsets<1>(w, i, off);
    dst[i] = src[off[0]];
  }
}

template <class S>
void cast_from(const S* src, int to, void* dst, int64_t n) {
  const unsigned g = grid_for(n);
  if (to == 0) cast_kernel<S, float><<<g, kThreads>>>(src, (float*)dst, n);
  else if (to == 1) cast_kernel<S, int64_t><<<g, kThreads>>>(src, (int64_t*)dst, n);
  else cast_kernel<S, unsigned char><<<g, kThreads>>>(src, (unsigned char*)dst, n);
}

}  // namespace

void act_fwd(int act, float beta, float threshold, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  act_fwd_kernel<<<grid_for(n), kThreads>>>(act, beta, threshold, x, y, n);
  FASTNN_CUDA_LAUNCHED("activation");
}

void act_bwd(int act, float beta, float threshold, const float* dy, const float* x,
             const float* y, float* dx, int64_t n) {
  if (n <= 0) return;
  act_bwd_kernel<<<grid_for(n), kThreads>>>(act, beta, threshold, dy, x, y, dx, n);
  FASTNN_CUDA_LAUNCHED("activation");
}

void unary_f32(int op, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  unary_f32_kernel<<<grid_for(n), kThreads>>>(op, x, y, n);
  FASTNN_CUDA_LAUNCHED("unary");
}

void unary_i64(int op, const int64_t* x, int64_t* y, int64_t n) {
  if (n <= 0) return;
  unary_i64_kernel<<<grid_for(n), kThreads>>>(op, x, y, n);
  FASTNN_CUDA_LAUNCHED("unary");
}

void unary_bwd_f32(int op, const float* g, const float* x, const float* y, float* dx, int64_t n) {
  if (n <= 0) return;
  unary_bwd_kernel<<<grid_for(n), kThreads>>>(op, g, x, y, dx, n);
  FASTNN_CUDA_LAUNCHED("unary_bwd");
}

void binary_f32(int op, const Walk& w, const float* a, const float* b, float* out) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  binary_kernel<float><<<grid_for(n), kThreads>>>(op, w, a, b, out, n);
  FASTNN_CUDA_LAUNCHED("binary");
}

void binary_i64(int op, const Walk& w, const int64_t* a, const int64_t* b, int64_t* out) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  binary_kernel<int64_t><<<grid_for(n), kThreads>>>(op, w, a, b, out, n);
  FASTNN_CUDA_LAUNCHED("binary");
}

void binary_bwd_f32(int op, const Walk& w, const float* g, const float* a, const float* b,
                    float* ga, float* gb) {
  const int64_t n = w.numel();
  if (n <= 0 || (!ga && !gb)) return;
  binary_bwd_kernel<<<grid_for(n), kThreads>>>(op, w, g, a, b, ga, gb, n);
  FASTNN_CUDA_LAUNCHED("binary_bwd");
}

void binary_inplace_f32(int op, const Walk& w, float* dst, const float* src, float alpha) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  inplace_kernel<float><<<grid_for(n), kThreads>>>(op, w, dst, src, alpha, n);
  FASTNN_CUDA_LAUNCHED("binary_inplace");
}

void binary_inplace_i64(int op, const Walk& w, int64_t* dst, const int64_t* src, int64_t alpha) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  inplace_kernel<int64_t><<<grid_for(n), kThreads>>>(op, w, dst, src, alpha, n);
  FASTNN_CUDA_LAUNCHED("binary_inplace");
}

void expand_f32(const Walk& w, const float* src, float scale, float* out) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  expand_kernel<<<grid_for(n), kThreads>>>(w, src, scale, out, n);
  FASTNN_CUDA_LAUNCHED("expand");
}

void fill(int dtype, void* p, int64_t n, double value) {
  if (n <= 0) return;
  const unsigned g = grid_for(n);
  if (dtype == 0) fill_kernel<float><<<g, kThreads>>>((float*)p, (float)value, n);
  else if (dtype == 1) fill_kernel<int64_t><<<g, kThreads>>>((int64_t*)p, (int64_t)value, n);
  else fill_kernel<unsigned char><<<g, kThreads>>>((unsigned char*)p, value != 0.0, n);
  FASTNN_CUDA_LAUNCHED("fill_");
}

void cast(int from, const void* src, int to, void* dst, int64_t n) {
  if (n <= 0) return;
  if (from == 0) cast_from((const float*)src, to, dst, n);
  else if (from == 1) cast_from((const int64_t*)src, to, dst, n);
  else cast_from((const unsigned char*)src, to, dst, n);
  FASTNN_CUDA_LAUNCHED("astype");
}

void gather_strided(const Walk& w, const void* src, void* dst, int itemsize) {
  const int64_t n = w.numel();
  if (n <= 0) return;
  const unsigned g = grid_for(n);
  if (itemsize == 8) gather_kernel<int64_t><<<g, kThreads>>>(w, (const int64_t*)src, (int64_t*)dst, n);
  else if (itemsize == 4) gather_kernel<float><<<g, kThreads>>>(w, (const float*)src, (float*)dst, n);
  else gather_kernel<unsigned char><<<g, kThreads>>>(w, (const unsigned char*)src, (unsigned char*)dst, n);
  FASTNN_CUDA_LAUNCHED("contiguous");
}

}  // namespace cuda
}  // namespace fastnn
