// AVX2+FMA micro-kernel: a 6x16 tile of C in 12 ymm accumulators; per k step two B loads and
// six broadcasts of A feed 12 FMAs (16 ymm registers in all, none spilled). Full tiles take
// bias + ReLU in registers; edge tiles go through a local tile (AVX2 has no cheap masks).
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 6, NR = 16;

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc. The
// arithmetic covers the first R rows of the panel (R >= rows; rows past `rows` are the
// packing's zeros and are not stored).
template <int R>
void packed_tile(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                 bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  const bool full = rows == R && cols == NR;
  if (full)  // see the AVX-512 kernel: C is only touched after the K loop
    for (int i = 0; i < R; ++i) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  alignas(32) float tile[R * NR];
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
  for (int i = 0; i < R; ++i) {
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

// The micro-kernel: a short edge tile (the last rows of M, or of a thread's share of M) of at
// most 4 rows runs 4 rows of FMAs (8 accumulators still cover the 2 pipes x 4-cycle latency),
// not 6 on zero rows. NOTE (speed): M = 32 (an RNN step's batch) is 5 full tiles and one of 2
// rows; M = 64, 10 and one of 4.
void f32_gemm_6x16_avx2(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                        bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  if (rows > 4) return packed_tile<MR>(k, a, b, c, ldc, accumulate, rows, cols, ep);
  packed_tile<4>(k, a, b, c, ldc, accumulate, rows, cols, ep);
}

// Lanes [0, n) of a 16-column tile as two vmaskmovps masks (loads through them never touch
// memory past the last valid column).
inline void col_masks(int n, __m256i* m0, __m256i* m1) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  *m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  *m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
}

// One 6x16 tile of the small-shape kernel: the K loop over the caller's A rows ar[] (columns
// cs_a apart) and B rows (ldb apart), then the epilogue. A function of its own, with the
// accumulators local to it, so that they stay in registers: written as a lambda capturing
// them by reference, GCC stored all 12 back to the stack on every k step (64^3 ran at 28% of
// the FMA peak on Zen 3). R (4 or 6) rows of FMAs, R >= rows (see f32_gemm_6x16_avx2).
template <bool Masked, int R>
__attribute__((always_inline)) inline void small_tile(
    int64_t K, const float* const* ar, int64_t cs_a, const float* bp, int64_t ldb, float* C,
    int64_t ldc, float* z, int rows, __m256i m0, __m256i m1, bool accumulate, bool has_bias,
    __m256 bias0, __m256 bias1, bool relu) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 c0[R], c1[R];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = zero;
  const float* a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3], *a4 = ar[4], *a5 = ar[5];
  for (int64_t p = 0; p < K; ++p, bp += ldb) {
    const __m256 b0 = Masked ? _mm256_maskload_ps(bp, m0) : _mm256_loadu_ps(bp);
    const __m256 b1 = Masked ? _mm256_maskload_ps(bp + 8, m1) : _mm256_loadu_ps(bp + 8);
    const int64_t off = p * cs_a;
    const float* const rowp[MR] = {a0, a1, a2, a3, a4, a5};
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(rowp[i] + off);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
  }
  // (vmaskmovps stores are slow on some cores: plain ones for whole tiles)
  auto put = [&](float* p, __m256 a, __m256 b) {
    if (!Masked) {
      _mm256_storeu_ps(p, a);
      _mm256_storeu_ps(p + 8, b);
    } else {
      _mm256_maskstore_ps(p, m0, a);
      _mm256_maskstore_ps(p + 8, m1, b);
    }
  };
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    if (i >= rows) break;
    float* ci = C + i * ldc;
    __m256 v0 = c0[i], v1 = c1[i];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
    }
    if (has_bias) {
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    if (z) put(z + i * ldc, v0, v1);
    if (relu) {  // max(0, v) passes NaN and -0 through, as act_fwd<relu>
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    put(ci, v0, v1);
  }
}

