#include "cpu/conv.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/kernels/conv_dots.h"
#include "cpu/kernels/winograd.h"

namespace fastnn {

namespace {
std::atomic<bool> g_winograd{true};
bool winograd_enabled() { return g_winograd.load(std::memory_order_relaxed); }
}  // namespace

void conv2d_set_winograd(bool on) { g_winograd.store(on); }
bool conv2d_winograd() { return winograd_enabled(); }

namespace {

// Work (multiply-adds) below which a whole convolution stays on the calling thread.
constexpr int64_t kParallelMacs = 1 << 18;
// The col block is sized to stay in L2 between im2col writing it and the GEMM packing it
// (a whole 64-channel 56x56 3x3 col matrix is 7 MB; a 512 KB block is re-read from cache).
constexpr int64_t kColFloats = 1 << 17;
// Winograd tiles per block (whole tile rows). Measured at 64 channels, 56x56, one thread:
// 84 tiles (V and M ~770 KB each) 6.4 ms; 128 tiles 8.4 ms (the output transform then
// re-reads M from L3); 32 tiles 8.4 ms (36 GEMM calls per block, each too small). Re-checked
// with the per-ISA transforms (forward, 6 vs 4 vs 8 tile rows of 14): within the noise.
constexpr int64_t kWinogradTiles = 84;

// Output rows [oh0, oh1) per block: at least one row.
int64_t rows_per_block(const Conv2dShape& s) {
  int64_t r = kColFloats / std::max<int64_t>(1, s.K() * s.OW);
  return std::clamp<int64_t>(r, 1, std::max<int64_t>(1, s.OH));
}

// Small images (a col matrix well under the block size) are batched: the columns of nb
// images side by side make one GEMM with nb*P columns instead of nb small ones, each of which
// would repack the weights and pay the GEMM's fixed cost.
int64_t images_per_block(const Conv2dShape& s) {
  if (s.direct()) return 1;
  const int64_t per = std::max<int64_t>(1, s.K() * s.P());
  return std::max<int64_t>(1, kColFloats / per);
}

// sum(v[0:n]) in double, from 8 float lanes (the lanes vectorise; a running double sum
// would be a scalar dependency chain).
inline double row_sum(const float* v, int64_t n) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += v[i + k];
  double acc = 0;
  for (int k = 0; k < 8; ++k) acc += lane[k];
  for (; i < n; ++i) acc += v[i];
  return acc;
}

inline float act_out(float v, bool relu) { return relu ? std::max(v, 0.f) : v; }

// For kernel column offset `off` = kw*dw - pw, the output columns [lo, hi) whose input column
// ow*sw + off lies inside [0, W); the rest read padding.
inline void valid_cols(const Conv2dShape& s, int64_t off, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
  hi = (s.W - 1 - off) < 0 ? 0 : (s.W - 1 - off) / s.sw + 1;
  hi = std::min(hi, s.OW);
  lo = std::min(lo, hi);
}

// col (K, (oh1-oh0)*OW) with leading dimension pc, row r = (c*KH + kh)*KW + kw, from one
// group's input xg (Cg, H, W).
void im2col(const Conv2dShape& s, const float* xg, int64_t oh0, int64_t oh1, float* col,
            int64_t pc) {
  for (int64_t c = 0; c < s.cg(); ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        float* row = col + ((c * s.KH + kh) * s.KW + kw) * pc;
        const int64_t off = kw * s.dw - s.pw;
        int64_t lo, hi;
        valid_cols(s, off, lo, hi);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          float* dst = row + (oh - oh0) * s.OW;
          const int64_t ih = oh * s.sh - s.ph + kh * s.dh;
          if (ih < 0 || ih >= s.H) {
            std::memset(dst, 0, sizeof(float) * s.OW);
            continue;
          }
          const float* src = xg + (c * s.H + ih) * s.W + off;
          // NOTE: plain loops, not memcpy/memset: rows are short (OW floats) and a library
          // call per row costs more than the copy for small images.
          for (int64_t ow = 0; ow < lo; ++ow) dst[ow] = 0.f;
          if (s.sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * s.sw];
          }
          for (int64_t ow = hi; ow < s.OW; ++ow) dst[ow] = 0.f;
        }
      }
}

// dxg (Cg, H, W) += the columns of dcol (same layout as im2col's col) scattered back.
void col2im(const Conv2dShape& s, const float* dcol, int64_t oh0, int64_t oh1, float* dxg,
            int64_t pc) {
  for (int64_t c = 0; c < s.cg(); ++c)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const float* row = dcol + ((c * s.KH + kh) * s.KW + kw) * pc;
        const int64_t off = kw * s.dw - s.pw;
        int64_t lo, hi;
        valid_cols(s, off, lo, hi);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * s.sh - s.ph + kh * s.dh;
          if (ih < 0 || ih >= s.H) continue;
          const float* src = row + (oh - oh0) * s.OW;
          float* dst = dxg + (c * s.H + ih) * s.W + off;
          if (s.sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow * s.sw] += src[ow];
          }
        }
      }
}

// Threads to spread images over: 1 (GEMM threads itself) when the batch is smaller than the
// pool or the whole problem is too small to pay for waking it.
int image_threads(const Conv2dShape& s) {
  const int64_t macs = s.N * s.OC * s.K() * s.P();
  if (macs < kParallelMacs) return 1;
  return (int)std::min<int64_t>(get_num_threads(), s.N);
}

// Images [b, e) of thread tid among nt (contiguous, balanced).
inline void split(int64_t n, int tid, int nt, int64_t& b, int64_t& e) {
  b = n * tid / nt;
  e = n * (tid + 1) / nt;
}

