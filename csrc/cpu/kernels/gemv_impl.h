// The skinny-product loops of gemv.h on one ISA's registers: included by gemv_<isa>.cpp, each
// of which first defines its `struct V` (simd_<isa>.h; the generic path a one-float V) and
// the four function names (FASTNN_GEMV_ROWS, _COLS, _PANELS, _OUTER).
// NOTE (speed): a product with 1-4 vectors does 1-4 multiply-adds per element of R, so it runs
// at the speed R streams in (from L2, for a layer's weight that fits there), not at the FMA
// peak; the tiled kernels, built to reuse each loaded value across a register tile of 8-32
// rows, filled it with 1-4 and ran a third as fast or less (see gemm.cpp's gemv_path). These
// loops read R once (but for the few columns tail_cols reads again), whole registers at a
// time, each load used for every vector.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cpu/kernels/gemv.h"

namespace fastnn {

namespace {

using Reg = V::R;
constexpr int W = V::W;
// Rows of R a step: 4 x up to 4 vectors = 16 accumulators (and 4 vectors + 4 rows live) in
// AVX-512's 32 registers; 2 in AVX2's 16.
constexpr int kRows = W == 8 ? 2 : 4;

// A register of R, loaded once for all the vectors that use it. NOTE (speed): otherwise GCC
// may fold the load into each FMA as a memory operand (it did for 3 vectors: 15 loads per 12
// FMAs, 3x256x784 NT at 21 us against 14 for 4 vectors).
inline Reg load_once(const float* p) {
  Reg v = V::load(p);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if constexpr (W > 1) asm("" : "+v"(v));
#endif
  return v;
}

// y(m, r) = [y +] <R row r, x_m> for NR rows and MV vectors: an accumulator per pair (and a
// second set over alternate registers of K when there is one vector, so that at least 2 x NR
// FMA chains are in flight), summed across the lanes at the end; the last k % W products
// are added one at a time.
template <int NR, int MV>
inline void dot_rows(int64_t k, const float* R, int64_t ld, const float* x, int64_t xs,
                     float* y, int64_t ym, int64_t yj, bool accumulate) {
  constexpr int U = MV == 1 ? 2 : 1;
  const int64_t kv = k / W * W;
  Reg a[U][NR][MV];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
      for (int m = 0; m < MV; ++m) a[u][r][m] = V::set1(0.f);
  auto step = [&](int u, int64_t p) {
    Reg xv[MV];
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) xv[m] = V::load(x + m * xs + p);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const Reg rv = load_once(R + r * ld + p);
#pragma GCC unroll 4
      for (int m = 0; m < MV; ++m) a[u][r][m] = V::fma(rv, xv[m], a[u][r][m]);
    }
  };
  int64_t p = 0;
  for (; p + U * W <= kv; p += U * W)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step(u, p + u * W);
  if (p < kv) step(0, p);
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) {
      Reg t = a[0][r][m];
      if constexpr (U == 2) t = V::add(t, a[1][r][m]);
      float s = V::hsum(t);
      for (int64_t q = kv; q < k; ++q) s += R[r * ld + q] * x[m * xs + q];
      float& out = y[m * ym + r * yj];
      out = accumulate ? out + s : s;
    }
}

// y_m[j..j + CB*W) = [y +] sum_p x_m[p] * R[p*ld + j..] for MV vectors, over all k rows of R:
// the CB x MV sums stay in registers while R's rows go by, each register of R loaded once for
// every vector. U > 1 keeps U sets of sums, over alternate rows of R, added at the end: CB x MV
// x U chains of FMAs in flight where CB x MV alone would wait on the FMA latency.
template <int CB, int MV, int U = 1>
inline void axpy_block(int64_t k, const float* R, int64_t ld, const float* x, int64_t xs,
                       float* y, int64_t ym, bool accumulate) {
  Reg v[U][MV][CB];
#pragma GCC unroll 4
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m)
#pragma GCC unroll 4
      for (int c = 0; c < CB; ++c)
        v[u][m][c] = u == 0 && accumulate ? V::load(y + m * ym + c * W) : V::set1(0.f);
  auto step = [&](int u, int64_t p, const float* r) {
    Reg rv[CB];
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c) rv[c] = load_once(r + c * W);
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) {
      const Reg xb = V::set1(x[m * xs + p]);
#pragma GCC unroll 4
      for (int c = 0; c < CB; ++c) v[u][m][c] = V::fma(rv[c], xb, v[u][m][c]);
    }
  };
  int64_t p = 0;
  for (; p + U <= k; p += U, R += U * ld)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) step(u, p + u, R + u * ld);
  for (; p < k; ++p, R += ld) step(0, p, R);
