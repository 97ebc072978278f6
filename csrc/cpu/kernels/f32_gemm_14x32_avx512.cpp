// AVX-512 micro-kernel: a 14x32 tile of C in 28 zmm accumulators; per k step two B loads and
// 14 broadcasts of A feed 28 FMAs. 28 + 2 + 1 registers of the 32 are live; 14 rows hide the
// 4-cycle FMA latency on both FMA pipes. Edge tiles use AVX-512 masks (no scratch tile), and
// bias + ReLU are applied in registers before the single store of C.
#include <immintrin.h>
#include <cstdint>
#include <type_traits>

#include <algorithm>

#include "cpu/gemm.h"

namespace fastnn {
namespace {

constexpr int MR = 14, NR = 32;

// c(rows, 32 masked by m0|m1) = [c +] acc (+ bias, z store, ReLU), rows <= R.
template <int R>
inline void store_tile(const __m512* c0, const __m512* c1, float* c, int64_t ldc,
                       bool accumulate, int rows, __mmask16 m0, __mmask16 m1,
                       const MicroEpilogue* ep) {
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  const bool has_bias = ep && ep->bias;
  if (has_bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, ep->bias);
    bias1 = _mm512_maskz_loadu_ps(m1, ep->bias + 16);
  }
  float* z = ep ? ep->z : nullptr;
  const bool relu = ep && ep->relu;
  const __m512 zero = _mm512_setzero_ps();
  // NOTE (speed): a full tile reads C unmasked: on Intel a masked load also takes a slot on
  // the FMA ports (see small_tile).
  const bool full = m1 == 0xFFFF;
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
    __m512 v0 = c0[i], v1 = c1[i];
    if (accumulate && full) {
      v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
      v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci + 16));
    } else if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    if (has_bias) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (z) {
      _mm512_mask_storeu_ps(z + i * ldc, m0, v0);
      _mm512_mask_storeu_ps(z + i * ldc + 16, m1, v1);
    }
    if (relu) {
      // NOTE: maxps returns its second operand when either is NaN (or both are zeros), so
      // max(0, v) passes NaN and -0 through exactly like act_fwd<relu> (v < 0 ? 0 : v).
      v0 = _mm512_max_ps(zero, v0);
      v1 = _mm512_max_ps(zero, v1);
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    _mm512_mask_storeu_ps(ci + 16, m1, v1);
  }
}

// Both ends of each of the tile's `rows` rows of C (`cols` floats, NR or 16: up to two
// 64-byte lines).
inline void prefetch_c_tile(const float* c, int64_t ldc, int rows, int cols = NR) {
  for (int i = 0; i < rows; ++i) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + cols - 1), _MM_HINT_T0);
  }
}

// a: packed (k, MR); b: packed (k, NR); c: (rows, cols) with leading dimension ldc. The
// arithmetic covers the first R rows of the panel (R >= rows; rows past `rows` are the
// packing's zeros and are not stored).
template <int R>
void packed_tile(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                 bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  // The C tile is touched only after the K loop: start pulling it into L1 now so the final
  // read-modify-write does not stall on 28 cache misses (C rows are ldc apart, so the hardware
  // prefetcher does not see them as a stream).
  prefetch_c_tile(c, ldc, rows);
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  // NOTE: no software prefetch of B or A: both stream sequentially from L2 and the hardware
  // prefetcher keeps up; an explicit prefetch per k step measured 0-3% slower (it spends a
  // load slot in a loop that issues 16 loads per 28 FMAs).
#pragma GCC unroll 2
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF)
                       : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
  store_tile<R>(c0, c1, c, ldc, accumulate, rows, m0, m1, ep);
}

// The micro-kernel: a short edge tile (the last rows of M, or of a thread's share of M) runs
// only as many rows of FMAs as it has, rounded up to an even count of at least 4 (8
// accumulators keep both FMA pipes busy through the 4-cycle latency), not 14 on zero rows.
// NOTE (speed): M = 1024 on 1 thread is 73 full tiles and one of 2 rows, which as a full tile
// wasted 1.2% of the arithmetic; on 2 threads (rows split evenly, see gemm.cpp) 36 tiles and 8
// rows each. Measured on Zen 5, 1024^3, best of 5 interleaved runs: 1 thread 9121 -> 8980 us,
// 2 threads 4608 -> 4527 us; 2048^3 on 2 threads 37.10 -> 36.83 ms.
void f32_gemm_14x32_avx512(int64_t k, const float* a, const float* b, float* c, int64_t ldc,
                           bool accumulate, int rows, int cols, const MicroEpilogue* ep) {
  if (rows >= 13) return packed_tile<MR>(k, a, b, c, ldc, accumulate, rows, cols, ep);
  switch ((std::max(rows, 4) + 1) / 2) {
    case 2: return packed_tile<4>(k, a, b, c, ldc, accumulate, rows, cols, ep);
    case 3: return packed_tile<6>(k, a, b, c, ldc, accumulate, rows, cols, ep);
    case 4: return packed_tile<8>(k, a, b, c, ldc, accumulate, rows, cols, ep);
    case 5: return packed_tile<10>(k, a, b, c, ldc, accumulate, rows, cols, ep);
    default: return packed_tile<12>(k, a, b, c, ldc, accumulate, rows, cols, ep);
  }
}