// Small-shape kernel (see GemmSmallKernel): tiles of 6 rows x 16 columns straight from the
// caller's A and B, no packing: the fixed cost of packing was most of a small product's time
// on this path (64x64x64 took 11 us against the AVX-512 small path's 3.7). Each of the 6 rows
// of A has its own pointer; a short last tile re-reads its last valid row (results dropped),
// and one of at most 4 rows runs 4 rows of FMAs; column edges load and store through masks.
void f32_gemm_small_avx2(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A,
                         int64_t rs_a, int64_t cs_a, const float* B, int64_t ldb, int64_t bps,
                         float* C, int64_t ldc, bool accumulate, const MicroEpilogue* ep) {
  const __m256 zero = _mm256_setzero_ps();
  const bool has_bias = ep && ep->bias, relu = ep && ep->relu;
  for (int64_t j0 = n0; j0 < n1; j0 += NR) {
    const int cols = (int)std::min<int64_t>(NR, n1 - j0);
    __m256i m0, m1;
    col_masks(cols, &m0, &m1);
    const float* bp0 = B + (j0 / NR) * bps;
    const __m256 bias0 = has_bias ? _mm256_maskload_ps(ep->bias + j0, m0) : zero;
    const __m256 bias1 = has_bias ? _mm256_maskload_ps(ep->bias + j0 + 8, m1) : zero;
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int rows = (int)std::min<int64_t>(MR, M - i0);
      const float* ar[MR];
      for (int i = 0; i < MR; ++i) ar[i] = A + (i0 + (i < rows ? i : rows - 1)) * rs_a;
      float* ct = C + i0 * ldc + j0;
      float* zt = ep && ep->z ? ep->z + i0 * ldc + j0 : nullptr;
      auto tile = [&](auto masked, auto r) {
        small_tile<decltype(masked)::value, decltype(r)::value>(
            K, ar, cs_a, bp0, ldb, ct, ldc, zt, rows, m0, m1, accumulate, has_bias, bias0,
            bias1, relu);
      };
      using F = std::false_type;
      using T = std::true_type;
      using R4 = std::integral_constant<int, 4>;
      using R6 = std::integral_constant<int, MR>;
      if (cols == NR) rows > 4 ? tile(F{}, R6{}) : tile(F{}, R4{});
      else rows > 4 ? tile(T{}, R6{}) : tile(T{}, R4{});
    }
  }
}

// r[0..8) (rows) -> r[0..8) (columns) of an 8x8 block of floats.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], s[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
#pragma GCC unroll 2
  for (int h = 0; h < 8; h += 4) {  // h = 0: rows 0-3, h = 4: rows 4-7
    s[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);      // col 0 | col 4 of 4 rows
    s[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);  // col 1 | col 5
    s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);  // col 2 | col 6
    s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);  // col 3 | col 7
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(s[q], s[q + 4], 0x31);
  }
}

// The scalar tail of both packers: column p of an R-wide panel from R rows of src (ld
// apart), zero past `rows`.
template <int R>
inline void gather_column(const float* src, int64_t ld, int rows, int64_t p, float* d) {
  int i = 0;
  for (; i < rows; ++i) d[i] = src[i * ld + p];
  for (; i < R; ++i) d[i] = 0.f;
}

// See GemmKernelInfo::pack_bt: rows of B into 16-wide panels of op(B) = Bᵀ, 8 columns of B
// at a time through two 8x8 register transposes. The scalar gather this replaces did a load
// and a store per float (9% of a 1-thread mlp_step on Zen 3, packing its weights).
void pack_bt_avx2(const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  for (int64_t c0 = 0; c0 < nc; c0 += NR, dst += kc * NR) {
    const int cols = (int)std::min<int64_t>(NR, nc - c0);
    const float* src = B + c0 * ldb;
    int64_t p = 0;
    if (cols == NR) {
      for (; p + 8 <= kc; p += 8) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; ++half) {
          __m256 r[8];
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (half * 8 + i) * ldb + p);
          transpose8x8(r);
#pragma GCC unroll 8
          for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * NR + half * 8, r[q]);
        }
      }
    }
    for (; p < kc; ++p) gather_column<NR>(src, ldb, cols, p, dst + p * NR);
  }
}

