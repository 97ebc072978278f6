// Reductions over the middle dim of (outer, r, inner): sum, max/min with indices (argmax is
// max's index), their backward scatters, and index range checks. NOT VERIFIED ON A GPU.
// NOTE: a row (inner == 1) is reduced by one block, a strided column (inner > 1) by one
// thread; a single very long row therefore uses one SM (correct, not yet fast).
#include <cuda_runtime.h>

#include <cstring>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 ? rows : 65535); }

// NOTE: float sums accumulate in double (the CPU op's long reductions are pairwise float or
// double): memory-bound either way, and accurate for long rows.
__global__ void sum_rows_f32(const float* x, int64_t outer, int64_t r, double divisor, float* out) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const float* row = x + o * r;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < r; j += blockDim.x) s += (double)row[j];
    s = block_reduce(s, AddOp(), 0.0);
    if (threadIdx.x == 0) out[o] = (float)(s / divisor);
  }
}

__global__ void sum_cols_f32(const float* x, int64_t outer, int64_t r, int64_t inner,
                             double divisor, float* out) {
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner;
    const float* p = x + o * r * inner + c;
    double s = 0.0;
    for (int64_t j = 0; j < r; ++j) s += (double)p[j * inner];
    out[t] = (float)(s / divisor);
  }
}

// NOTE: unsigned accumulation: int64 sums wrap on overflow, as PyTorch and the CPU op.
__global__ void sum_rows_i64(const int64_t* x, int64_t outer, int64_t r, int64_t* out) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const int64_t* row = x + o * r;
    unsigned long long s = 0;
    for (int64_t j = threadIdx.x; j < r; j += blockDim.x) s += (unsigned long long)row[j];
    s = block_reduce(s, AddOp(), 0ull);
    if (threadIdx.x == 0) out[o] = (int64_t)s;
  }
}

__global__ void sum_cols_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out) {
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner;
    const int64_t* p = x + o * r * inner + c;
    unsigned long long s = 0;
    for (int64_t j = 0; j < r; ++j) s += (unsigned long long)p[j * inner];
    out[t] = (int64_t)s;
  }
}

// v replaces best when strictly better; NaN beats every number and stays (as the CPU op).
template <bool IsMax, class T>
__device__ __forceinline__ bool better(T v, T best) {
  if constexpr (sizeof(T) == 4) {
    if (best != best) return false;
    if (v != v) return true;
  }
  return IsMax ? v > best : v < best;
}

// (value, index) pairs: the better value wins, and among equals (or two NaNs) the lower
// index, so the result is the first extreme whatever the reduction order.
template <bool IsMax, class T>
__device__ __forceinline__ void combine(T& v, int64_t& i, T v2, int64_t i2) {
  if (better<IsMax>(v2, v) || (!better<IsMax>(v, v2) && i2 < i)) { v = v2; i = i2; }
}

template <bool IsMax, class T>
__global__ void extreme_rows(const T* x, int64_t outer, int64_t r, T* val, int64_t* idx) {
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    const T* row = x + o * r;
    // r >= 1; a thread with no element starts from element 0 (index 0 loses no tie).
    T bv = row[0];
    int64_t bi = 0;
    for (int64_t j = threadIdx.x; j < r; j += blockDim.x) combine<IsMax>(bv, bi, row[j], j);
    for (int s = 16; s > 0; s >>= 1) {
      const T v2 = __shfl_xor_sync(0xffffffffu, bv, s);
      const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, s);
      combine<IsMax>(bv, bi, v2, i2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // sv/si of the previous row have been read
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
      const int nw = blockDim.x >> 5;
      bv = lane < nw ? sv[lane] : sv[0];
      bi = lane < nw ? si[lane] : si[0];
      for (int s = 16; s > 0; s >>= 1) {
        const T v2 = __shfl_xor_sync(0xffffffffu, bv, s);
        const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, s);
        combine<IsMax>(bv, bi, v2, i2);
      }
      if (lane == 0) {
        if (val) val[o] = bv;
        if (idx) idx[o] = bi;
      }
    }
  }
}

template <bool IsMax, class T>
__global__ void extreme_cols(const T* x, int64_t outer, int64_t r, int64_t inner, T* val,
                             int64_t* idx) {
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner;
    const T* p = x + o * r * inner + c;
    T bv = p[0];
    int64_t bi = 0;
    for (int64_t j = 1; j < r; ++j)
      if (better<IsMax>(p[j * inner], bv)) { bv = p[j * inner]; bi = j; }
    if (val) val[t] = bv;
    if (idx) idx[t] = bi;
  }
}

template <class T>
void extreme_impl(bool is_max, const T* x, int64_t outer, int64_t r, int64_t inner, T* val,
                  int64_t* idx) {
  if (outer * inner <= 0 || r <= 0) return;
  if (inner == 1) {
    if (is_max) extreme_rows<true, T><<<row_blocks(outer), kThreads>>>(x, outer, r, val, idx);
    else extreme_rows<false, T><<<row_blocks(outer), kThreads>>>(x, outer, r, val, idx);
  } else {
    const unsigned g = grid_for(outer * inner);
    if (is_max) extreme_cols<true, T><<<g, kThreads>>>(x, outer, r, inner, val, idx);
    else extreme_cols<false, T><<<g, kThreads>>>(x, outer, r, inner, val, idx);
  }
  FASTNN_CUDA_LAUNCHED(is_max ? "max" : "min");
}