// Small-shape kernel: tiles of 32 columns straight from the caller's A and B (see
// GemmSmallKernel). NOTE: 8 rows (16 accumulators) rather than 14 when A's rows are strided:
// each row needs its own address, and 8 keep them in general-purpose registers; two FMA pipes
// x 4-cycle latency need only 8 independent accumulators. (A panel of exactly 16 columns has
// one accumulator a row, and takes 16-row tiles: small_tile_half16.) Row edges re-read the
// last valid row (results dropped), column edges use masked loads and stores, so nothing
// outside A, B or C is touched. A transposed A (contiguous rows) takes tiles of up to 14 rows
// (see small_tile).
constexpr int SMR = 8;
// Columns small_tile3 takes at the end of a range: a panel and 16 of the next.
constexpr int kSmallLastCols = NR + 16;

// One R x 32 tile of the small-shape product, rows i0.. of A and C, columns j0.. (bp: B(0, j0);
// c: C(i0, j0); ep already offset to (i0, j0)). A(i0 + i, p) = A[(i0 + i)*rs_a + p*cs_a].
// kContig (rs_a = 1, A read transposed, as in dW = dYᵀ·X): the R values of a column are
// consecutive floats, one pointer with constant offsets feeds every broadcast, and all R rows
// are valid. Otherwise one pointer per row (R = SMR), rows <= R.
template <int R, bool kContig>
void small_tile(int64_t K, const float* A, int64_t rs_a, int64_t cs_a, int64_t i0, int rows,
                const float* bp, int64_t ldb, __mmask16 m0, __mmask16 m1, float* c, int64_t ldc,
                bool accumulate, const MicroEpilogue* ep) {
  // A(i0 + i, p) = a_at(i, p*cs_a), through one base pointer when kContig. NOTE: written as
  // ar[i] = a0 + i, GCC keeps 14 separate pointers and spills them; a0[off + i] is one
  // register and constant displacements.
  const float* ar[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) ar[i] = A + (i0 + (i < rows ? i : rows - 1)) * rs_a;
  const float* a0 = A + i0;
  auto a_at = [&](int i, int64_t off) { return kContig ? a0[off + i] : ar[i][off]; };
  if (accumulate) {
    // As in the packed kernel: start pulling the C tile in while the K loop runs (an RNN
    // step adds onto gate rows last written a whole sequence earlier, long out of L2).
    prefetch_c_tile(c, ldc, rows);
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  // NOTE (speed): full panels load B unmasked. A zero-masked load is a load plus an ALU uop
  // on Intel's FMA ports (0 and 5), two per k step here against 28 FMAs: measured on an Intel
  // Xeon VM (AVX-512), 1 thread, in-process interleaved, best of 40-60: NN 64x784x256 (A
  // transposed) 148.5 -> 139.7 us, 64x256x128 22.4 -> 21.4; TN 256x784x64 143.1 -> 136.2,
  // 128x256x64 22.3 -> 21.5.
  // The 32-column K loop, B's two vectors loaded by load(bp, half); with prefetch, the B row
  // kPrefetchRows ahead is requested too (all of its 128 bytes: three lines when the row
  // does not start on a line, as NumPy's rows mostly do not).
  // NOTE (speed): done for a B read in place (ldb != NR: a packed panel's rows, or an
  // in-place B exactly 32 wide, are contiguous and the hardware follows them) in full panels
  // from K = 256 on: rows ldb floats apart defeat the L1 stride prefetcher. Measured on an
  // Intel Xeon VM (AVX-512, 48 KiB L1d, 2 MiB L2), in-process, median of 5 interleaved
  // pairs, without -> with, GFLOP/s on 1 thread / 2 threads: NN 64x784x1024 115 -> 146 /
  // 210 -> 260, 64x784x512 121 -> 146 / 245 -> 278, 96x784x800 125 -> 148 / 231 -> 277,
  // 32x784x2048 96 -> 123 / 155 -> 205, 16x784x2048 89 -> 112 / 127 -> 178, TN 48x1000x2048
  // 96 -> 133 / 162 -> 221, NN 64x128x1024 151 -> 165 / 295 -> 306, 64x256x512 139 -> 151 /
  // 239 -> 260, 64x784x256 149 -> 165 / 261 -> 282. Prefetching only a row's first two
  // lines gained about half as much (64x784x1024 123, TN 48x1000x2048 110 on 1 thread).
  // Below K = 256 it cost 2-8% (NN 64x784x64 156 -> 145, 48x500x96 162 -> 150); 8 or 16 rows
  // ahead measured the same.
  constexpr int64_t kPrefetchRows = 8;
  auto two_vectors = [&](auto load, auto prefetch) {
    for (int64_t p = 0; p < K; ++p, bp += ldb) {
      if constexpr (decltype(prefetch)::value) {
        // (The address as an integer: past B's last row it is no pointer into B.)
        const uintptr_t ahead = uintptr_t(bp) + uintptr_t(kPrefetchRows * ldb) * sizeof(float);
        _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + 64), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + 124), _MM_HINT_T0);
      }
      const __m512 b0 = load(bp, 0), b1 = load(bp + 16, 1);
      const int64_t off = p * cs_a;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(a_at(i, off));
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
    }
  };
  const auto full = [](const float* q, int) { return _mm512_loadu_ps(q); };
  if (m1 == 0xFFFF && ldb != NR && K >= 256) {
    two_vectors(full, std::true_type{});
  } else if (m1 == 0xFFFF) {
    two_vectors(full, std::false_type{});
  } else if (m1) {
    two_vectors([&](const float* q, int h) { return _mm512_maskz_loadu_ps(h ? m1 : m0, q); },
                std::false_type{});
  } else {  // at most 16 columns: half the work
    for (int64_t p = 0; p < K; ++p, bp += ldb) {
      const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
      const int64_t off = p * cs_a;
#pragma GCC unroll 14
      for (int i = 0; i < R; ++i)
        c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a_at(i, off)), b0, c0[i]);
    }
  }
  store_tile<R>(c0, c1, c, ldc, accumulate, rows, m0, m1, ep);
}

