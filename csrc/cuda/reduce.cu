// Reductions over the middle dim of (outer, r, inner): sum, max/min with indices (argmax is
// max's index), their backward scatters, and index range checks.
// NOTE: a row (inner == 1) is reduced by one block (several, then combined, when there are
// few long rows); a strided column (inner > 1) by one thread walking it.
#include <cuda_runtime.h>

#include <cstring>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 65535 ? rows : 65535); }

// Rows (inner == 1) are reduced by blocks; a long row with few rows beside it is split
// across `splits` blocks (grid.x) whose partials a second kernel combines, so a full
// reduction still uses the whole GPU.
int64_t row_splits(int64_t outer, int64_t r) {
  if (outer >= 128 || r < (int64_t(1) << 15)) return 1;
  int64_t s = (r + 8191) / 8192;                 // >= 8K elements per block
  const int64_t cap = (1024 + outer - 1) / outer;  // ~1024 blocks in all
  s = s < cap ? s : cap;
  return s < 1 ? 1 : s;
}

// This block's [begin, end) of a row of r elements split into gridDim.x pieces.
__device__ __forceinline__ void split_range(int64_t r, int64_t& begin, int64_t& end) {
  const int64_t chunk = (r + gridDim.x - 1) / gridDim.x;
  begin = (int64_t)blockIdx.x * chunk;
  end = begin + chunk < r ? begin + chunk : r;
}

// NOTE: float sums accumulate in double (the CPU op's long reductions are pairwise float or
// double): memory-bound either way, and accurate for long rows. int64 sums accumulate in
// unsigned 64-bit: overflow wraps, as PyTorch and the CPU op.
template <class T> struct SumAcc { using type = double; };
template <> struct SumAcc<int64_t> { using type = unsigned long long; };

__device__ __forceinline__ float sum_result(double s, double divisor, float*) { return (float)(s / divisor); }
__device__ __forceinline__ int64_t sum_result(unsigned long long s, double, int64_t*) { return (int64_t)s; }

// grid (splits, row blocks). part: (outer, splits) partials when splits > 1, else null and
// the result goes straight to out.
template <class T>
__global__ void sum_rows(const T* x, int64_t outer, int64_t r, double divisor,
                         typename SumAcc<T>::type* part, T* out) {
  using Acc = typename SumAcc<T>::type;
  int64_t begin, end;
  split_range(r, begin, end);
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    const T* row = x + o * r;
    Acc s = 0;
    for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) s += (Acc)row[j];
    s = block_reduce(s, AddOp(), Acc(0));
    if (threadIdx.x == 0) {
      if (part) part[o * gridDim.x + blockIdx.x] = s;
      else out[o] = sum_result(s, divisor, out);
    }
  }
}

template <class T>
__global__ void sum_finish(const typename SumAcc<T>::type* part, int64_t splits, int64_t outer,
                           double divisor, T* out) {
  using Acc = typename SumAcc<T>::type;
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    Acc s = 0;
    for (int64_t j = threadIdx.x; j < splits; j += blockDim.x) s += part[o * splits + j];
    s = block_reduce(s, AddOp(), Acc(0));
    if (threadIdx.x == 0) out[o] = sum_result(s, divisor, out);
  }
}

template <class T>
__global__ void sum_cols(const T* x, int64_t outer, int64_t r, int64_t inner, double divisor,
                         T* out) {
  using Acc = typename SumAcc<T>::type;
  FASTNN_GRID_STRIDE(t, outer * inner) {
    const int64_t o = t / inner, c = t - o * inner;
    const T* p = x + o * r * inner + c;
    Acc s = 0;
    for (int64_t j = 0; j < r; ++j) s += (Acc)p[j * inner];
    out[t] = sum_result(s, divisor, out);
  }
}