__global__ void scatter_dim_kernel(const float* g, const int64_t* idx, int64_t r, int64_t inner,
                                   float* dx, int64_t n) {
  FASTNN_GRID_STRIDE(t, n) {
    const int64_t c = t % inner, oj = t / inner, j = oj % r, o = oj / r;
    const int64_t k = o * inner + c;
    dx[t] = idx[k] == j ? g[k] : 0.f;
  }
}

__device__ __forceinline__ bool hit(float a, float v) { return v != v ? a != a : a == v; }

__global__ void count_hits(const float* x, int64_t n, const float* v, unsigned long long* count) {
  const float vv = *v;
  unsigned long long c = 0;
  FASTNN_GRID_STRIDE(i, n) c += hit(x[i], vv);
  c = block_reduce(c, AddOp(), 0ull);
  if (threadIdx.x == 0 && c) atomicAdd(count, c);
}

__global__ void share_hits(const float* x, int64_t n, const float* v, const float* g,
                           const unsigned long long* count, float* dx) {
  const float vv = *v;
  // NOTE: ties share the gradient evenly (PyTorch's evenly_distribute_backward).
  const float share = *count ? *g / (float)*count : 0.f;
  FASTNN_GRID_STRIDE(i, n) dx[i] = hit(x[i], vv) ? share : 0.f;
}

// res[0]: the first bad index (atomicMin; ULLONG_MAX when none), res[1]: entries kept.
__global__ void range_check(const int64_t* t, int64_t n, int64_t lo, int64_t hi, bool use_skip,
                            int64_t skip, unsigned long long* res) {
  unsigned long long kept = 0;
  FASTNN_GRID_STRIDE(i, n) {
    const int64_t v = t[i];
    if (use_skip && v == skip) continue;
    ++kept;
    if (v < lo || v >= hi) atomicMin(&res[0], (unsigned long long)i);
  }
  kept = block_reduce(kept, AddOp(), 0ull);
  if (threadIdx.x == 0 && kept) atomicAdd(&res[1], kept);
}

}  // namespace

void sum_f32(const float* x, int64_t outer, int64_t r, int64_t inner, double divisor, float* out) {
  if (outer * inner <= 0) return;
  if (inner == 1) sum_rows_f32<<<row_blocks(outer), kThreads>>>(x, outer, r, divisor, out);
  else sum_cols_f32<<<grid_for(outer * inner), kThreads>>>(x, outer, r, inner, divisor, out);
  FASTNN_CUDA_LAUNCHED("sum");
}

void sum_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out) {
  if (outer * inner <= 0) return;
  if (inner == 1) sum_rows_i64<<<row_blocks(outer), kThreads>>>(x, outer, r, out);
  else sum_cols_i64<<<grid_for(outer * inner), kThreads>>>(x, outer, r, inner, out);
  FASTNN_CUDA_LAUNCHED("sum");
}

void extreme_f32(bool is_max, const float* x, int64_t outer, int64_t r, int64_t inner,
                 float* val, int64_t* idx) {
  extreme_impl<float>(is_max, x, outer, r, inner, val, idx);
}

void extreme_i64(bool is_max, const int64_t* x, int64_t outer, int64_t r, int64_t inner,
                 int64_t* val, int64_t* idx) {
  extreme_impl<int64_t>(is_max, x, outer, r, inner, val, idx);
}

void scatter_dim_f32(const float* g, const int64_t* idx, int64_t outer, int64_t r, int64_t inner,
                     float* dx) {
  const int64_t n = outer * r * inner;
  if (n <= 0) return;
  scatter_dim_kernel<<<grid_for(n), kThreads>>>(g, idx, r, inner, dx, n);
  FASTNN_CUDA_LAUNCHED("max");
}

void extreme_all_bwd_f32(const float* x, int64_t n, const float* v, const float* g, float* dx) {
  if (n <= 0) return;
  Scratch count(1);
  FASTNN_CUDA_CHECK(cudaMemsetAsync(count.p, 0, 8, 0), "max");
  count_hits<<<grid_for(n), kThreads>>>(x, n, v, count.u64());
  FASTNN_CUDA_LAUNCHED("max");
  share_hits<<<grid_for(n), kThreads>>>(x, n, v, g, count.u64(), dx);
  FASTNN_CUDA_LAUNCHED("max");
}

int64_t first_out_of_range(const int64_t* t, int64_t n, int64_t lo, int64_t hi, bool use_skip,
                           int64_t skip, int64_t* kept, const char* op) {
  *kept = 0;
  if (n <= 0) return -1;
  Scratch res(2);
  unsigned long long init[2] = {~0ull, 0ull};
  FASTNN_CUDA_CHECK(cudaMemcpyAsync(res.p, init, sizeof(init), cudaMemcpyHostToDevice, 0), op);
  range_check<<<grid_for(n), kThreads>>>(t, n, lo, hi, use_skip, skip, res.u64());
  FASTNN_CUDA_LAUNCHED(op);
  unsigned long long host[2];
  memcpy_d2h(host, res.p, sizeof(host), op);
  *kept = (int64_t)host[1];
  return host[0] == ~0ull ? -1 : (int64_t)host[0];
}

}  // namespace cuda
}  // namespace fastnn
