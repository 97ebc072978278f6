// Peak probe for the AVX-512 path: a dependency-free stream of 512-bit FMAs, the upper bound
// any float32 kernel on this ISA can reach on one core.
#include <immintrin.h>

#include "cpu/gemm.h"

namespace fastnn {

// NOTE: 24 independent accumulators: enough to cover FMA latency (4-5 cycles) times two FMA
// pipes with room to spare, few enough to stay in registers. x*m + a with m just below 1 keeps
// the values bounded (no overflow, no denormals) however long the loop runs.
double peak_fma_loop_avx512(int64_t iters) {
  constexpr int R = 24;
  __m512 acc[R];
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
#pragma GCC unroll 24
  for (int r = 0; r < R; ++r) acc[r] = _mm512_set1_ps(1.f + r);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 24
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(acc[r], m, a);
  }
  __m512 s = acc[0];
#pragma GCC unroll 24
  for (int r = 1; r < R; ++r) s = _mm512_add_ps(s, acc[r]);
  volatile float sink = _mm512_reduce_add_ps(s);  // keeps the loop from being removed
  (void)sink;
  return double(iters) * R * 16 * 2;
}

}  // namespace fastnn