#pragma GCC unroll 4
  for (int m = 0; m < MV; ++m)
#pragma GCC unroll 4
    for (int c = 0; c < CB; ++c) {
      Reg t = v[0][m][c];
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) t = V::add(t, v[u][m][c]);
      V::store(y + m * ym + c * W, t);
    }
}

template <int MV>
void rows_mv(int64_t n, int64_t k, const float* R, int64_t ld, const float* x, int64_t xs,
             float* y, int64_t ym, int64_t yj, bool accumulate) {
  int64_t j = 0;
  for (; j + kRows <= n; j += kRows)
    dot_rows<kRows, MV>(k, R + j * ld, ld, x, xs, y + j * yj, ym, yj, accumulate);
  for (; j < n; ++j) dot_rows<1, MV>(k, R + j * ld, ld, x, xs, y + j * yj, ym, yj, accumulate);
}

// kChunk rows of R at a time: y's columns in blocks of kColRegs registers, then one
// register, then the rest (tail_cols). (Each block's sums stay in registers over the chunk's
// rows; chunks bound the rows read at once, each a stream through R, for a large R.)
constexpr int kColRegs = W == 8 ? 2 : 4;
constexpr int64_t kChunk = 64;

// Columns [j, n) of y (fewer than W) over kb rows of R. With n >= W, as the register of
// columns [n - W, n) summed apart and only its last n - j lanes added to y; else (j = 0) a
// float at a time, rows outermost so that the columns' sums are independent chains.
// NOTE (speed): one column at a time, each column's k products were one dependent chain of
// FMAs: NN 4x300x500 (12 columns past the last register) took 24 us, PyTorch 10.
template <int MV>
inline void tail_cols(int64_t n, int64_t j, int64_t kb, const float* R, int64_t ld,
                      const float* x, int64_t xs, float* y, int64_t ym, bool acc) {
  float t[MV][W] = {};
  const int64_t j0 = n >= W ? n - W : 0;  // y's column of t[.][0]
  if (n >= W) {
    axpy_block<1, MV>(kb, R + j0, ld, x, xs, &t[0][0], W, false);
  } else {
    for (int64_t p = 0; p < kb; ++p)
#pragma GCC unroll 4
      for (int m = 0; m < MV; ++m) {
        const float xv = x[m * xs + p];
        for (int64_t c = 0; c < n; ++c) t[m][c] += R[p * ld + c] * xv;
      }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MV; ++m)
    for (int64_t c = j; c < n; ++c) {
      float& out = y[m * ym + c];
      out = acc ? out + t[m][c - j0] : t[m][c - j0];
    }
}

template <int MV>
void cols_mv(int64_t n, int64_t k, const float* R, int64_t ld, const float* x, int64_t xs,
             float* y, int64_t ym, bool accumulate) {
  for (int64_t p0 = 0; p0 < k; p0 += kChunk) {
    const int64_t kb = std::min(kChunk, k - p0);
    const bool acc = accumulate || p0 > 0;
    const float* Rp = R + p0 * ld;
    const float* xp = x + p0;
    int64_t j = 0;
    for (; j + kColRegs * W <= n; j += kColRegs * W)
      axpy_block<kColRegs, MV>(kb, Rp + j, ld, xp, xs, y + j, ym, acc);
    for (; j + W <= n; j += W) axpy_block<1, MV>(kb, Rp + j, ld, xp, xs, y + j, ym, acc);
    if (j < n) tail_cols<MV>(n, j, kb, Rp, ld, xp, xs, y, ym, acc);
  }
}