template <class F>
void over_images(const Conv2dShape& s, int nt, F&& body) {
  if (nt <= 1) {
    body(0, (int64_t)0, s.N);
    return;
  }
  parallel_run(nt, [&](int tid, int n) {
    int64_t b, e;
    split(s.N, tid, n, b, e);
    body(tid, b, e);
  });
}


// ---- Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions ---------------------------------
// Each 4x4 output tile is A^T [ (G g G^T) .* (B^T d B) ] A over a 6x6 input tile d: 36
// multiplies per tile and channel pair instead of 144, i.e. the GEMM work drops 4x. For each
// of the 36 tile positions p the products summed over input channels form one GEMM,
// M_p (OC, tiles) = U_p (OC, C) · V_p (C, tiles), on the library GEMM. The transforms are
// laid out so that every inner loop runs along the tile column index (unit stride).
// NOTE: F(4x4, 3x3)'s transforms have entries up to 8 and 1/24, so float32 rounding grows
// by roughly 10x over a direct sum; the tests allow for that (see test_conv.py).

bool winograd_ok(const Conv2dShape& s) {
  return s.KH == 3 && s.KW == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 &&
         s.groups == 1 && s.C >= 32 && s.OC >= 32 && s.OH >= 8 && s.OW >= 8;
}

// The transformed input and product blocks (~0.8 MB each at 64 channels) of the calling
// thread, kept between calls. NOTE: fresh vectors cost a zero fill and, above malloc's mmap
// threshold, page faults on every call (~3% of a training step); contents are undefined,
// every user writes the part it reads first. Slots: 0 V, 1 M or Z.
float* wino_scratch(int slot, size_t n) {
  static thread_local std::vector<float> buf[2];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// The kernel transform G (6x3) of F(4x4, 3x3).
constexpr double kWinoG[6][3] = {{1. / 4, 0, 0},
                                 {-1. / 6, -1. / 6, -1. / 6},
                                 {-1. / 6, 1. / 6, -1. / 6},
                                 {1. / 24, 1. / 12, 1. / 6},
                                 {1. / 24, -1. / 12, 1. / 6},
                                 {0, 0, 1}};

// U (36, OC, C) = G g G^T for every (oc, c) 3x3 kernel g, in double then rounded once.
// NOTE: multiplies by the table's rounded reciprocals rather than dividing by 6, 12, 24
// (double divisions made this ~7% of a training step); the difference is an ulp of double,
// far below the float rounding that follows.
// NOTE: one output channel at a time into a (36, C) buffer, then 36 row copies: writing U
// directly puts 36 stores per kernel OC*C floats apart, a multiple of 4 KB for 64 channels,
// all in one L1 set (measured ~7% of a training step).
void winograd_weights(const Conv2dShape& s, const float* w, float* U) {
  const int64_t OC = s.OC, C = s.C;
  std::vector<float> row((size_t)(36 * C));
  for (int64_t oc = 0; oc < OC; ++oc) {
    for (int64_t c = 0; c < C; ++c) {
      const float* g = w + (oc * C + c) * 9;
      double t[6][3];
      for (int k = 0; k < 6; ++k)
        for (int j = 0; j < 3; ++j)
          t[k][j] = kWinoG[k][0] * g[j] + kWinoG[k][1] * g[3 + j] + kWinoG[k][2] * g[6 + j];
      for (int k = 0; k < 6; ++k)
        for (int l = 0; l < 6; ++l)
          row[(k * 6 + l) * C + c] =
              (float)(t[k][0] * kWinoG[l][0] + t[k][1] * kWinoG[l][1] + t[k][2] * kWinoG[l][2]);
    }
    for (int kl = 0; kl < 36; ++kl)
      std::memcpy(U + (kl * OC + oc) * C, row.data() + kl * C, sizeof(float) * C);
  }
}

// Tile geometry shared by the Winograd passes: TH x TW output tiles per image, cut into
// blocks of rb whole tile rows. Tiles are stored TWp = TW + 1 to a tile row (Tb = rb*TWp, the
// leading dimension of V, M and Z): the transforms then run over a whole block at once, never
// over one 14-tile row (a short loop leaves AVX-512 idle). NOTE: the extra tile per row is
// garbage the GEMM computes too (1/TWp more work) and the output transform skips; in the
// weight gradient its Z is zero, so it adds nothing to dU.
struct WinoGeom {
  int64_t TH, TW, TWp, rb, Tb, bpi, nblocks;
};
WinoGeom wino_geom(const Conv2dShape& s) {
  WinoGeom g;
  g.TH = (s.OH + 3) / 4;
  g.TW = (s.OW + 3) / 4;
  g.TWp = g.TW + 1;
  g.rb = std::clamp<int64_t>(kWinogradTiles / g.TW, 1, g.TH);
  g.Tb = g.rb * g.TWp;
  g.bpi = (g.TH + g.rb - 1) / g.rb;
  g.nblocks = s.N * g.bpi;
  return g;
}

// Per-thread scratch of the input transform: input rows split by column phase
// (q = 4*tw + phase) so tile columns are unit-stride, and their vertical transform.
struct WinoInputScratch {
  std::vector<float> rows, tv;
  explicit WinoInputScratch(const WinoGeom& g)
      : rows((size_t)(6 * 4 * g.rb * g.TWp)), tv((size_t)(6 * 4 * g.rb * g.TWp)) {}
};

const WinoKernels& wino_kernels() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return wino_kernels_avx512();
  if (active_isa() == Isa::avx2) return wino_kernels_avx2();
#endif
  return wino_kernels_generic();
}

