// GEMM kernels: an fp32 SIMT kernel and TF32 / BF16 tensor-core (WMMA) kernels, all with
// the fused epilogue (accumulate, bias, activation, saved pre-activation) and all four
// transpose combinations read in place.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <type_traits>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

constexpr int BM = 128, BN = 128;  // block tile of C (both kernels)
constexpr int BK = 8;              // K step of the SIMT kernel

struct GemmArgs {
  int64_t M, N, K;
  const float* A;
  int64_t lda, sa;
  const float* B;
  int64_t ldb, sb;
  float* C;
  int64_t ldc, sc;
  bool accumulate;
  const float* bias;
  int act;
  float beta, threshold;
  float* z;
};

// C[m, n] (already offset to the batch) from the product value; m < M and n < N checked by
// the caller.
__device__ __forceinline__ void store_c(const GemmArgs& g, float* C, float* Z, int64_t m,
                                        int64_t n, float acc) {
  const int64_t o = m * g.ldc + n;
  float v = acc;
  if (g.accumulate) v += C[o];
  if (g.bias) v += g.bias[n];
  if (Z) Z[o] = v;
  C[o] = d_act_fwd(g.act, v, g.beta, g.threshold);
}

// ---- fp32 SIMT kernel: 128x128 C tile per block of 256 threads, 8x8 outputs per thread,
// K in steps of 8 through double-buffered shared memory (one barrier per step), the next
// step's global loads issued before the current step's math.
//
// A matrix tile is 128 "outer" indices (m for A, n for B) by 8 k. Element (o, k) of the
// operand lives at P[o * ld + k] when KCONTIG (A untransposed, B transposed) and at
// P[k * ld + o] otherwise. Each thread loads 4 elements that are contiguous in memory
// (a float4 when VEC: 16-byte-aligned base, ld and batch stride multiples of 4).
template <bool KCONTIG, bool VEC>
__device__ __forceinline__ void load_tile(const float* P, int64_t ld, int64_t O, int64_t K,
                                          int64_t o0, int64_t k0, float r[4]) {
  const int t = threadIdx.x;
  if (KCONTIG) {
    const int64_t o = o0 + (t >> 1), k = k0 + (t & 1) * 4;
    if (VEC && o < O && k + 3 < K) {
      const float4 v = *reinterpret_cast<const float4*>(P + o * ld + k);
      r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) r[i] = (o < O && k + i < K) ? P[o * ld + k + i] : 0.f;
    }
  } else {
    const int64_t k = k0 + (t >> 5), o = o0 + (t & 31) * 4;
    if (VEC && k < K && o + 3 < O) {
      const float4 v = *reinterpret_cast<const float4*>(P + k * ld + o);
      r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) r[i] = (k < K && o + i < O) ? P[k * ld + o + i] : 0.f;
    }
  }
}

// Shared tiles are k-major, S[k][o], so the math reads 4 consecutive outer indices at once.
template <bool KCONTIG>
__device__ __forceinline__ void store_tile(float (*S)[BM], const float r[4]) {
  const int t = threadIdx.x;
  if (KCONTIG) {
    const int o = t >> 1, k = (t & 1) * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) S[k + i][o] = r[i];
  } else {
    const int k = t >> 5, o = (t & 31) * 4;
    *reinterpret_cast<float4*>(&S[k][o]) = make_float4(r[0], r[1], r[2], r[3]);
  }
}

// Thread (ty, tx) of the 16x16 grid owns rows {ty*4 + i, 64 + ty*4 + i} and columns
// {tx*4 + j, 64 + tx*4 + j}, i, j < 4: the two halves keep the float4 shared reads of a warp
// on distinct banks.
__device__ __forceinline__ int sub_index(int q, int i) { return (i < 4 ? 0 : 64) + q * 4 + (i & 3); }