// y_m[0..n) = [y +] sum_p x_m[p] * B[p][0..n) for a pre-packed B: nr-wide panels of k rows
// each (panel q at P + q*k*nr, its row p at p*nr, nr a multiple of 2W), read in blocks of two
// registers, a panel's rows in order (one contiguous stream). A block that runs past column n
// sums into a register-sized buffer and adds only its first columns to y (the panel's columns
// past n are padding).
// NOTE (speed): one or two vectors take two sets of sums (U = 2: 8 chains at two vectors, 4
// at one) so that the FMA latency does not bound the stream.
template <int MV>
void panels_mv(int64_t n, int64_t k, const float* P, int64_t nr, const float* x, int64_t xs,
               float* y, int64_t ym, bool accumulate) {
  constexpr int U = MV <= 2 ? 2 : 1;
  for (int64_t j = 0; j < n; j += nr, P += k * nr)
    for (int64_t c = 0; c < nr && j + c < n; c += 2 * W) {
      const int64_t left = n - (j + c);
      if (left >= 2 * W) {
        axpy_block<2, MV, U>(k, P + c, nr, x, xs, y + j + c, ym, accumulate);
        continue;
      }
      alignas(64) float t[MV][2 * W];
      axpy_block<2, MV, U>(k, P + c, nr, x, xs, &t[0][0], 2 * W, false);
#pragma GCC unroll 4
      for (int m = 0; m < MV; ++m)
        for (int64_t q = 0; q < left; ++q) {
          float& out = y[m * ym + j + c + q];
          out = accumulate ? out + t[m][q] : t[m][q];
        }
    }
}

// f(std::integral_constant<int, nv>) for a vector count nv of 1-4 (4 for anything larger): one
// instantiation of each loop per count.
template <class F>
inline void by_vectors(int nv, F&& f) {
  static_assert(kGemvVectors == 4, "one instantiation per vector count");
  switch (nv) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    default: return f(std::integral_constant<int, 4>{});
  }
}

}  // namespace

void FASTNN_GEMV_ROWS(int nv, int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      int64_t xs, float* y, int64_t ym, int64_t yj, bool accumulate) {
  by_vectors(nv, [&](auto mv) { rows_mv<mv>(n, k, R, ld, x, xs, y, ym, yj, accumulate); });
}

void FASTNN_GEMV_COLS(int nv, int64_t n, int64_t k, const float* R, int64_t ld, const float* x,
                      int64_t xs, float* y, int64_t ym, bool accumulate) {
  by_vectors(nv, [&](auto mv) { cols_mv<mv>(n, k, R, ld, x, xs, y, ym, accumulate); });
}

void FASTNN_GEMV_PANELS(int nv, int64_t n, int64_t k, const float* P, int64_t nr, const float* x,
                        int64_t xs, float* y, int64_t ym, bool accumulate) {
  by_vectors(nv, [&](auto mv) { panels_mv<mv>(n, k, P, nr, x, xs, y, ym, accumulate); });
}

// C's rows one after the other, each a_i times b (onto C's row), whole registers 4 at a time
// and the last n % W floats one by one: contiguous stores, each element of C written once.
// NOTE (speed): the tiled kernels wrote C a register tile at a time (on AVX-512, 8-14 rows of
// 32 columns; see gemm.cpp's outer_path).
void FASTNN_GEMV_OUTER(int64_t m, int64_t n, const float* a, int64_t as, const float* b,
                       float* C, int64_t ldc, bool accumulate) {
  const int64_t nv = n / W * W;
  for (int64_t i = 0; i < m; ++i) {
    const float s = a[i * as];
    const Reg av = V::set1(s);
    float* ci = C + i * ldc;
    int64_t j = 0;
    if (accumulate) {
      for (; j + 4 * W <= nv; j += 4 * W)
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u)
          V::store(ci + j + u * W, V::fma(av, V::load(b + j + u * W), V::load(ci + j + u * W)));
      for (; j < nv; j += W) V::store(ci + j, V::fma(av, V::load(b + j), V::load(ci + j)));
      for (; j < n; ++j) ci[j] += s * b[j];
    } else {
      for (; j + 4 * W <= nv; j += 4 * W)
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) V::store(ci + j + u * W, V::mul(av, V::load(b + j + u * W)));
      for (; j < nv; j += W) V::store(ci + j, V::mul(av, V::load(b + j)));
      for (; j < n; ++j) ci[j] = s * b[j];
    }
  }
}

}  // namespace fastnn