// A panel of exactly 16 columns with A's rows strided (one pointer per row): 16 rows a tile,
// one accumulator each, where small_tile<SMR> has 8. Rows 8..15 are read through rows 0..7's
// pointers plus 8 rows' stride (one more register, not 8 more pointers). Whole 16-row tiles
// only (rows i0..i0 + 15 all in A and C).
// NOTE (speed): with one vector a row, every FMA needs its own broadcast, and 8 accumulators
// (8 rows) are only just what two FMA pipes x 4 cycles of latency need, with no slack; 16
// rows also halve the B loads and loop overhead per FMA. Measured on an Intel Xeon VM
// (AVX-512), in-process, median of 5 interleaved pairs, 8-row -> 16-row tiles, GFLOP/s, 1
// thread / 2 threads: NN 256x16x784 101 -> 132 / 133 -> 142, 100x16x1000 97 -> 123 / 125 ->
// 142, 256x48x512 128 -> 151 / 223 -> 229, NT 4096x48x256 134 -> 141 / 249 -> 266, 160x80x300
// 145 -> 149 / 207 -> 222; NN 64x784x256 (one such panel of 25) 170 -> 171. The same tile
// for a panel of fewer than 16 columns (B loaded masked) ran slower, NN 256x8x512 62 -> 34,
// NT 256x40x784 119 -> 87 (not understood), so those keep the 8-row tiles.
void small_tile_half16(int64_t K, const float* A, int64_t rs_a, int64_t cs_a, int64_t i0,
                       const float* bp, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                       const MicroEpilogue* ep) {
  constexpr int R = 2 * SMR;
  const float* ar[SMR];
#pragma GCC unroll 8
  for (int i = 0; i < SMR; ++i) ar[i] = A + (i0 + i) * rs_a;
  const int64_t r8 = SMR * rs_a;
  if (accumulate) prefetch_c_tile(c, ldc, R, 16);
  __m512 acc[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < K; ++p, bp += ldb) {
    const __m512 b0 = _mm512_loadu_ps(bp);
    const int64_t off = p * cs_a, off8 = off + r8;
#pragma GCC unroll 8
    for (int i = 0; i < SMR; ++i) {
      acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ar[i][off]), b0, acc[i]);
      acc[i + SMR] = _mm512_fmadd_ps(_mm512_set1_ps(ar[i][off8]), b0, acc[i + SMR]);
    }
  }
  // (The second half's mask is empty: its accumulators, acc again, are never read.)
  store_tile<R>(acc, acc, c, ldc, accumulate, R, __mmask16(0xFFFF), __mmask16(0), ep);
}

