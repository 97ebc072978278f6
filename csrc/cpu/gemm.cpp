// GEMM driver: threading, cache blocking, packing, edge tiles and the fused epilogue around
// the per-ISA micro-kernels in kernels/. Compiled at baseline; only the micro-kernels use SIMD.
#include "cpu/gemm.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "core/tensor.h"
#include "cpu/isa.h"

namespace fastnn {

const GemmKernelInfo& gemm_kernel() {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return gemm_kernel_avx512();
    case Isa::avx2: return gemm_kernel_avx2();
    case Isa::generic: break;
  }
#endif
  return gemm_kernel_generic();
}

namespace {

// Below this many multiply-adds per thread, waking the pool costs more than it saves
// (2^19 MACs is ~10 us on one AVX2 core, about the cost of a pool round trip).
constexpr int64_t kMinMacsPerThread = int64_t(1) << 19;
constexpr int kMaxTile = 14 * 32;  // largest MR*NR of any micro-kernel

// Packing buffers live per thread and only grow, so steady-state training allocates nothing.
// Pool threads are persistent, which makes thread_local the natural owner.
struct PackBuffer {
  float* p = nullptr;
  size_t n = 0;
  ~PackBuffer() { aligned_free(p); }
  float* get(size_t need) {
    if (need > n) {
      aligned_free(p);
      p = nullptr;
      n = 0;
      p = static_cast<float*>(aligned_alloc_bytes(need * sizeof(float)));
      n = need;
    }
    return p;
  }
};
thread_local PackBuffer t_apack, t_bpack;

// Pack rows [0, mc) x columns [0, kc) of op(A) into MR-row panels: panel r0 holds, for each
// p, the MR values op(A)(r0..r0+MR, p) consecutively; rows past mc are zero so the kernel can
// always run a full tile. A already points at op(A)(0, 0) of this block.
void pack_a(bool trans, const float* A, int64_t lda, int64_t mc, int64_t kc, int mr, float* dst) {
  for (int64_t r0 = 0; r0 < mc; r0 += mr, dst += kc * mr) {
    const int rows = (int)std::min<int64_t>(mr, mc - r0);
    if (trans) {  // op(A)(i, p) = A[p*lda + i]: each p reads `rows` consecutive floats
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = A + p * lda + r0;
        float* d = dst + p * mr;
        int r = 0;
        for (; r < rows; ++r) d[r] = src[r];
        for (; r < mr; ++r) d[r] = 0.f;
      }
    } else {  // op(A)(i, p) = A[i*lda + p]: read each row contiguously, scatter with stride mr
      for (int r = 0; r < rows; ++r) {
        const float* src = A + (r0 + r) * lda;
        for (int64_t p = 0; p < kc; ++p) dst[p * mr + r] = src[p];
      }
      for (int r = rows; r < mr; ++r)
        for (int64_t p = 0; p < kc; ++p) dst[p * mr + r] = 0.f;
    }
  }
}

// Pack rows [0, kc) x columns [0, nc) of op(B) into NR-column panels (zero-padded), the mirror
// image of pack_a. B already points at op(B)(0, 0) of this block.
void pack_b(bool trans, const float* B, int64_t ldb, int64_t kc, int64_t nc, int nr, float* dst) {
  for (int64_t c0 = 0; c0 < nc; c0 += nr, dst += kc * nr) {
    const int cols = (int)std::min<int64_t>(nr, nc - c0);
    if (!trans) {  // op(B)(p, j) = B[p*ldb + j]
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = B + p * ldb + c0;
        float* d = dst + p * nr;
        int c = 0;
        for (; c < cols; ++c) d[c] = src[c];
        for (; c < nr; ++c) d[c] = 0.f;
      }
    } else {  // op(B)(p, j) = B[j*ldb + p]
      for (int c = 0; c < cols; ++c) {
        const float* src = B + (c0 + c) * ldb;
        for (int64_t p = 0; p < kc; ++p) dst[p * nr + c] = src[p];
      }
      for (int c = cols; c < nr; ++c)
        for (int64_t p = 0; p < kc; ++p) dst[p * nr + c] = 0.f;
    }
  }
}

bool epilogue_is_trivial(const GemmEpilogue* ep) {
  return !ep || (!ep->bias && !ep->z && ep->act.act == Act::none);
}

// The epilogue on one finished rows x cols tile of C, while it is still in L1.
// c, z: (rows, cols) with leading dimension ldc; bias: (cols,) or null.
void apply_epilogue(const GemmEpilogue& ep, float* c, float* z, const float* bias, int64_t ldc,
                    int64_t rows, int64_t cols) {
  dispatch_act(ep.act.act, [&]<Act A>() {
    const float beta = ep.act.beta, thr = ep.act.threshold;
    for (int64_t i = 0; i < rows; ++i) {
      float* ci = c + i * ldc;
      float* zi = z ? z + i * ldc : nullptr;
      for (int64_t j = 0; j < cols; ++j) {
        const float v = bias ? ci[j] + bias[j] : ci[j];
        if (zi) zi[j] = v;
        ci[j] = act_fwd<A>(v, beta, thr);
      }
    }
  });
}

