// Shared device helpers of the CUDA kernels: error checks, launch sizes, the activation
// formulas (the device twin of csrc/cpu/act.h) and block reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kernels.h"

// Every CUDA runtime call and every launch goes through this: an error becomes
// RuntimeError("[op] CUDA error: ...") naming the op.
#define FASTNN_CUDA_CHECK(expr, op) ::fastnn::cuda::check_status((int)(expr), op)
#define FASTNN_CUDA_LAUNCHED(op) ::fastnn::cuda::check_status((int)cudaGetLastError(), op)

namespace fastnn {
namespace cuda {

constexpr int kThreads = 256;

#define FASTNN_GRID_STRIDE(i, n)                                                        \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
       i += (int64_t)gridDim.x * blockDim.x)

// A device scratch of n 8-byte words from the caching allocator, freed on scope exit (safe:
// later kernels on the same stream are ordered after the ones using it).
struct Scratch {
  void* p;
  int dev;
  explicit Scratch(size_t words) : dev(current_device()) { p = device_alloc(words * 8, dev); }
  ~Scratch() { device_free(p, dev); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  unsigned long long* u64() const { return static_cast<unsigned long long*>(p); }
  double* f64() const { return static_cast<double*>(p); }
};


// Blocks for a grid-stride loop over n elements: enough to fill any current GPU, capped so
// the grid size fits comfortably (the loop covers the rest). n >= 1.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(1) << 16;
  return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

// ---- activations: the same codes and formulas as csrc/cpu/act.h
enum ActCode { kNone = 0, kRelu = 1, kSigmoid = 2, kTanh = 3, kGelu = 4, kSoftplus = 5 };

// NOTE: evaluated on the side where exp cannot overflow, as sigmoid_f32 in cpu/fastmath.h.
__device__ __forceinline__ float d_sigmoid(float x) {
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

__device__ __forceinline__ float d_act_fwd(int act, float x, float beta, float threshold) {
  switch (act) {
    case kRelu: return x < 0.f ? 0.f : x;  // NaN passes through
    case kSigmoid: return d_sigmoid(x);
    case kTanh: return tanhf(x);
    case kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case kSoftplus: {
      const float z = beta * x;
      return z > threshold ? x : log1pf(expf(z)) / beta;
    }
    default: return x;
  }
}

// dy/dx from the input x and the output y, as act_grad in act.h.
__device__ __forceinline__ float d_act_grad(int act, float x, float y, float beta,
                                            float threshold) {
  switch (act) {
    case kRelu: return y <= 0.f ? 0.f : 1.f;  // (NaN y: 1, as PyTorch)
    case kSigmoid: return y * (1.f - y);
    case kTanh: return 1.f - y * y;
    case kGelu: {
      const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case kSoftplus: {
      const float z = beta * x;
      return z > threshold ? 1.f : d_sigmoid(z);
    }
    default: return 1.f;
  }
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024). Every thread of the
// block must call them; all threads get the result.
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <class T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // part may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? part[lane] : identity;
  v = warp_reduce(v, op);
  return v;
}

struct AddOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  // NOTE: NaN propagates (a NaN in either operand wins), as the softmax row max must make
  // the row NaN; fmaxf would drop it.
  __device__ __forceinline__ float operator()(float a, float b) const {
    return (a != a || a > b) ? a : b;
  }
};

}  // namespace cuda
}  // namespace fastnn