// The last 33-48 columns of the small-shape product in one pass, for an A read through row
// pointers: R rows x 3 registers, a full 32-column panel (bp) and the first 1-16 columns of
// the next (bp2, mask m2). Row edges re-read the last valid row (as small_tile<SMR, false>).
// NOTE (speed): panel by panel, those columns were an 8-row tile of 32 (8 broadcasts and 2
// loads per 16 FMAs) and then a 16-row tile of 16 or an 8-row tile of fewer (16 broadcasts
// and 1 load per 16 FMAs, or 8 and 1 per 8: bound by the loads), reading A's rows twice; here
// 8 broadcasts and 3 loads feed 24 FMAs. Measured on an Intel Xeon VM (AVX-512), in-process,
// median of 7 interleaved, GFLOP/s, panel by panel -> here, 1 thread / 2 threads: NT
// 4096x48x256 132 -> 147 / 275 -> 296, 400x40x784 119 -> 128 / 244 -> 270, 512x33x512 99 ->
// 110 / 214 -> 227, 1000x44x300 127 -> 140 / 284 -> 304; NN 256x48x512 154 -> 173 / 266 ->
// 279, 2048x48x256 140 -> 154 / 325 -> 367, 100x36x100 102 -> 110 / 122 -> 123. Not for a
// transposed A (contiguous rows, up to 14 a tile): TN 36x100x50 114 -> 103 and, through the
// per-tile copy of a row-major A, NN 64x784x256 180 -> 175 (1 thread).
template <int R>
void small_tile3(int64_t K, const float* A, int64_t rs_a, int64_t cs_a, int64_t i0, int rows,
                 const float* bp, const float* bp2, int64_t ldb, __mmask16 m2, float* c,
                 int64_t ldc, bool accumulate, const MicroEpilogue* ep) {
  const float* ar[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) ar[i] = A + (i0 + (i < rows ? i : rows - 1)) * rs_a;
  if (accumulate) prefetch_c_tile(c, ldc, rows, 48);
  __m512 c0[R], c1[R], c2[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = c2[i] = _mm512_setzero_ps();
  auto loop = [&](auto load2) {
    for (int64_t p = 0; p < K; ++p, bp += ldb, bp2 += ldb) {
      const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), b2 = load2(bp2);
      const int64_t off = p * cs_a;
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(ar[i][off]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        c2[i] = _mm512_fmadd_ps(ai, b2, c2[i]);
      }
    }
  };
  if (m2 == 0xFFFF) loop([](const float* q) { return _mm512_loadu_ps(q); });
  else loop([m2](const float* q) { return _mm512_maskz_loadu_ps(m2, q); });
  store_tile<R>(c0, c1, c, ldc, accumulate, rows, __mmask16(0xFFFF), __mmask16(0xFFFF), ep);
  const MicroEpilogue e2 = ep ? micro_epilogue_at(*ep, 0, NR, ldc) : MicroEpilogue{};
  store_tile<R>(c2, c2, c + NR, ldc, accumulate, rows, m2, __mmask16(0), ep ? &e2 : nullptr);
}

