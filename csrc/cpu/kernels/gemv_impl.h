// The matrix-vector loops of gemv.h on one ISA's registers: included by gemv_<isa>.cpp, each
// of which first defines its `struct V` (simd_<isa>.h; the generic path a one-float V) and
// the two function names.
// NOTE (speed): a matrix-vector product does one multiply-add per element of R, so it runs at
// the speed R streams in (from L2 for a layer's weight that fits there), not at the FMA peak;
// the tiled GEMM kernels, built to reuse each loaded value across a register tile, reuse
// nothing here and ran it at a third of the stream rate or less (see gemm.cpp's gemv path).
// These loops read R once, front to back, a whole register at a time.
#include <algorithm>
#include <cstdint>

#include "cpu/kernels/gemv.h"

namespace fastnn {

namespace {

using Reg = V::R;
constexpr int W = V::W;

// y[j] = [y[j] +] <R row j, x> for kRows rows at a time, each row's products summed in two
// registers (2 x kRows independent FMA chains), then across the lanes; the last k % W
// elements are added one at a time.
constexpr int kRows = 4;

template <int NR>
inline void dot_rows(int64_t k, const float* R, int64_t ld, const float* x, float* y,
                     bool accumulate) {
  const int64_t kv = k / W * W;
  Reg a[NR], b[NR];
  for (int r = 0; r < NR; ++r) a[r] = b[r] = V::set1(0.f);
  int64_t p = 0;
  for (; p + 2 * W <= kv; p += 2 * W) {
    const Reg x0 = V::load(x + p), x1 = V::load(x + p + W);
    for (int r = 0; r < NR; ++r) {
      a[r] = V::fma(V::load(R + r * ld + p), x0, a[r]);
      b[r] = V::fma(V::load(R + r * ld + p + W), x1, b[r]);
    }
  }
  if (p < kv) {
    const Reg x0 = V::load(x + p);
    for (int r = 0; r < NR; ++r) a[r] = V::fma(V::load(R + r * ld + p), x0, a[r]);
  }
  for (int r = 0; r < NR; ++r) {
    float s = V::hsum(V::add(a[r], b[r]));
    for (int64_t q = kv; q < k; ++q) s += R[r * ld + q] * x[q];
    y[r] = accumulate ? y[r] + s : s;
  }
}

// y[j] += x[p] * R[p*ld + j] for NP rows p of R (x already offset to the first), all n
// columns: y's registers are loaded once per NP rows and the products added in row order.
template <int NP>
inline void axpy_rows(int64_t n, const float* R, int64_t ld, const float* x, float* y) {
  const int64_t nv = n / W * W;
  Reg xs[NP];
  for (int r = 0; r < NP; ++r) xs[r] = V::set1(x[r]);
  for (int64_t j = 0; j < nv; j += W) {
    Reg v = V::load(y + j);
    for (int r = 0; r < NP; ++r) v = V::fma(V::load(R + r * ld + j), xs[r], v);
    V::store(y + j, v);
  }
  for (int64_t j = nv; j < n; ++j) {
    float v = y[j];
    for (int r = 0; r < NP; ++r) v += R[r * ld + j] * x[r];
    y[j] = v;
  }
}

}  // namespace

void FASTNN_GEMV_ROWS(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      float* y, bool accumulate) {
  int64_t j = 0;
  for (; j + kRows <= n; j += kRows) dot_rows<kRows>(k, R + j * ld, ld, x, y + j, accumulate);
  for (; j < n; ++j) dot_rows<1>(k, R + j * ld, ld, x, y + j, accumulate);
}

void FASTNN_GEMV_COLS(int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      float* y, bool accumulate) {
  if (!accumulate) std::fill(y, y + n, 0.f);
  int64_t p = 0;
  for (; p + kRows <= k; p += kRows) axpy_rows<kRows>(n, R + p * ld, ld, x + p, y);
  for (; p < k; ++p) axpy_rows<1>(n, R + p * ld, ld, x + p, y);
}

}  // namespace fastnn