template <bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__(256) sgemm_kernel(GemmArgs g) {
  __shared__ __align__(16) float As[2][BK][BM];
  __shared__ __align__(16) float Bs[2][BK][BN];
  const int64_t b = blockIdx.z;
  const float* A = g.A + b * g.sa;
  const float* B = g.B + b * g.sb;
  float* C = g.C + b * g.sc;
  float* Z = g.z ? g.z + b * g.sc : nullptr;
  const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  // op(A) is (M, K): stored (M, K) [k contiguous] unless TA; op(B) is (K, N): stored (K, N)
  // [n contiguous] unless TB, when it is (N, K) [k contiguous].
  constexpr bool AK = !TA, BKc = TB;

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  float ra[4], rb[4];
  load_tile<AK, VEC>(A, g.lda, g.M, g.K, m0, 0, ra);
  load_tile<BKc, VEC>(B, g.ldb, g.N, g.K, n0, 0, rb);
  store_tile<AK>(As[0], ra);
  store_tile<BKc>(Bs[0], rb);
  __syncthreads();

  const int64_t steps = (g.K + BK - 1) / BK;
  for (int64_t s = 0; s < steps; ++s) {
    const int cur = (int)(s & 1);
    const bool more = s + 1 < steps;
    if (more) {
      load_tile<AK, VEC>(A, g.lda, g.M, g.K, m0, (s + 1) * BK, ra);
      load_tile<BKc, VEC>(B, g.ldb, g.N, g.K, n0, (s + 1) * BK, rb);
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float a[8], bv[8];
      const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][k][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][k][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][k][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][k][64 + tx * 4]);
      a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
      a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
      bv[0] = b0.x; bv[1] = b0.y; bv[2] = b0.z; bv[3] = b0.w;
      bv[4] = b1.x; bv[5] = b1.y; bv[6] = b1.z; bv[7] = b1.w;
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
    }
    // The other buffer was last read in step s-1, and every thread passed the barrier at
    // the end of step s-1 after that, so it can be overwritten now.
    if (more) {
      store_tile<AK>(As[cur ^ 1], ra);
      store_tile<BKc>(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + sub_index(ty, i);
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t n = n0 + sub_index(tx, j);
      if (n < g.N) store_c(g, C, Z, m, n, acc[i][j]);
    }
  }
}

// ---- tensor-core kernel (WMMA, sm_80+): 128x128 C tile per block of 8 warps, each warp
// 32x64 (2x4 fragments of 16x16); K in steps of 32 through shared memory, converted to the
// input precision on the way in (BF16: rounded to nearest when stored; TF32: rounded when
// the fragment is loaded). Accumulation is fp32 in both.
// NOTE: single-buffered and with scalar (coalesced) global loads: simple, not yet tuned.

template <bool TA, bool TB, bool BF16>
__global__ void __launch_bounds__(256) tc_gemm_kernel(GemmArgs g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int TK = 32;  // K step through shared memory
  using Elem = typename std::conditional<BF16, __nv_bfloat16, float>::type;
  using InT = typename std::conditional<BF16, __nv_bfloat16, wmma::precision::tf32>::type;
  constexpr int KF = BF16 ? 16 : 8;      // K of one mma fragment
  constexpr int PAD = BF16 ? 8 : 4;      // keeps rows 32-byte aligned, shifts banks
  constexpr int LDA = TK + PAD, LDB = BN + PAD;
  __shared__ __align__(128) Elem As[BM][LDA];  // (m, k)
  __shared__ __align__(128) Elem Bs[TK][LDB];  // (k, n)
  __shared__ __align__(128) float Cs[8][16 * 16];

  const int64_t b = blockIdx.z;
  const float* A = g.A + b * g.sa;
  const float* B = g.B + b * g.sb;
  float* C = g.C + b * g.sc;
  float* Z = g.z ? g.z + b * g.sc : nullptr;
  const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp >> 1, wn = warp & 1;  // warp tile origin: (wm*32, wn*64)

  wmma::fragment<wmma::accumulator, 16, 16, KF, float> acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  auto to_elem = [](float v) -> Elem {
    if constexpr (BF16) return __float2bfloat16_rn(v);
    else return v;
  };

  for (int64_t k0 = 0; k0 < g.K; k0 += TK) {
    // 4096 elements of each tile, 16 per thread; consecutive threads walk the operand's
    // contiguous dimension so global reads coalesce.
#pragma unroll 4
    for (int e = threadIdx.x; e < BM * TK; e += 256) {
      int mm, kk;
      if (!TA) { mm = e / TK; kk = e % TK; } else { kk = e / BM; mm = e % BM; }
      const int64_t m = m0 + mm, k = k0 + kk;
      float v = 0.f;
      if (m < g.M && k < g.K) v = TA ? A[k * g.lda + m] : A[m * g.lda + k];
      As[mm][kk] = to_elem(v);
    }
#pragma unroll 4
    for (int e = threadIdx.x; e < TK * BN; e += 256) {
      int nn, kk;
      if (!TB) { kk = e / BN; nn = e % BN; } else { nn = e / TK; kk = e % TK; }
      const int64_t n = n0 + nn, k = k0 + kk;
      float v = 0.f;
      if (n < g.N && k < g.K) v = TB ? B[n * g.ldb + k] : B[k * g.ldb + n];
      Bs[kk][nn] = to_elem(v);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < TK; kk += KF) {
      wmma::fragment<wmma::matrix_a, 16, 16, KF, InT, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, KF, InT, wmma::row_major> fb[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][kk], LDA);
        if constexpr (!BF16)
          for (int t = 0; t < fa[i].num_elements; ++t) fa[i].x[t] = wmma::__float_to_tf32(fa[i].x[t]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 64 + j * 16], LDB);
        if constexpr (!BF16)
          for (int t = 0; t < fb[j].num_elements; ++t) fb[j].x[t] = wmma::__float_to_tf32(fb[j].x[t]);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten by the next step
  }

  // Epilogue through a per-warp 16x16 scratch, element by element with bounds checks.
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wmma::store_matrix_sync(Cs[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t m = m0 + wm * 32 + i * 16 + (e >> 4);
        const int64_t n = n0 + wn * 64 + j * 16 + (e & 15);
        if (m < g.M && n < g.N) store_c(g, C, Z, m, n, Cs[warp][e]);
      }
      __syncwarp();  // Cs[warp] is overwritten by the next fragment
    }