void f32_gemm_small_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* A,
                           int64_t rs_a, int64_t cs_a, const float* B, int64_t ldb, int64_t bps,
                           float* C, int64_t ldc, bool accumulate, const MicroEpilogue* ep) {
  // Row tiles. Contiguous rows of A (rs_a = 1): up to MR rows each, M split into near-equal
  // heights (256 rows: 19 tiles of 13-14; 10 rows: one tile, not 8 + a mostly empty 8), each
  // height its own instantiation. Otherwise SMR rows each, the last one partial (two at a time
  // in a panel of exactly 16 columns, while both are whole), and the range's last 33-48
  // columns, if it ends so, in one pass (small_tile3).
  // NOTE (speed): measured on Zen 5, 1 thread, TN (dW = dYᵀ·X shapes): 10x128x64 1.67 ->
  // 1.50 us; 256x784x64 and 128x784x64 unchanged within the noise (~91% of the FMA peak).
  const bool contig = rs_a == 1 && M >= SMR;
  const int64_t tiles = contig ? (M + MR - 1) / MR : (M + SMR - 1) / SMR;
  for (int64_t j0 = n0; j0 < n1; j0 += NR) {
    if (!contig && n1 - j0 > NR && n1 - j0 <= kSmallLastCols) {  // see small_tile3
      const int left = (int)(n1 - j0 - NR);
      const __mmask16 m2 = __mmask16((1u << left) - 1);
      const float* bp = B + (j0 / NR) * bps;
      for (int64_t i0 = 0; i0 < M; i0 += SMR) {
        const int rows = (int)std::min<int64_t>(SMR, M - i0);
        const MicroEpilogue me = ep ? micro_epilogue_at(*ep, i0, j0, ldc) : MicroEpilogue{};
        small_tile3<SMR>(K, A, rs_a, cs_a, i0, rows, bp, bp + bps, ldb, m2, C + i0 * ldc + j0,
                         ldc, accumulate, ep ? &me : nullptr);
      }
      break;
    }
    const int cols = (int)std::min<int64_t>(NR, n1 - j0);
    const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF)
                         : cols > 16 ? __mmask16((1u << (cols - 16)) - 1) : __mmask16(0);
    const float* bp = B + (j0 / NR) * bps;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t i0 = contig ? M * t / tiles : t * SMR;
      const int rows = (int)(contig ? M * (t + 1) / tiles - i0 : std::min<int64_t>(SMR, M - i0));
      const MicroEpilogue me = ep ? micro_epilogue_at(*ep, i0, j0, ldc) : MicroEpilogue{};
      const MicroEpilogue* mep = ep ? &me : nullptr;
      float* c = C + i0 * ldc + j0;
      if (!contig) {
        if (cols == 16 && i0 + 2 * SMR <= M) {
          small_tile_half16(K, A, rs_a, cs_a, i0, bp, ldb, c, ldc, accumulate, mep);
          ++t;  // (and the next 8-row tile with it)
          continue;
        }
        small_tile<SMR, false>(K, A, rs_a, cs_a, i0, rows, bp, ldb, m0, m1, c, ldc, accumulate,
                               mep);
        continue;
      }
      // rows = M / tiles rounded down or up, always 7..14: M / tiles <= 14 as tiles >= M / 14,
      // and M / tiles > 14 (tiles - 1) / tiles >= 7 for tiles >= 2 (M >= 8 for tiles = 1).
      switch (rows) {
#define FASTNN_TALL(R)                                                                 \
  case R:                                                                              \
    small_tile<R, true>(K, A, 1, cs_a, i0, R, bp, ldb, m0, m1, c, ldc, accumulate, mep); \
    break;
        FASTNN_TALL(7) FASTNN_TALL(8) FASTNN_TALL(9) FASTNN_TALL(10) FASTNN_TALL(11)
        FASTNN_TALL(12) FASTNN_TALL(13) FASTNN_TALL(14)
#undef FASTNN_TALL
      }
    }
  }
}

// r[0..15] (rows of a 16x16 block) -> r[q] = column q, in 64 shuffles: pairs of rows
// interleave (ps, then pd), then 128-bit lanes regroup twice (shuffle_f32x4 0x88 / 0xdd).
inline void transpose16x16(__m512* r) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {  // r[i + q] = column q of each lane, rows i..i+3
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]),
                  c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    t[q] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0x88);
    t[q + 4] = _mm512_shuffle_f32x4(r[q], r[q + 4], 0xdd);
    t[q + 8] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0x88);
    t[q + 12] = _mm512_shuffle_f32x4(r[q + 8], r[q + 12], 0xdd);
  }
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) {
    r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
  }
}

// See GemmKernelInfo::transpose: dst(cols, rows) = src(rows, cols)ᵀ, in 16x16 blocks through
// register transposes; edge blocks load their rows masked (missing rows zero) and store only
// their valid rows and columns.
void transpose_avx512(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                      int64_t ldd) {
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int ri = (int)std::min<int64_t>(16, rows - i0);
    const __mmask16 mi = ri == 16 ? __mmask16(0xFFFF) : __mmask16((1u << ri) - 1);
    for (int64_t p0 = 0; p0 < cols; p0 += 16) {
      const int cp = (int)std::min<int64_t>(16, cols - p0);
      const __mmask16 mp = cp == 16 ? __mmask16(0xFFFF) : __mmask16((1u << cp) - 1);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = i < ri ? _mm512_maskz_loadu_ps(mp, src + (i0 + i) * lds + p0) : _mm512_setzero_ps();
      transpose16x16(r);
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q)
        if (q < cp) _mm512_mask_storeu_ps(dst + (p0 + q) * ldd + i0, mi, r[q]);
    }
  }
}

// See GemmKernelInfo::pack_bt. Full 32-column panels go through 16x16 register transposes
// (16 contiguous loads per row instead of 16 scalar gathers); ragged edges are scalar.
void pack_bt_avx512(const float* B, int64_t ldb, int64_t kc, int64_t nc, float* dst) {
  for (int64_t c0 = 0; c0 < nc; c0 += NR, dst += kc * NR) {
    const int cols = (int)std::min<int64_t>(NR, nc - c0);
    const float* src = B + c0 * ldb;
    int64_t p = 0;
    if (cols == NR) {
      for (; p + 16 <= kc; p += 16) {
        for (int half = 0; half < 2; ++half) {
          __m512 r[16];
#pragma GCC unroll 16
          for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + (half * 16 + i) * ldb + p);
          transpose16x16(r);
#pragma GCC unroll 16
          for (int q = 0; q < 16; ++q) _mm512_store_ps(dst + (p + q) * NR + half * 16, r[q]);
        }
      }
    }
    for (; p < kc; ++p) {
      float* d = dst + p * NR;
      int c = 0;
      for (; c < cols; ++c) d[c] = src[c * ldb + p];
      for (; c < NR; ++c) d[c] = 0.f;
    }
  }
}