// See GemmKernelInfo::pack_a: rows of A into 6-row panels. Full panels go 8 columns at a time
// through an 8x8 register transpose (6 row loads, rows 6-7 zero) and 8 stores of 8 floats,
// each spilling 2 floats into the next column's slot, which the next store (or the tail)
// rewrites; the panel's last column is stored masked, so nothing past the panel is touched.
void pack_a_avx2(const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  for (int64_t r0 = 0; r0 < mc; r0 += MR, dst += kc * MR) {
    const int rows = (int)std::min<int64_t>(MR, mc - r0);
    const float* src = A + r0 * lda;
    int64_t p = 0;
    if (rows == MR) {
      for (; p + 8 <= kc; p += 8) {
        __m256 r[8];
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) r[i] = _mm256_loadu_ps(src + i * lda + p);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8x8(r);
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          float* d = dst + (p + q) * MR;
          if (p + q + 1 < kc) _mm256_storeu_ps(d, r[q]);
          else _mm256_maskstore_ps(d, six, r[q]);
        }
      }
    }
    for (; p < kc; ++p) gather_column<MR>(src, lda, rows, p, dst + p * MR);
  }
}

// Transposed small-shape kernel (see GemmSmallTKernel): Cᵀ = B·Aᵀ in 6x16 tiles, 6 rows of B
// broadcast in place, A's rows packed as the 16-wide panels (by pack_bt_avx2); each finished
// tile goes through two 8x8 register transposes and is stored as up to 16 rows of 6 columns
// of C. The loop over C's columns (B's rows) is outermost, so the 6 rows of B a tile reads
// stay in L1 for every panel of A. Saves packing the weight of a Linear forward on a small
// batch (Zen 3, 1 thread, 64x256x784: 312 -> 276 us).
// Stores h-th half (8 rows of C: j0, j0 + 1, ..) of a transposed tile: acc[i] holds
// C(j0 + 0..7, i0 + i) for the tile's 6 columns; after the transpose r[t] holds
// C(j0 + t, i0 + 0..5) in lanes 0-5. Rows [0, rows) only; columns through the mask mk.
struct SmallTStore {
  float* C;
  int64_t ldc;
  float* z;
  __m256i mk;
  __m256 bias;
  bool accumulate, relu;

  __attribute__((always_inline)) inline void half(const __m256* acc, int64_t j0,
                                                  int rows) const {
    const __m256 zero = _mm256_setzero_ps();
    __m256 r[8] = {acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], zero, zero};
    transpose8x8(r);
    for (int t = 0; t < rows; ++t) {
      float* cj = C + (j0 + t) * ldc;
      __m256 v = r[t];
      if (accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(cj, mk));
      v = _mm256_add_ps(v, bias);
      if (z) _mm256_maskstore_ps(z + (j0 + t) * ldc, mk, v);
      // NOTE: max(0, v) passes NaN and -0 through like act_fwd<relu> (see store_tile).
      if (relu) v = _mm256_max_ps(zero, v);
      _mm256_maskstore_ps(cj, mk, v);
    }
  }
};