// The transforms' description of tile rows [th0, th1) over planes of C channels, H x W.
WinoBlock wino_block(const WinoGeom& g, int64_t C, int64_t H, int64_t W, int64_t ph,
                     int64_t pw, int64_t th0, int64_t th1) {
  return WinoBlock{C, H, W, ph, pw, th0, th1, g.TW, g.Tb};
}

// V (36, C, Tb) = B^T d B for every channel and every tile of tile rows [th0, th1) of image n.
void winograd_input(const Conv2dShape& s, const WinoGeom& g, const float* x, int64_t n,
                    int64_t th0, int64_t th1, float* V, WinoInputScratch& sc) {
  wino_kernels().input(wino_block(g, s.C, s.H, s.W, s.ph, s.pw, th0, th1),
                       x + n * s.C * s.H * s.W, V, sc.rows.data(), sc.tv.data());
}

void winograd_fwd(const Conv2dShape& s, const float* x, const float* w, const float* b,
                  float* y, bool relu) {
  const int64_t C = s.C, OC = s.OC, OH = s.OH, OW = s.OW;
  const WinoGeom g = wino_geom(s);
  const int64_t TH = g.TH, rb = g.rb, Tb = g.Tb, blocks_per_image = g.bpi;
  const int64_t nblocks = g.nblocks;
  std::vector<float> U((size_t)(36 * OC * C));
  winograd_weights(s, w, U.data());
  const int64_t macs = s.N * OC * C * 9 * OH * OW;
  const int nt = macs < kParallelMacs ? 1 : (int)std::min<int64_t>(get_num_threads(), nblocks);
  const WinoKernels& wk = wino_kernels();
  // NOTE: blocks are claimed one at a time, not split up front: when another process holds
  // one of the two cores, a descheduled worker's share goes to the running thread instead of
  // the whole call waiting for it (measured under load: 2 threads slower than 1 with the
  // static split). Each block's output is independent of the thread, so results do not change.
  std::atomic<int64_t> next{0};
  auto body = [&](int, int) {
    float* V = wino_scratch(0, (size_t)(36 * C * Tb));
    float* M = wino_scratch(1, (size_t)(36 * OC * Tb));
    WinoInputScratch sc(g);
    std::vector<float> ot((size_t)(6 * 4 * Tb)), oq((size_t)(4 * 4 * Tb));
    for (int64_t blk; (blk = next.fetch_add(1, std::memory_order_relaxed)) < nblocks;) {
      const int64_t n = blk / blocks_per_image;
      const int64_t th0 = (blk % blocks_per_image) * rb, th1 = std::min(TH, th0 + rb);
      const int64_t tb = (th1 - th0) * g.TWp;
      winograd_input(s, g, x, n, th0, th1, V, sc);
      for (int p = 0; p < 36; ++p)
        gemm_f32(false, false, OC, tb, C, U.data() + p * OC * C, C, V + p * C * Tb, Tb,
                 M + p * OC * Tb, Tb, false, nullptr);
      // y tile = A^T M A, then bias and activation, clipped at the output's edges.
      wk.output(wino_block(g, OC, OH, OW, 0, 0, th0, th1), M, b, relu,
                y + n * OC * OH * OW, ot.data(), oq.data());
    }
  };
  if (nt <= 1) body(0, 1);
  else parallel_run(nt, body);
}


// Weight gradient of a 3x3 stride-1 convolution by Winograd F(4x4, 3x3). With a tile's
// output Y = A^T (U .* V) A and U = G g G^T, the gradient of sum(E .* Y) (E: the tile's 4x4
// output gradient) is dL/dU = (A E A^T) .* V, summed over tiles, and dL/dg = G^T dL/dU G.
// For each tile position p the sum over tiles is one GEMM, dU_p (OC, C) += Z_p (OC, tiles) ·
// V_p (C, tiles)^T with Z = A E A^T: 4x fewer multiplies than the im2col GEMM. V is the
// forward's input transform. Each thread accumulates its own dU over its tile blocks.
//   x: (N, C, H, W)  dz: (N, OC, OH, OW) (already through the ReLU mask)  dw: (OC, C, 3, 3),
//   overwritten.
// NOTE: dU is accumulated in float over all N*tiles blocks (like the im2col GEMM's K sum);
// only the final G^T dU G runs in double.
void winograd_wgrad(const Conv2dShape& s, const float* x, const float* dz, float* dw) {
  const int64_t C = s.C, OC = s.OC, OH = s.OH, OW = s.OW;
  const WinoGeom g = wino_geom(s);
  const int64_t TH = g.TH, rb = g.rb, Tb = g.Tb;
  const int64_t macs = s.N * OC * C * 9 * OH * OW;
  const int nt =
      macs < kParallelMacs ? 1 : (int)std::min<int64_t>(get_num_threads(), g.nblocks);
  std::vector<std::vector<float>> dU(nt);
  auto body = [&](int tid, int ntt) {
    int64_t b0, b1;
    split(g.nblocks, tid, ntt, b0, b1);
    dU[tid].assign((size_t)(36 * OC * C), 0.f);
    float* dUt = dU[tid].data();
    float* V = wino_scratch(0, (size_t)(36 * C * Tb));
    float* Z = wino_scratch(1, (size_t)(36 * OC * Tb));
    WinoInputScratch sc(g);
    std::vector<float> ge((size_t)(16 * Tb)), he((size_t)(24 * Tb));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n = blk / g.bpi;
      const int64_t th0 = (blk % g.bpi) * rb, th1 = std::min(TH, th0 + rb);
      const int64_t tb = (th1 - th0) * g.TWp;
      winograd_input(s, g, x, n, th0, th1, V, sc);
      wino_kernels().grad(wino_block(g, OC, OH, OW, 0, 0, th0, th1), dz + n * OC * OH * OW,
                          Z, ge.data(), he.data());
      for (int p = 0; p < 36; ++p)
        gemm_f32(false, true, OC, C, tb, Z + p * OC * Tb, Tb, V + p * C * Tb, Tb,
                 dUt + p * OC * C, C, true, nullptr);
    }
  };
  if (nt <= 1) body(0, 1);
  else parallel_run(nt, body);
  float* dU0 = dU[0].data();
  for (int t = 1; t < nt; ++t)
    for (int64_t i = 0; i < 36 * OC * C; ++i) dU0[i] += dU[t][i];
  // dw = G^T dU G per (oc, c), G the 6x3 kernel transform of winograd_weights.
  // NOTE: dU's 36 rows of one output channel are copied together first (read in place they
  // are OC*C floats apart, one L1 set for 64 channels: see winograd_weights).
  const auto& G = kWinoG;
  std::vector<float> row((size_t)(36 * C));
  for (int64_t oc = 0; oc < OC; ++oc) {
    for (int kl = 0; kl < 36; ++kl)
      std::memcpy(row.data() + kl * C, dU0 + (kl * OC + oc) * C, sizeof(float) * C);
    for (int64_t c = 0; c < C; ++c) {
      double t[6][3];  // t = dU G
      for (int k = 0; k < 6; ++k)
        for (int j = 0; j < 3; ++j) {
          double a = 0;
          for (int l = 0; l < 6; ++l) a += (double)row[(k * 6 + l) * C + c] * G[l][j];
          t[k][j] = a;
        }
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          double a = 0;
          for (int k = 0; k < 6; ++k) a += G[k][i] * t[k][j];
          dw[(oc * C + c) * 9 + i * 3 + j] = (float)a;
        }
    }
  }
}