// See GemmKernelInfo::pack_a: rows of A into 14-row panels. Full panels go 16 columns at a
// time through a 16x16 register transpose (14 row loads, rows 14-15 zero) and 16 stores of
// 14 floats; the scalar gather this replaces did one load and one store per float.
void pack_a_avx512(const float* A, int64_t lda, int64_t mc, int64_t kc, float* dst) {
  for (int64_t r0 = 0; r0 < mc; r0 += MR, dst += kc * MR) {
    const int rows = (int)std::min<int64_t>(MR, mc - r0);
    const float* src = A + r0 * lda;
    int64_t p = 0;
    if (rows == MR) {
      for (; p + 16 <= kc; p += 16) {
        __m512 r[16];
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) r[i] = _mm512_loadu_ps(src + i * lda + p);
        r[14] = r[15] = _mm512_setzero_ps();
        transpose16x16(r);
        // r[q] = column p + q: 14 values and 2 zeros. Each full store spills 2 floats into
        // the next column's slot, which the next store (or the tail) rewrites; only the
        // panel's last column is stored masked, so nothing past the panel is touched.
#pragma GCC unroll 16
        for (int q = 0; q < 16; ++q) {
          float* d = dst + (p + q) * MR;
          if (p + q + 1 < kc) _mm512_storeu_ps(d, r[q]);
          else _mm512_mask_storeu_ps(d, __mmask16(0x3FFF), r[q]);
        }
      }
    }
    for (; p < kc; ++p) {
      float* d = dst + p * MR;
      int i = 0;
      for (; i < rows; ++i) d[i] = src[i * lda + p];
      for (; i < MR; ++i) d[i] = 0.f;
    }
  }
}

// See GemmKernelInfo::copy_panels: row by row (each source row is read once, front to back),
// one or two 512-bit moves per panel row where the driver's portable copy moved 16 bytes at a
// time; the last, ragged panel loads masked and stores its zeros.
template <int R>
void copy_panels_rows_avx512(const float* src, int64_t ld, int64_t cols, int64_t kc, float* dst) {
  static_assert(R == MR || R == NR, "one vector (14 of 16 lanes) or two per panel row");
  const int64_t full = cols / R, ps = kc * R;
  const int rem = int(cols % R);
  const __mmask16 all = R == NR ? __mmask16(0xFFFF) : __mmask16((1u << R) - 1);
  const __mmask16 rem0 = __mmask16((1u << std::min(rem, 16)) - 1);
  const __mmask16 rem1 = __mmask16((1u << std::max(rem - 16, 0)) - 1);
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = src + p * ld;
    float* d = dst + p * R;
    for (int64_t q = 0; q < full; ++q, s += R, d += ps) {
      if constexpr (R == NR) {
        _mm512_storeu_ps(d, _mm512_loadu_ps(s));
        _mm512_storeu_ps(d + 16, _mm512_loadu_ps(s + 16));
      } else {
        _mm512_mask_storeu_ps(d, all, _mm512_maskz_loadu_ps(all, s));
      }
    }
    if (rem) {
      if constexpr (R == NR) {
        _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(rem0, s));
        _mm512_storeu_ps(d + 16, _mm512_maskz_loadu_ps(rem1, s + 16));
      } else {
        _mm512_mask_storeu_ps(d, all, _mm512_maskz_loadu_ps(rem0, s));
      }
    }
  }
}

// R is NR (B's panels) or MR (A's), as GemmKernelInfo::copy_panels promises.
void copy_panels_avx512(int R, const float* src, int64_t ld, int64_t cols, int64_t kc,
                        float* dst) {
  if (R == NR) copy_panels_rows_avx512<NR>(src, ld, cols, kc, dst);
  else copy_panels_rows_avx512<MR>(src, ld, cols, kc, dst);
}

// One row of a finished tile of the transposed small-shape kernel: C(j, i0..) in the lanes of
// mk = [C +] v + bias, also stored to z; then ReLU.
struct TRowOut {
  float* C;
  int64_t ldc, i0;
  bool accumulate;
  float* z;
  bool relu;
  __m512 bias;  // (lanes past mk: zeros)
  __mmask16 mk;
  void put(int64_t j, __m512 v) const {
    float* cj = C + j * ldc + i0;
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, cj));
    v = _mm512_add_ps(v, bias);
    if (z) _mm512_mask_storeu_ps(z + j * ldc + i0, mk, v);
    // NOTE: max(0, v) passes NaN and -0 through like act_fwd<relu> (see store_tile).
    if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
    _mm512_mask_storeu_ps(cj, mk, v);
  }
};