// One thread's share: the whole BLIS loop nest on a sub-rectangle of C. Pointers are already
// offset to the sub-rectangle (A, B, C, and the epilogue's bias and z).
void gemm_serial(const GemmKernelInfo& kr, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                 bool accumulate, const GemmEpilogue* ep) {
  const int mr = kr.mr, nr = kr.nr;
  const int64_t kc_max = std::min<int64_t>(kr.kc, K);
  const int64_t nc_max = std::min<int64_t>(kr.nc, (N + nr - 1) / nr * nr);
  const int64_t mc_max = std::min<int64_t>(kr.mc, (M + mr - 1) / mr * mr);
  float* bpack = t_bpack.get(size_t(kc_max * nc_max));
  float* apack = t_apack.get(size_t(kc_max * mc_max));
  const bool epi = !epilogue_is_trivial(ep);
  alignas(64) float scratch[kMaxTile];

  for (int64_t jc = 0; jc < N; jc += kr.nc) {
    const int64_t nb = std::min<int64_t>(kr.nc, N - jc);
    for (int64_t pc = 0; pc < K; pc += kr.kc) {
      const int64_t kb = std::min<int64_t>(kr.kc, K - pc);
      // Later K blocks add onto what the earlier ones wrote; the epilogue waits for the last.
      const bool acc = accumulate || pc > 0;
      const bool last = pc + kb == K;
      pack_b(tb, tb ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, kb, nb, nr, bpack);
      for (int64_t ic = 0; ic < M; ic += kr.mc) {
        const int64_t mb = std::min<int64_t>(kr.mc, M - ic);
        pack_a(ta, ta ? A + pc * lda + ic : A + ic * lda + pc, lda, mb, kb, mr, apack);
        for (int64_t jr = 0; jr < nb; jr += nr) {
          const int64_t ncols = std::min<int64_t>(nr, nb - jr);
          const float* bp = bpack + jr * kb;
          for (int64_t ir = 0; ir < mb; ir += mr) {
            const int64_t nrows = std::min<int64_t>(mr, mb - ir);
            const float* ap = apack + ir * kb;
            float* ct = C + (ic + ir) * ldc + jc + jr;
            if (nrows == mr && ncols == nr) {
              kr.fn(kb, ap, bp, ct, ldc, acc);
            } else {
              // Edge tile: the kernel writes a full tile into scratch, only the valid part
              // reaches C (C may end right here, so the kernel must not touch past it).
              kr.fn(kb, ap, bp, scratch, nr, false);
              for (int64_t i = 0; i < nrows; ++i) {
                float* ci = ct + i * ldc;
                const float* si = scratch + i * nr;
                if (acc)
                  for (int64_t j = 0; j < ncols; ++j) ci[j] += si[j];
                else
                  for (int64_t j = 0; j < ncols; ++j) ci[j] = si[j];
              }
            }
            if (last && epi)
              apply_epilogue(*ep, ct, ep->z ? ep->z + (ic + ir) * ldc + jc + jr : nullptr,
                             ep->bias ? ep->bias + jc + jr : nullptr, ldc, nrows, ncols);
          }
        }
      }
    }
  }
}

}  // namespace

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              const GemmEpilogue* ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    // An empty sum: C = 0 (or unchanged), then bias/activation as usual.
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, size_t(N) * sizeof(float));
    if (!epilogue_is_trivial(ep)) apply_epilogue(*ep, C, ep->z, ep->bias, ldc, M, N);
    return;
  }
  const GemmKernelInfo& kr = gemm_kernel();  // read once: every thread uses the same path
  const int64_t tiles_m = (M + kr.mr - 1) / kr.mr, tiles_n = (N + kr.nr - 1) / kr.nr;
  // Split the larger tile count across threads; each thread packs its own copy of the other
  // operand, which costs O(size of that operand) against O(M*N*K / threads) of compute.
  const bool split_n = tiles_n >= tiles_m;
  const int64_t tiles = split_n ? tiles_n : tiles_m;
  const int64_t nt = std::min<int64_t>({(int64_t)get_num_threads(), tiles,
                                        std::max<int64_t>(1, M * N * K / kMinMacsPerThread)});
  if (nt <= 1) {
    gemm_serial(kr, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, ep);
    return;
  }
  parallel_run((int)nt, [&](int t, int T) {
    const int64_t t0 = tiles * t / T, t1 = tiles * (t + 1) / T;
    if (t0 >= t1) return;
    GemmEpilogue sub;
    if (ep) sub = *ep;
    if (split_n) {
      const int64_t n0 = t0 * kr.nr, n1 = std::min(N, t1 * kr.nr);
      if (ep && ep->bias) sub.bias = ep->bias + n0;
      if (ep && ep->z) sub.z = ep->z + n0;
      gemm_serial(kr, trans_a, trans_b, M, n1 - n0, K, A, lda,
                  trans_b ? B + n0 * ldb : B + n0, ldb, C + n0, ldc, accumulate,
                  ep ? &sub : nullptr);
    } else {
      const int64_t m0 = t0 * kr.mr, m1 = std::min(M, t1 * kr.mr);
      if (ep && ep->z) sub.z = ep->z + m0 * ldc;
      gemm_serial(kr, trans_a, trans_b, m1 - m0, N, K, trans_a ? A + m0 : A + m0 * lda, lda,
                  B, ldb, C + m0 * ldc, ldc, accumulate, ep ? &sub : nullptr);
    }
  });
}

}  // namespace fastnn