// ---- "wide" im2col for stride-1 convolutions of small images ----------------------------
// Each block of m images is copied once into a zero-padded buffer xp, per channel rows of
// pitch Wq = W + pw (the pw zeros at the start of a row are also the previous row's right
// padding) and images every Hq = H + ph rows (the ph zero rows between two images are the
// bottom padding of one and the top padding of the next), with ph zero rows at the top and
// ph + 1 at the bottom. On that buffer an output position is q = (j*Hq + oh)*Wq + ow, and the
// input under kernel tap (kh, kw) is xp[c][q + kh*dh*Wq + kw*dw]: the same shift for every q.
// So each col row (one (c, kh, kw)) is ONE contiguous copy of Nw floats, where the ordinary
// im2col makes OH short row copies per image (for 14-wide images those dominated the conv:
// ~5 ns each, 2000 per image). The price: the GEMM also computes the positions with
// oh >= OH or ow >= OW (Hq*Wq/(OH*OW) - 1 more work: 15% for 14x14 'same' 3x3, at most 1x,
// see wide_ok), which the output copy skips and which carry zero gradient in the backward.
struct WideGeom {
  int64_t Hq, Wq;      // image pitch (rows), row pitch
  int64_t nb;          // images per block
  int64_t OH, OW, ph;
  int64_t Nw(int64_t m) const { return ((m - 1) * Hq + OH - 1) * Wq + OW; }
  int64_t plane(int64_t m) const { return (m * Hq + ph + 1) * Wq; }
};

bool wide_ok(const Conv2dShape& s) {
  const int64_t HWq = (s.H + s.ph) * (s.W + s.pw);
  // The shared padding needs every output inside its row/image pitch: OW <= Wq, OH <= Hq,
  // i.e. padding at most the kernel's extent minus one.
  return s.sh == 1 && s.sw == 1 && !s.direct() && s.N > 0 && s.P() > 0 &&
         s.pw <= (s.KW - 1) * s.dw && s.ph <= (s.KH - 1) * s.dh && HWq <= 2 * s.P() &&
         images_per_block(s) > 1;
}

WideGeom wide_geom(const Conv2dShape& s) {
  WideGeom g;
  g.Hq = s.H + s.ph;
  g.Wq = s.W + s.pw;
  g.OH = s.OH;
  g.OW = s.OW;
  g.ph = s.ph;
  g.nb = std::max<int64_t>(1, kColFloats / std::max<int64_t>(1, s.K() * g.Hq * g.Wq));
  return g;
}

// xp (Cg planes of plane(m) floats) = images [n, n+m) of group g, zero-padded as above.
void wide_pad(const Conv2dShape& s, const WideGeom& w, const float* x, int64_t n, int64_t m,
              int64_t g, float* xp) {
  const int64_t Cg = s.cg(), pl = w.plane(m);
  std::memset(xp, 0, sizeof(float) * Cg * pl);
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t j = 0; j < m; ++j) {
      const float* src = x + ((n + j) * s.C + g * Cg + c) * s.H * s.W;
      float* dst = xp + c * pl + (s.ph + j * w.Hq) * w.Wq + s.pw;
      for (int64_t ih = 0; ih < s.H; ++ih)
        std::memcpy(dst + ih * w.Wq, src + ih * s.W, sizeof(float) * s.W);
    }
}

// Shift of col row r = (c, kh, kw) in xp.
inline int64_t wide_shift(const Conv2dShape& s, const WideGeom& w, int64_t m, int64_t r) {
  const int64_t kw = r % s.KW, kh = (r / s.KW) % s.KH, c = r / (s.KW * s.KH);
  return c * w.plane(m) + kh * s.dh * w.Wq + kw * s.dw;
}

// col (K, Nw) from xp.
void wide_col(const Conv2dShape& s, const WideGeom& w, const float* xp, int64_t m, float* col) {
  const int64_t Nw = w.Nw(m);
  for (int64_t r = 0; r < s.K(); ++r)
    std::memcpy(col + r * Nw, xp + wide_shift(s, w, m, r), sizeof(float) * Nw);
}