// The epilogue of the columns i0.. (mask mk) of the transposed small-shape kernel.
TRowOut trow_out(float* C, int64_t ldc, int64_t i0, bool accumulate, const MicroEpilogue* ep,
                 __mmask16 mk) {
  return {C, ldc, i0, accumulate, ep ? ep->z : nullptr, ep && ep->relu,
          ep && ep->bias ? _mm512_maskz_loadu_ps(mk, ep->bias + i0) : _mm512_setzero_ps(), mk};
}

// The transposed small-shape kernel's wide tile: 12 columns of C (B's rows i0..i0 + 11, all
// in B) against each 32-row panel of A, in 24 accumulators. Rows 6..11 of B are read through
// rows 0..5's pointers plus 6 rows' stride (as small_tile_half16 does), so the K loop needs 6
// row pointers, not 12. Each 16-row half of a finished panel goes through one 16x16 register
// transpose (4 lanes of zeros) and is stored as 16 rows of 12 columns.
// NOTE (speed): 12 broadcasts and 2 loads per 24 FMAs, against 8 and 2 per 16 in the 8-column
// tile. Measured on an Intel Xeon VM (AVX-512), in-process, median of 5 interleaved pairs,
// 8-column -> 12-column tiles, GFLOP/s, 1 thread: NT 64x256x784 152-158 -> 157-164,
// 64x128x256 126-135 -> 134-142, 128x512x512 151-156 -> 157-162, 40x300x500 122 -> 132,
// 100x784x256 141 -> 147; 2 threads: 64x256x784 268 -> 292, 128x512x512 307 -> 320,
// 256x1024x1024 287 -> 306. 14 columns (28 accumulators) measured the same as 12, 10 columns
// 0-2% over 8. At M <= 16 (one half-empty panel) it measured even (NT 8x512x512 60 -> 60,
// 16x1024x1024 114 -> 112).
constexpr int kTH = 6, kTW = 2 * kTH;
void small_t_tile_wide(int64_t M, int64_t i0, int64_t K, const float* ap, const float* B,
                       int64_t ldb, float* C, int64_t ldc, bool accumulate,
                       const MicroEpilogue* ep) {
  constexpr int H = kTH, W = kTW;
  const int64_t panels = (M + NR - 1) / NR;
  const float* br[H];
#pragma GCC unroll 8
  for (int i = 0; i < H; ++i) br[i] = B + (i0 + i) * ldb;
  const int64_t r6 = H * ldb;
  const __m512 zero = _mm512_setzero_ps();
  const TRowOut out = trow_out(C, ldc, i0, accumulate, ep, __mmask16((1u << W) - 1));
  for (int64_t q = 0; q < panels; ++q) {
    const int jn = (int)std::min<int64_t>(NR, M - q * NR);  // C rows in this tile
    const float* bp = ap + q * K * NR;
    __m512 c0[W], c1[W];
#pragma GCC unroll 16
    for (int i = 0; i < W; ++i) c0[i] = c1[i] = zero;
    if (jn > 16) {
      for (int64_t p = 0; p < K; ++p, bp += NR) {
        const __m512 a0 = _mm512_load_ps(bp), a1 = _mm512_load_ps(bp + 16);
        const int64_t p6 = p + r6;
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          const __m512 b = _mm512_set1_ps(br[i][p]);
          c0[i] = _mm512_fmadd_ps(b, a0, c0[i]);
          c1[i] = _mm512_fmadd_ps(b, a1, c1[i]);
          const __m512 b6 = _mm512_set1_ps(br[i][p6]);
          c0[i + H] = _mm512_fmadd_ps(b6, a0, c0[i + H]);
          c1[i + H] = _mm512_fmadd_ps(b6, a1, c1[i + H]);
        }
      }
    } else {
      for (int64_t p = 0; p < K; ++p, bp += NR) {
        const __m512 a0 = _mm512_load_ps(bp);
        const int64_t p6 = p + r6;
#pragma GCC unroll 8
        for (int i = 0; i < H; ++i) {
          c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(br[i][p]), a0, c0[i]);
          c0[i + H] = _mm512_fmadd_ps(_mm512_set1_ps(br[i][p6]), a0, c0[i + H]);
        }
      }
    }
    for (int h = 0; h < 2 && 16 * h < jn; ++h) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) r[i] = h ? c1[i] : c0[i];
      for (int i = W; i < 16; ++i) r[i] = zero;
      transpose16x16(r);
      const int64_t j0 = q * NR + 16 * h;
      for (int t = 0; t < 16 && 16 * h + t < jn; ++t) out.put(j0 + t, r[t]);
    }
  }
}

