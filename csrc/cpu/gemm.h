// float32 GEMM, BLIS-style: C(M,N) = op(A)·op(B) [+ C], op = optional transpose, with a fused
// epilogue (bias per column, activation, optional store of the pre-activation).
//
// Structure (why): the micro-kernel keeps an MR x NR tile of C in registers and streams K
// through it with broadcast-FMA; packing A into MR-row panels and B into NR-column panels
// makes every load in that loop unit-stride and aligned, whatever the transposes and leading
// dimensions were. KC/MC/NC blocking keeps the B panel in L2/L3 and the A panel in L1.
#pragma once
#include <cstdint>

#include "cpu/act.h"

namespace fastnn {

// Applied to each finished output element c (after the whole K reduction):
//   v = c + bias[j];  if (z) z[i*ldc + j] = v;  c = act(v)
struct GemmEpilogue {
  const float* bias = nullptr;  // (N,) or null
  ActParams act{};              // Act::none: identity
  float* z = nullptr;           // (M, N) with leading dimension ldc, or null
};

// C(M,N) = op(A)(M,K) · op(B)(K,N), then the epilogue (if any).
//   A: trans_a ? (K, M) : (M, K), row-major with leading dimension lda
//   B: trans_b ? (N, K) : (K, N), row-major with leading dimension ldb
//   C: (M, N) row-major with leading dimension ldc; overwritten (accumulate=false, beta=0)
//      or added to (accumulate=true, beta=1). K = 0 gives C = 0 (or C unchanged) + epilogue.
// Multithreaded on the library pool when the problem is large enough.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
              int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
              const GemmEpilogue* ep = nullptr);

// ---- micro-kernels (csrc/cpu/kernels/f32_gemm_<MR>x<NR>_<isa>.cpp) -------------------------
// c(MR, NR) (leading dimension ldc) = [c +] a·b over k steps, always a full MR x NR tile:
//   a: packed A panel, k x MR (for each p, MR consecutive floats: rows of that column)
//   b: packed B panel, k x NR (for each p, NR consecutive floats), 64-byte aligned
// accumulate=false overwrites c. The driver routes edge tiles through a scratch tile.
using GemmMicroKernel = void (*)(int64_t k, const float* a, const float* b, float* c,
                                 int64_t ldc, bool accumulate);

struct GemmKernelInfo {
  const char* name;
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks: mc % mr == 0, nc % nr == 0
  GemmMicroKernel fn;
};

const GemmKernelInfo& gemm_kernel_generic();
#ifdef FASTNN_X86
const GemmKernelInfo& gemm_kernel_avx2();
const GemmKernelInfo& gemm_kernel_avx512();
#endif
// The kernel for fastnn::active_isa().
const GemmKernelInfo& gemm_kernel();

}  // namespace fastnn