void wide_fwd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
              bool relu) {
  const WideGeom wg = wide_geom(s);
  const int64_t K = s.K(), OCg = s.ocg(), Cg = s.cg();
  over_images(s, image_threads(s), [&](int, int64_t n0, int64_t n1) {
    const int64_t mcap = std::min(wg.nb, n1 - n0);
    std::vector<float> xp((size_t)(Cg * wg.plane(mcap))), col((size_t)(K * wg.Nw(mcap)));
    std::vector<float> tmp((size_t)(OCg * wg.Nw(mcap)));
    for (int64_t n = n0; n < n1; n += wg.nb) {
      const int64_t m = std::min(wg.nb, n1 - n), Nw = wg.Nw(m);
      for (int64_t g = 0; g < s.groups; ++g) {
        wide_pad(s, wg, x, n, m, g, xp.data());
        wide_col(s, wg, xp.data(), m, col.data());
        gemm_f32(false, false, OCg, Nw, K, w + g * OCg * K, K, col.data(), Nw, tmp.data(), Nw,
                 false, nullptr);
        // The valid positions back to NCHW, with bias and activation on the way.
        for (int64_t j = 0; j < m; ++j)
          for (int64_t o = 0; o < OCg; ++o) {
            const int64_t oc = g * OCg + o;
            const float bv = b ? b[oc] : 0.f;
            float* dst = y + ((n + j) * s.OC + oc) * s.P();
            for (int64_t oh = 0; oh < s.OH; ++oh) {
              const float* src = tmp.data() + o * Nw + (j * wg.Hq + oh) * wg.Wq;
              float* d = dst + oh * s.OW;
              if (relu) {
                for (int64_t ow = 0; ow < s.OW; ++ow) d[ow] = std::max(src[ow] + bv, 0.f);
              } else {
                for (int64_t ow = 0; ow < s.OW; ++ow) d[ow] = src[ow] + bv;
              }
            }
          }
      }
    }
  });
}

// Taps (C/groups*KH*KW) up to which the wide weight gradient takes conv_wgrad_dots: measured
// on 1->16 channels 3x3 28x28 (9 taps), 64 images: GEMM 0.94 ms, dots see RESULTS.md.
constexpr int64_t kDotsMaxTaps = 32;

ConvDotsFn conv_dots() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return conv_wgrad_dots_avx512;
  if (active_isa() == Isa::avx2) return conv_wgrad_dots_avx2;
#endif
  return conv_wgrad_dots_generic;
}

// Gradients on the wide layout: dzw (OCg, Nw) holds the output gradient (through the ReLU
// mask) at the valid positions and zero elsewhere, so dW_g += dzw · colᵀ and
// dcol = W_gᵀ · dzw, scattered back by the same whole-row shifts (dcol is zero at the
// positions no output covers).
void wide_bwd(const Conv2dShape& s, const float* dy, const float* y, const float* x,
              const float* w, float* dx, float* dw, float* db, bool relu) {
  const WideGeom wg = wide_geom(s);
  const int64_t K = s.K(), OCg = s.ocg(), Cg = s.cg(), P = s.P();
  const int nt = image_threads(s);
  // Few taps (a first layer): dot products instead of a GEMM with K of its NR columns used.
  const ConvDotsFn dots = K <= kDotsMaxTaps ? conv_dots() : nullptr;
  std::vector<std::vector<float>> dw_loc(nt);
  std::vector<std::vector<double>> db_loc(nt);
  over_images(s, nt, [&](int tid, int64_t n0, int64_t n1) {
    float* dwt = nullptr;
    if (dw) {
      dw_loc[tid].assign((size_t)(s.OC * K), 0.f);
      dwt = dw_loc[tid].data();
    }
    if (db) db_loc[tid].assign((size_t)s.OC, 0.0);
    const int64_t mcap = std::min(wg.nb, n1 - n0), Ncap = wg.Nw(mcap);
    std::vector<float> xp((size_t)(Cg * wg.plane(mcap))), dzw((size_t)(OCg * Ncap));
    std::vector<float> col(dw && !dots ? (size_t)(K * Ncap) : 0);
    std::vector<float> dcol(dx ? (size_t)(K * Ncap) : 0);
    std::vector<int64_t> shift((size_t)K);
    for (int64_t n = n0; n < n1; n += wg.nb) {
      const int64_t m = std::min(wg.nb, n1 - n), Nw = wg.Nw(m);
      for (int64_t g = 0; g < s.groups; ++g) {
        std::fill(dzw.begin(), dzw.begin() + OCg * Nw, 0.f);
        for (int64_t o = 0; o < OCg; ++o) {
          const int64_t oc = g * OCg + o;
          for (int64_t j = 0; j < m; ++j) {
            const float* src = dy + ((n + j) * s.OC + oc) * P;
            const float* yv = relu ? y + ((n + j) * s.OC + oc) * P : nullptr;
            float* dst = dzw.data() + o * Nw + j * wg.Hq * wg.Wq;
            for (int64_t oh = 0; oh < s.OH; ++oh) {
              const float* sr = src + oh * s.OW;
              float* d = dst + oh * wg.Wq;
              if (relu) {
                const float* yr = yv + oh * s.OW;
                // NOTE: unconditional loads so the select vectorises (see the im2col path).
                for (int64_t ow = 0; ow < s.OW; ++ow) {
                  const float v = sr[ow];
                  d[ow] = yr[ow] <= 0.f ? 0.f : v;
                }
              } else {
                for (int64_t ow = 0; ow < s.OW; ++ow) d[ow] = sr[ow];
              }
            }
          }
          // The positions no output covers are zero: the whole wide row sums the block.
          if (db) db_loc[tid][oc] += row_sum(dzw.data() + o * Nw, Nw);
        }
        if (!dw && !dx) continue;
        wide_pad(s, wg, x, n, m, g, xp.data());
        if (dw && dots) {
          for (int64_t r = 0; r < K; ++r) shift[r] = wide_shift(s, wg, m, r);
          dots(OCg, K, Nw, dzw.data(), Nw, xp.data(), shift.data(), dwt + g * OCg * K, K);
        } else if (dw) {
          wide_col(s, wg, xp.data(), m, col.data());
          gemm_f32(false, true, OCg, K, Nw, dzw.data(), Nw, col.data(), Nw, dwt + g * OCg * K,
                   K, true, nullptr);
        }
        if (dx) {
          gemm_f32(true, false, K, Nw, OCg, w + g * OCg * K, K, dzw.data(), Nw, dcol.data(), Nw,
                   false, nullptr);
          // Scatter into the padded buffer (reused: the input copy is no longer needed),
          // then the interior back to dx.
          std::fill(xp.begin(), xp.begin() + Cg * wg.plane(m), 0.f);
          for (int64_t r = 0; r < K; ++r) {
            float* __restrict d = xp.data() + wide_shift(s, wg, m, r);
            const float* __restrict src = dcol.data() + r * Nw;
            for (int64_t q = 0; q < Nw; ++q) d[q] += src[q];
          }
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t j = 0; j < m; ++j) {
              const float* src = xp.data() + c * wg.plane(m) + (s.ph + j * wg.Hq) * wg.Wq + s.pw;
              float* dst = dx + ((n + j) * s.C + g * Cg + c) * s.H * s.W;
              for (int64_t ih = 0; ih < s.H; ++ih)
                std::memcpy(dst + ih * s.W, src + ih * wg.Wq, sizeof(float) * s.W);
            }
        }
      }
    }
  });
  if (dw) {
    std::fill(dw, dw + s.OC * K, 0.f);
    for (int t = 0; t < nt; ++t)
      if (!dw_loc[t].empty())
        for (int64_t i = 0; i < s.OC * K; ++i) dw[i] += dw_loc[t][i];
  }
  if (db)
    for (int64_t oc = 0; oc < s.OC; ++oc) {
      double acc = 0;
      for (int t = 0; t < nt; ++t)
        if (!db_loc[t].empty()) acc += db_loc[t][oc];
      db[oc] = (float)acc;
    }
}

}  // namespace