// Transposed small-shape kernel (see GemmSmallTKernel): Cᵀ = B·Aᵀ in 12x32 tiles
// (small_t_tile_wide) and, for the last columns, 8x32 tiles, B's rows broadcast in place, A's
// rows packed as the 32-wide panels; each finished 8-column tile goes through a 16x16
// register transpose and is stored as 32 rows of 8 columns of C.
// NOTE: the loop over C's columns (B's rows) is outermost, so the 8 or 12 rows of B a tile
// reads (8-12 x K floats) are read from memory once and again from cache for each further
// panel of A: from L1 up to K of about 1000 (12 rows on a 48 KiB L1), from L2 past that.
void f32_gemm_small_t_avx512(int64_t M, int64_t n0, int64_t n1, int64_t K, const float* ap,
                             const float* B, int64_t ldb, float* C, int64_t ldc,
                             bool accumulate, const MicroEpilogue* ep) {
  const int64_t panels = (M + NR - 1) / NR;
  int64_t i0s = n0;
  for (; i0s + kTW <= n1; i0s += kTW)
    small_t_tile_wide(M, i0s, K, ap, B, ldb, C, ldc, accumulate, ep);
  for (int64_t i0 = i0s; i0 < n1; i0 += SMR) {  // the last columns: tiles of 8
    const int rows = (int)std::min<int64_t>(SMR, n1 - i0);  // C columns in this tile
    const float* br[SMR];
#pragma GCC unroll 8
    for (int i = 0; i < SMR; ++i) br[i] = B + (i0 + (i < rows ? i : rows - 1)) * ldb;
    const TRowOut out = trow_out(C, ldc, i0, accumulate, ep, __mmask16((1u << rows) - 1));
    for (int64_t q = 0; q < panels; ++q) {
      const int jn = (int)std::min<int64_t>(NR, M - q * NR);  // C rows in this tile
      const float* bp = ap + q * K * NR;
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = _mm512_setzero_ps();
      if (jn > 16) {
        for (int64_t p = 0; p < K; ++p, bp += NR) {
          const __m512 a0 = _mm512_load_ps(bp), a1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 8
          for (int i = 0; i < SMR; ++i) {
            const __m512 bi = _mm512_set1_ps(br[i][p]);
            r[i] = _mm512_fmadd_ps(bi, a0, r[i]);
            r[i + 8] = _mm512_fmadd_ps(bi, a1, r[i + 8]);
          }
        }
      } else {  // at most 16 rows of C: half the work
        for (int64_t p = 0; p < K; ++p, bp += NR) {
          const __m512 a0 = _mm512_load_ps(bp);
#pragma GCC unroll 8
          for (int i = 0; i < SMR; ++i)
            r[i] = _mm512_fmadd_ps(_mm512_set1_ps(br[i][p]), a0, r[i]);
        }
      }
      // r[i] holds C(q*32 + 0..15, i0 + i), r[8 + i] C(q*32 + 16..31, i0 + i); after the
      // transpose r[t] holds C(q*32 + t, i0 + 0..7) in lanes 0-7 and C(q*32 + 16 + t, ...) in
      // lanes 8-15.
      transpose16x16(r);
      const int64_t j0 = q * NR;
      // (Lanes 8-15: the other half of the tile in the first put, undefined after the cast
      // in the second; both outside mk.)
      for (int t = 0; t < 16 && t < jn; ++t) out.put(j0 + t, r[t]);
      for (int t = 0; t + 16 < jn; ++t)
        out.put(j0 + 16 + t, _mm512_castps256_ps512(_mm512_extractf32x8_ps(r[t], 1)));
    }
  }
}

}  // namespace

const GemmKernelInfo& gemm_kernel_avx512() {
  static const GemmKernelInfo info = [] {
    GemmKernelInfo k{"f32_gemm_14x32_avx512", MR, NR, 252, 512, 4096,
                     f32_gemm_14x32_avx512, f32_gemm_small_avx512, pack_bt_avx512,
                     f32_gemm_small_t_avx512, pack_a_avx512, transpose_avx512};
    k.copy_panels = copy_panels_avx512;
    k.small_last_cols = kSmallLastCols;
    k.gemv_rows = gemv_rows_avx512;
    k.gemv_cols = gemv_cols_avx512;
    static_assert(NR % 32 == 0, "gemv_panels reads a panel in blocks of 2 registers");
    k.gemv_panels = gemv_panels_avx512;
    k.gemv_outer = gemv_outer_avx512;
    return k;
  }();
  return info;
}

}  // namespace fastnn
