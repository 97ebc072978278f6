// Peak probe for the AVX2+FMA path: a dependency-free stream of 256-bit FMAs, the upper bound
// any float32 kernel on this ISA can reach on one core.
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {

// NOTE: 12 independent accumulators cover FMA latency (4-5 cycles) times two FMA pipes and
// leave registers for the constants (16 ymm in all). x*m + a with m just below 1 keeps
// the values bounded (no overflow, no denormals) however long the loop runs.
double peak_fma_loop_avx2(int64_t iters) {
  constexpr int R = 12;
  __m256 acc[R];
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) acc[r] = _mm256_set1_ps(1.f + r);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(acc[r], m, a);
  }
  __m256 s = acc[0];
#pragma GCC unroll 12
  for (int r = 1; r < R; ++r) s = _mm256_add_ps(s, acc[r]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  volatile float sink = lanes[0];  // keeps the loop from being removed
  (void)sink;
  return double(iters) * R * 8 * 2;
}

}  // namespace fastnn