#endif
}

// Whether the tensor-core kernel that runs on the current device has a body: it is empty
// when compiled for a virtual arch below compute_80 (e.g. FASTNN_CUDA_ARCHS=75, whose PTX
// the driver JITs for an sm_80+ GPU), and would then leave C unwritten.
// NOTE: ptxVersion is the virtual arch the loaded code came from (80 for sm_80 SASS, 75 for
// compute_75 PTX JIT-compiled to sm_90), which is what the #if in the kernel tests.
template <bool TA, bool TB, bool BF16>
bool tc_kernel_has_body() {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, tc_gemm_kernel<TA, TB, BF16>) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.ptxVersion >= 80;
}

template <bool TA, bool TB>
void launch(Precision prec, bool vec, bool tc_ok, const GemmArgs& g, dim3 grid) {
  const bool bf16 = prec == Precision::medium;
  if (prec != Precision::highest && tc_ok &&
      (bf16 ? tc_kernel_has_body<TA, TB, true>() : tc_kernel_has_body<TA, TB, false>())) {
    if (bf16) tc_gemm_kernel<TA, TB, true><<<grid, 256>>>(g);
    else tc_gemm_kernel<TA, TB, false><<<grid, 256>>>(g);
  } else if (vec) {
    sgemm_kernel<TA, TB, true><<<grid, 256>>>(g);
  } else {
    sgemm_kernel<TA, TB, false><<<grid, 256>>>(g);
  }
}

bool tensor_cores_ok() {
  // NOTE: looked up per call (cheap: cudaDeviceGetAttribute reads a cached value) so a
  // process using several devices gets the current one's answer.
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return major >= 8;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

void gemm(Precision prec, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
          int64_t stride_b, float* C, int64_t ldc, int64_t stride_c, int64_t batch,
          bool accumulate, const Epilogue* ep, const char* op) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  GemmArgs g{M, N, K, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c, accumulate,
             nullptr, 0, 1.f, 20.f, nullptr};
  if (ep) {
    g.bias = ep->bias;
    g.act = ep->act;
    g.beta = ep->beta;
    g.threshold = ep->threshold;
    g.z = ep->z;
  }
  const bool vec = aligned16(A) && aligned16(B) && lda % 4 == 0 && ldb % 4 == 0 &&
                   stride_a % 4 == 0 && stride_b % 4 == 0;
  const bool tc_ok = prec != Precision::highest && tensor_cores_ok();
  // Grid y and z are limited to 65535: very tall problems and large batches run as several
  // launches over row / batch ranges.
  const int64_t max_rows = int64_t(65535) * BM, max_batch = 65535;
  for (int64_t b0 = 0; b0 < batch; b0 += max_batch) {
    for (int64_t r0 = 0; r0 < M; r0 += max_rows) {
      GemmArgs s = g;
      s.M = std::min(max_rows, M - r0);
      s.A = A + b0 * stride_a + (trans_a ? r0 : r0 * lda);
      s.B = B + b0 * stride_b;
      s.C = C + b0 * stride_c + r0 * ldc;
      if (g.z) s.z = g.z + b0 * stride_c + r0 * ldc;
      const dim3 grid((unsigned)((N + BN - 1) / BN), (unsigned)((s.M + BM - 1) / BM),
                      (unsigned)std::min(max_batch, batch - b0));
      if (grid.x > 2147483647u) check_status((int)cudaErrorInvalidValue, op);
      if (!trans_a && !trans_b) launch<false, false>(prec, vec, tc_ok, s, grid);
      else if (!trans_a && trans_b) launch<false, true>(prec, vec, tc_ok, s, grid);
      else if (trans_a && !trans_b) launch<true, false>(prec, vec, tc_ok, s, grid);
      else launch<true, true>(prec, vec, tc_ok, s, grid);
      FASTNN_CUDA_LAUNCHED(op);
    }
  }
}

}  // namespace cuda
}  // namespace fastnn
