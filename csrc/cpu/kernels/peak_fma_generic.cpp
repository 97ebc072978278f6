// Peak probe for the portable path: the multiply-add throughput of baseline code (SSE2 on
// x86-64: separate mul and add, no FMA), the ceiling of the generic micro-kernel.
#include "cpu/gemm.h"

namespace fastnn {

// NOTE: 32 independent lanes (8 SSE registers) cover the mul+add latency chain; x*m + a with m
// just below 1 keeps the values bounded however long the loop runs.
double peak_fma_loop_generic(int64_t iters) {
  constexpr int R = 32;
  float acc[R];
  for (int r = 0; r < R; ++r) acc[r] = 1.f + r;
  const float m = 0.999999f, a = 1e-6f;
  for (int64_t i = 0; i < iters; ++i)
    for (int r = 0; r < R; ++r) acc[r] = acc[r] * m + a;
  float s = 0.f;
  for (int r = 0; r < R; ++r) s += acc[r];
  volatile float sink = s;  // keeps the loop from being removed
  (void)sink;
  return double(iters) * R * 2;
}

}  // namespace fastnn