std::string conv2d_algorithms(const Conv2dShape& s) {
  const bool wino = winograd_ok(s) && winograd_enabled(), wide = wide_ok(s);
  const char* plain = s.direct() ? "direct" : "im2col";
  std::string fwd = wino ? "winograd" : wide ? "wide" : plain;
  std::string dx = wino && s.ph <= 2 && s.pw <= 2 ? "winograd" : wide ? "wide" : plain;
  std::string dw = wino ? "winograd" : wide ? (s.K() <= kDotsMaxTaps ? "dots" : "wide") : plain;
  return "fwd=" + fwd + " dx=" + dx + " dw=" + dw;
}

void conv2d_fwd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                bool relu) {
  const int64_t K = s.K(), P = s.P(), OCg = s.ocg(), Cg = s.cg(), HW = s.H * s.W;
  const int64_t rows = rows_per_block(s);
  const int nt = image_threads(s);
  if (winograd_ok(s) && winograd_enabled()) {
    winograd_fwd(s, x, w, b, y, relu);
    return;
  }
  if (wide_ok(s)) {
    wide_fwd(s, x, w, b, y, relu);
    return;
  }
  const int64_t nb = images_per_block(s);
  if (nb > 1) {
    over_images(s, nt, [&](int, int64_t n0, int64_t n1) {
      const int64_t cap = std::min(nb, n1 - n0) * P;
      std::vector<float> col((size_t)(K * cap)), tmp((size_t)(OCg * cap));
      for (int64_t n = n0; n < n1; n += nb) {
        const int64_t m = std::min(nb, n1 - n), L = m * P;
        for (int64_t g = 0; g < s.groups; ++g) {
          for (int64_t j = 0; j < m; ++j)
            im2col(s, x + ((n + j) * s.C + g * Cg) * HW, 0, s.OH, col.data() + j * P, L);
          gemm_f32(false, false, OCg, L, K, w + g * OCg * K, K, col.data(), L, tmp.data(), L,
                   false, nullptr);
          // Back to NCHW with bias and activation on the way (see the NOTE below).
          for (int64_t j = 0; j < m; ++j)
            for (int64_t o = 0; o < OCg; ++o) {
              const int64_t oc = g * OCg + o;
              const float bv = b ? b[oc] : 0.f;
              const float* src = tmp.data() + o * L + j * P;
              float* dst = y + ((n + j) * s.OC + oc) * P;
              for (int64_t i = 0; i < P; ++i) dst[i] = act_out(src[i] + bv, relu);
            }
        }
      }
    });
    return;
  }
  over_images(s, nt, [&](int, int64_t n0, int64_t n1) {
    std::vector<float> col(s.direct() ? 0 : (size_t)(K * rows * s.OW));
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* xg = x + (n * s.C + g * Cg) * HW;
        const float* wg = w + g * OCg * K;
        float* yg = y + (n * s.OC + g * OCg) * P;
        if (s.direct()) {
          gemm_f32(false, false, OCg, P, K, wg, K, xg, P, yg, P, false, nullptr);
          continue;
        }
        for (int64_t oh0 = 0; oh0 < s.OH; oh0 += rows) {
          const int64_t oh1 = std::min(s.OH, oh0 + rows), pc = (oh1 - oh0) * s.OW;
          im2col(s, xg, oh0, oh1, col.data(), pc);
          gemm_f32(false, false, OCg, pc, K, wg, K, col.data(), pc, yg + oh0 * s.OW, P, false,
                   nullptr);
        }
      }
      // NOTE: the GEMM's epilogue adds bias per column, but here bias is per row (channel) of
      // an NCHW image; this pass runs while the image's output is still in cache.
      if (b || relu) {
        for (int64_t oc = 0; oc < s.OC; ++oc) {
          float* v = y + (n * s.OC + oc) * P;
          const float bv = b ? b[oc] : 0.f;
          if (relu) {
            for (int64_t i = 0; i < P; ++i) v[i] = std::max(v[i] + bv, 0.f);
          } else {
            for (int64_t i = 0; i < P; ++i) v[i] += bv;
          }
        }
      }
    }
  });
}