// One tile: the K loop over 6 rows of B (br) and a packed 16-wide panel of A (ap), then the
// stores of its jn rows of C. Full: 9-16 rows of C in the panel, else at most 8 (half the
// work). The accumulators are local, with constant indices, so that they stay in registers
// (see small_tile).
template <bool Full>
__attribute__((always_inline)) inline void small_t_tile(int64_t K, const float* const* br,
                                                        const float* ap, int jn, int64_t j0,
                                                        const SmallTStore& st) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = zero;
  const float* b0 = br[0], *b1 = br[1], *b2 = br[2], *b3 = br[3], *b4 = br[4], *b5 = br[5];
  for (int64_t p = 0; p < K; ++p, ap += NR) {
    const __m256 a0 = _mm256_load_ps(ap);
    const __m256 a1 = Full ? _mm256_load_ps(ap + 8) : a0;
    const float* const rowp[MR] = {b0, b1, b2, b3, b4, b5};
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 bi = _mm256_broadcast_ss(rowp[i] + p);
      c0[i] = _mm256_fmadd_ps(bi, a0, c0[i]);
      if (Full) c1[i] = _mm256_fmadd_ps(bi, a1, c1[i]);
    }
  }
  st.half(c0, j0, std::min(jn, 8));
  if (Full) st.half(c1, j0 + 8, jn - 8);
}

// Transposed small-shape kernel (see GemmSmallTKernel): Cᵀ = B·Aᵀ in 6x16 tiles, 6 rows of B
// broadcast in place, A's rows packed as the 16-wide panels (by pack_bt_avx2); each finished
// tile goes through two 8x8 register transposes and is stored as up to 16 rows of 6 columns
// of C. The loop over C's columns (B's rows) is outermost, so the 6 rows of B a tile reads
// stay in L1 for every panel of A. Saves packing the weight of a Linear forward on a small
// batch.
void f32_gemm_small_t_avx2(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* ap,
                           const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
                           const MicroEpilogue* ep) {
  const int64_t panels = (M + NR - 1) / NR;
  for (int64_t i0 = n0; i0 < n1; i0 += MR) {
    const int cols = (int)std::min<int64_t>(MR, n1 - i0);  // C columns in this tile
    __m256i mk, unused;
    col_masks(cols, &mk, &unused);
    const float* br[MR];
    for (int i = 0; i < MR; ++i) br[i] = B + (i0 + (i < cols ? i : cols - 1)) * ldb;
    const SmallTStore st{
        C + i0, ldc, ep && ep->z ? ep->z + i0 : nullptr, mk,
        ep && ep->bias ? _mm256_maskload_ps(ep->bias + i0, mk) : _mm256_setzero_ps(),
        accumulate, ep && ep->relu};
    for (int64_t q = 0; q < panels; ++q) {
      const int jn = (int)std::min<int64_t>(NR, M - q * NR);  // C rows in this tile
      if (jn > 8) small_t_tile<true>(K, br, ap + q * K * NR, jn, q * NR, st);
      else small_t_tile<false>(K, br, ap + q * K * NR, jn, q * NR, st);
    }
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx2() {
  // The small path also takes the wide products of a small batch, for K up to 256 (a B panel
  // of at most 16 KiB, half of a 32 KiB L1) and op(A) = A. Measured on Zen 3, 1 thread, us,
  // packed -> small: NN 64x256x128 61.6 -> 49.2, 64x784x256 343 -> 307, 200x300x100 164 ->
  // 132; NT 64x128x256 65 -> 56. Deeper K or a transposed A were slower unpacked: NN
  // 128x512x384 599 -> 715, TN 256x784x64 316 -> 337, 128x256x64 56 -> 60.
  static const GemmKernelInfo info = [] {
    GemmKernelInfo k{"f32_gemm_6x16_avx2", MR, NR, 144, 256, 3072,
                     f32_gemm_6x16_avx2, f32_gemm_small_avx2, pack_bt_avx2,
                     f32_gemm_small_t_avx2, pack_a_avx2, nullptr, /*small_wide=*/true,
                     /*small_wide_max_k=*/256, /*small_wide_trans_a=*/false};
    k.gemv_rows = gemv_rows_avx2;
    k.gemv_cols = gemv_cols_avx2;
    static_assert(NR % 16 == 0, "gemv_panels reads a panel in blocks of 2 registers");
    k.gemv_panels = gemv_panels_avx2;
    k.gemv_outer = gemv_outer_avx2;
    return k;
  }();
  return info;
}

}  // namespace fastnn
