// AVX2+FMA micro-kernel: a 6x16 tile of C in 12 ymm accumulators; per k step two B loads and
// six broadcasts of A feed 12 FMAs (16 ymm registers in all, none spilled). Full tiles take
// bias + ReLU in registers; edge tiles go through a local tile (AVX2 has no cheap masks).
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 6, NR = 16;

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc.
void f32_gemm_6x16_avx2(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                        bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  const bool full = rows == MR && cols == NR;
  if (full)  // see the AVX-512 kernel: C is only touched after the K loop
    for (int i = 0; i < MR; ++i) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  alignas(32) float tile[MR * NR];
  float* dst = c;
  int64_t ld = ldc;
  if (!full) {  // finish in a local tile, then copy the valid part (C may end at this tile)
    dst = tile;
    ld = NR;
  }
  const bool has_bias = full && ep && ep->bias, relu = full && ep && ep->relu;
  float* z = full && ep ? ep->z : nullptr;
  const __m256 bias0 = has_bias ? _mm256_loadu_ps(ep->bias) : _mm256_setzero_ps();
  const __m256 bias1 = has_bias ? _mm256_loadu_ps(ep->bias + 8) : _mm256_setzero_ps();
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = dst + i * ld;
    __m256 v0 = c0[i], v1 = c1[i];
    if (accumulate && full) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
    }
    if (has_bias) {
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    if (z) {
      _mm256_storeu_ps(z + i * ldc, v0);
      _mm256_storeu_ps(z + i * ldc + 8, v1);
    }
    if (relu) {  // NOTE: max(0, v) passes NaN and -0 through, as act_fwd<relu> does
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    _mm256_storeu_ps(ci, v0);
    _mm256_storeu_ps(ci + 8, v1);
  }
  if (!full) finish_edge_tile(tile, NR, c, ldc, accumulate, rows, cols, ep);
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx2() {
  static const GemmKernelInfo info{"f32_gemm_6x16_avx2", MR, NR, 144, 256, 3072,
                                   f32_gemm_6x16_avx2};
  return info;
}

}  // namespace fastnn