namespace {
void conv2d_bwd_im2col(const Conv2dShape& s, const float* dy, const float* y, const float* x,
                       const float* w, float* dx, float* dw, float* db, bool relu);
}  // namespace

void conv2d_bwd(const Conv2dShape& s, const float* dy, const float* y, const float* x,
                const float* w, float* dx, float* dw, float* db, bool relu) {
  if (!(winograd_enabled() && winograd_ok(s) && (dx || dw))) {
    conv2d_bwd_im2col(s, dy, y, x, w, dx, dw, db, relu);
    return;
  }
  // Winograd for the input gradient (when the padding allows, see below) and the weight
  // gradient; both want the output gradient through the ReLU mask, made once here.
  const int64_t P = s.P();
  std::vector<float> masked;
  const float* dz = dy;
  if (relu) {
    masked.resize((size_t)(s.N * s.OC * P));
    float* mz = masked.data();
    parallel_for(s.N * s.OC * P, 1 << 15, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) {
        const float v = dy[i];  // unconditional load: the select vectorises
        mz[i] = y[i] <= 0.f ? 0.f : v;
      }
    });
    dz = mz;
  }
  if (dx) {
    if (s.ph <= 2 && s.pw <= 2) {
      // The input gradient of a 3x3 stride-1 convolution is itself one: dz convolved with the
      // kernel flipped in both directions and its channel axes swapped, padding 2 - p (so the
      // output is H x W again), which takes the Winograd forward path.
      std::vector<float> wt((size_t)(s.C * s.OC * 9));
      for (int64_t oc = 0; oc < s.OC; ++oc)
        for (int64_t c = 0; c < s.C; ++c)
          for (int i = 0; i < 9; ++i)
            wt[(c * s.OC + oc) * 9 + i] = w[(oc * s.C + c) * 9 + 8 - i];
      Conv2dShape t = s;
      t.C = s.OC; t.H = s.OH; t.W = s.OW;
      t.OC = s.C; t.OH = s.H; t.OW = s.W;
      t.ph = 2 - s.ph; t.pw = 2 - s.pw;
      winograd_fwd(t, dz, wt.data(), nullptr, dx, false);
    } else {
      conv2d_bwd_im2col(s, dz, nullptr, x, w, dx, nullptr, nullptr, false);
    }
  }
  if (dw) winograd_wgrad(s, x, dz, dw);
  if (db) {
    // NOTE: in double, as the im2col path: N*OH*OW terms per channel.
    for (int64_t oc = 0; oc < s.OC; ++oc) {
      double acc = 0;
      for (int64_t n = 0; n < s.N; ++n) acc += row_sum(dz + (n * s.OC + oc) * P, P);
      db[oc] = (float)acc;
    }
  }
}