template <class T>
void sum_impl(const T* x, int64_t outer, int64_t r, int64_t inner, double divisor, T* out) {
  if (outer * inner <= 0) return;
  if (inner > 1) {
    sum_cols<T><<<grid_for(outer * inner), kThreads>>>(x, outer, r, inner, divisor, out);
  } else {
    const int64_t splits = row_splits(outer, r);
    const dim3 grid((unsigned)splits, row_blocks(outer));
    if (splits == 1) {
      sum_rows<T><<<grid, kThreads>>>(x, outer, r, divisor, nullptr, out);
    } else {
      Scratch part((size_t)(outer * splits));
      auto* pp = static_cast<typename SumAcc<T>::type*>(part.p);
      sum_rows<T><<<grid, kThreads>>>(x, outer, r, divisor, pp, out);
      FASTNN_CUDA_LAUNCHED("sum");
      sum_finish<T><<<row_blocks(outer), kThreads>>>(pp, splits, outer, divisor, out);
    }
  }
  FASTNN_CUDA_LAUNCHED("sum");
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

// Block-wide combine of every thread's (bv, bi); the result is valid in thread 0. Every
// thread of the block must call it.
template <bool IsMax, class T>
__device__ void block_extreme(T& bv, int64_t& bi) {
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  for (int s = 16; s > 0; s >>= 1) {
    const T v2 = __shfl_xor_sync(0xffffffffu, bv, s);
    const int64_t i2 = __shfl_xor_sync(0xffffffffu, bi, s);
    combine<IsMax>(bv, bi, v2, i2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // sv/si of a previous call have been read
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
  }
}

// grid (splits, row blocks), as sum_rows; partials (pv, pi) when splits > 1.
template <bool IsMax, class T>
__global__ void extreme_rows(const T* x, int64_t outer, int64_t r, T* pv, int64_t* pi, T* val,
                             int64_t* idx) {
  int64_t begin, end;
  split_range(r, begin, end);
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    const T* row = x + o * r;
    // A thread with no element starts from the range's first one (its index loses no tie).
    T bv = row[begin < r ? begin : 0];
    int64_t bi = begin < r ? begin : 0;
    for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) combine<IsMax>(bv, bi, row[j], j);
    block_extreme<IsMax>(bv, bi);
    if (threadIdx.x == 0) {
      if (pv) {
        pv[o * gridDim.x + blockIdx.x] = bv;
        pi[o * gridDim.x + blockIdx.x] = bi;
      } else {
        if (val) val[o] = bv;
        if (idx) idx[o] = bi;
      }
    }
  }
}

template <bool IsMax, class T>
__global__ void extreme_finish(const T* pv, const int64_t* pi, int64_t splits, int64_t outer,
                               T* val, int64_t* idx) {
  for (int64_t o = blockIdx.x; o < outer; o += gridDim.x) {
    T bv = pv[o * splits];
    int64_t bi = pi[o * splits];
    for (int64_t j = threadIdx.x; j < splits; j += blockDim.x)
      combine<IsMax>(bv, bi, pv[o * splits + j], pi[o * splits + j]);
    block_extreme<IsMax>(bv, bi);
    if (threadIdx.x == 0) {
      if (val) val[o] = bv;
      if (idx) idx[o] = bi;
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

template <bool IsMax, class T>
void extreme_launch(const T* x, int64_t outer, int64_t r, int64_t inner, T* val, int64_t* idx) {
  if (inner > 1) {
    extreme_cols<IsMax, T><<<grid_for(outer * inner), kThreads>>>(x, outer, r, inner, val, idx);
    return;
  }
  const int64_t splits = row_splits(outer, r);
  const dim3 grid((unsigned)splits, row_blocks(outer));
  if (splits == 1) {
    extreme_rows<IsMax, T><<<grid, kThreads>>>(x, outer, r, nullptr, nullptr, val, idx);
    return;
  }
  // Partials: (outer, splits) values, then (outer, splits) indices, in one scratch.
  Scratch part((size_t)(2 * outer * splits));
  T* pv = static_cast<T*>(part.p);
  int64_t* pi = static_cast<int64_t*>(part.p) + outer * splits;
  extreme_rows<IsMax, T><<<grid, kThreads>>>(x, outer, r, pv, pi, val, idx);
  FASTNN_CUDA_LAUNCHED(IsMax ? "max" : "min");
  extreme_finish<IsMax, T><<<row_blocks(outer), kThreads>>>(pv, pi, splits, outer, val, idx);
}

template <class T>
void extreme_impl(bool is_max, const T* x, int64_t outer, int64_t r, int64_t inner, T* val,
                  int64_t* idx) {
  if (outer * inner <= 0 || r <= 0) return;
  if (is_max) extreme_launch<true>(x, outer, r, inner, val, idx);
  else extreme_launch<false>(x, outer, r, inner, val, idx);
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
  sum_impl<float>(x, outer, r, inner, divisor, out);
}

void sum_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out) {
  sum_impl<int64_t>(x, outer, r, inner, 1.0, out);
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
  // res[0] = ~0 (all bytes 0xff), res[1] = 0.
  FASTNN_CUDA_CHECK(cudaMemsetAsync(res.p, 0xff, 8, 0), op);
  FASTNN_CUDA_CHECK(cudaMemsetAsync(res.u64() + 1, 0, 8, 0), op);
  range_check<<<grid_for(n), kThreads>>>(t, n, lo, hi, use_skip, skip, res.u64());
  FASTNN_CUDA_LAUNCHED(op);
  unsigned long long host[2];
  memcpy_d2h(host, res.p, sizeof(host), op);
  *kept = (int64_t)host[1];
  return host[0] == ~0ull ? -1 : (int64_t)host[0];
}

}  // namespace cuda
}  // namespace fastnn