namespace {
// Any shape: im2col/col2im around the library GEMM.
void conv2d_bwd_im2col(const Conv2dShape& s, const float* dy, const float* y, const float* x,
                       const float* w, float* dx, float* dw, float* db, bool relu) {
  if (wide_ok(s)) {
    wide_bwd(s, dy, y, x, w, dx, dw, db, relu);
    return;
  }
  const int64_t K = s.K(), P = s.P(), OCg = s.ocg(), Cg = s.cg(), HW = s.H * s.W;
  const int64_t rows = rows_per_block(s);
  const int nt = image_threads(s);
  // Per-thread weight/bias gradient partials (thread 0 writes the outputs directly), summed
  // at the end: images are independent, their weight gradients add.
  std::vector<std::vector<float>> dw_loc(nt);
  std::vector<std::vector<double>> db_loc(nt);
  if (dw) std::fill(dw, dw + s.OC * K, 0.f);
  const int64_t nb = images_per_block(s);
  if (nb > 1) {
    over_images(s, nt, [&](int tid, int64_t n0, int64_t n1) {
      float* dwt = dw;
      if (dw && tid > 0) {
        dw_loc[tid].assign((size_t)(s.OC * K), 0.f);
        dwt = dw_loc[tid].data();
      }
      if (db) db_loc[tid].assign((size_t)s.OC, 0.0);
      const int64_t cap = std::min(nb, n1 - n0) * P;
      std::vector<float> dzt((size_t)(OCg * cap));
      std::vector<float> col(dw ? (size_t)(K * cap) : 0), dcol(dx ? (size_t)(K * cap) : 0);
      for (int64_t n = n0; n < n1; n += nb) {
        const int64_t m = std::min(nb, n1 - n), L = m * P;
        if (dx) std::fill(dx + n * s.C * HW, dx + (n + m) * s.C * HW, 0.f);
        for (int64_t g = 0; g < s.groups; ++g) {
          // Gather the group's output gradient as one (OCg, m*P) matrix, through the ReLU's
          // derivative (y > 0 passes it), summing the bias gradient on the way.
          for (int64_t o = 0; o < OCg; ++o) {
            const int64_t oc = g * OCg + o;
            double acc = 0;
            for (int64_t j = 0; j < m; ++j) {
              const float* src = dy + ((n + j) * s.OC + oc) * P;
              float* dst = dzt.data() + o * L + j * P;
              if (relu) {
                const float* yv = y + ((n + j) * s.OC + oc) * P;
                // NOTE: both operands loaded unconditionally so the select vectorises (a
                // conditional load of src compiles to a mispredicted branch per element).
                for (int64_t i = 0; i < P; ++i) {
                  const float v = src[i];
                  dst[i] = yv[i] <= 0.f ? 0.f : v;
                }
              } else {
                std::memcpy(dst, src, sizeof(float) * P);
              }
              // NOTE: see the per-image path: double keeps the bias-gradient sum exact
              // enough not to depend on the thread split.
              if (db) acc += row_sum(dst, P);
            }
            if (db) db_loc[tid][oc] += acc;
          }
          if (!dw && !dx) continue;
          const float* wg = w + g * OCg * K;
          if (dw) {
            for (int64_t j = 0; j < m; ++j)
              im2col(s, x + ((n + j) * s.C + g * Cg) * HW, 0, s.OH, col.data() + j * P, L);
            gemm_f32(false, true, OCg, K, L, dzt.data(), L, col.data(), L, dwt + g * OCg * K, K,
                     true, nullptr);
          }
          if (dx) {
            gemm_f32(true, false, K, L, OCg, wg, K, dzt.data(), L, dcol.data(), L, false,
                     nullptr);
            for (int64_t j = 0; j < m; ++j)
              col2im(s, dcol.data() + j * P, 0, s.OH, dx + ((n + j) * s.C + g * Cg) * HW, L);
          }
        }
      }
    });
  } else {
  over_images(s, nt, [&](int tid, int64_t n0, int64_t n1) {
    float* dwt = dw;
    if (dw && tid > 0) {
      dw_loc[tid].assign((size_t)(s.OC * K), 0.f);
      dwt = dw_loc[tid].data();
    }
    if (db) db_loc[tid].assign((size_t)s.OC, 0.0);
    const bool need_col = !s.direct();
    std::vector<float> col(need_col && dw ? (size_t)(K * rows * s.OW) : 0);
    std::vector<float> dcol(need_col && dx ? (size_t)(K * rows * s.OW) : 0);
    std::vector<float> mask(relu ? (size_t)(s.OC * P) : 0);
    for (int64_t n = n0; n < n1; ++n) {
      const float* dzn = dy + n * s.OC * P;
      if (relu) {
        // ReLU's derivative from its output: y <= 0 blocks the gradient, y > 0 (or NaN, as
        // PyTorch's threshold_backward) passes it.
        const float* yn = y + n * s.OC * P;
        for (int64_t i = 0; i < s.OC * P; ++i) {
          const float v = dzn[i];  // unconditional load: see the NOTE in the batched path
          mask[i] = yn[i] <= 0.f ? 0.f : v;
        }
        dzn = mask.data();
      }
      if (db) {
        // NOTE: the bias gradient sums N*OH*OW terms; double keeps that sum exact enough
        // that it does not depend on the thread split.
        for (int64_t oc = 0; oc < s.OC; ++oc) {
          db_loc[tid][oc] += row_sum(dzn + oc * P, P);
        }
      }
      if (!dw && !dx) continue;
      float* dxn = dx ? dx + n * s.C * HW : nullptr;
      if (dx && need_col) std::fill(dxn, dxn + s.C * HW, 0.f);
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* xg = x + (n * s.C + g * Cg) * HW;
        const float* wg = w + g * OCg * K;
        const float* dzg = dzn + g * OCg * P;
        float* dwg = dw ? dwt + g * OCg * K : nullptr;
        float* dxg = dx ? dxn + g * Cg * HW : nullptr;
        if (!need_col) {
          // 1x1 stride 1: dW_g += dz_g · x_gᵀ, dx_g = W_gᵀ · dz_g, straight on the planes.
          if (dw) gemm_f32(false, true, OCg, K, P, dzg, P, xg, P, dwg, K, true, nullptr);
          if (dx) gemm_f32(true, false, K, P, OCg, wg, K, dzg, P, dxg, P, false, nullptr);
          continue;
        }
        for (int64_t oh0 = 0; oh0 < s.OH; oh0 += rows) {
          const int64_t oh1 = std::min(s.OH, oh0 + rows), pc = (oh1 - oh0) * s.OW;
          const float* dzb = dzg + oh0 * s.OW;
          if (dw) {
            im2col(s, xg, oh0, oh1, col.data(), pc);
            gemm_f32(false, true, OCg, K, pc, dzb, P, col.data(), pc, dwg, K, true, nullptr);
          }
          if (dx) {
            gemm_f32(true, false, K, pc, OCg, wg, K, dzb, P, dcol.data(), pc, false, nullptr);
            col2im(s, dcol.data(), oh0, oh1, dxg, pc);
          }
        }
      }
    }
  });
  }
  if (dw)
    for (int t = 1; t < nt; ++t)
      if (!dw_loc[t].empty())
        for (int64_t i = 0; i < s.OC * K; ++i) dw[i] += dw_loc[t][i];
  if (db) {
    for (int64_t oc = 0; oc < s.OC; ++oc) {
      double acc = 0;
      for (int t = 0; t < nt; ++t)
        if (!db_loc[t].empty()) acc += db_loc[t][oc];
      db[oc] = (float)acc;
    }
  }
}
}  // namespace

}  // namespace fastnn
