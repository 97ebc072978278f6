// Body of wino_kernels_<isa> (see winograd.h); included by winograd_<isa>.cpp with
// FASTNN_WINO_NAME set, so one source is compiled with each ISA's flags.
#include <algorithm>
#include <cstdint>

#include "cpu/kernels/winograd.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace fastnn {
namespace {

// dst[t] = src[4*t] for t < n: splits a row into one column phase of the 4x4 tiles.
// NOTE: with 14-16 tiles to a row the compiler leaves this loop scalar (one vector is 16
// lanes); the AVX-512 build deinterleaves 64 floats with two permutes per 32 instead, reading
// only the 4*(n-1)+1 floats the scalar loop reads (masked loads; a part with an empty mask is
// not issued).
static inline void gather_stride4(const float* __restrict src, float* __restrict dst,
                                  int64_t n) {
#ifdef __AVX512F__
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24,
                                        28);
  for (; n > 0; n -= 16, src += 64, dst += 16) {
    const int64_t cnt = 4 * (std::min<int64_t>(n, 16) - 1) + 1;  // floats read
    __m512 v[4];
    for (int k = 0; k < 4; ++k) {
      const int64_t left = cnt - 16 * k;
      if (left >= 16) {
        v[k] = _mm512_loadu_ps(src + 16 * k);
      } else if (left > 0) {
        v[k] = _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1), src + 16 * k);
      } else {
        v[k] = _mm512_setzero_ps();
      }
    }
    const __m512 lo = _mm512_permutex2var_ps(v[0], idx, v[1]);  // lanes 0-7 useful
    const __m512 hi = _mm512_permutex2var_ps(v[2], idx, v[3]);
    const __m512 r = _mm512_shuffle_f32x4(lo, hi, 0x44);  // lo[0:8], hi[0:8]
    if (n >= 16) {
      _mm512_storeu_ps(dst, r);
    } else {
      _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1), r);
    }
  }
#else
  for (int64_t t = 0; t < n; ++t) dst[t] = src[4 * t];
#endif
}

// B^T applied to six rows of n values each (out[k] = sum_i B^T[k][i] in[i]). Separate
// restrict pointers: with arrays of pointers the compiler cannot rule out aliasing and
// leaves the loop scalar.
static inline void winograd_bt6(const float* __restrict d0, const float* __restrict d1,
                         const float* __restrict d2, const float* __restrict d3,
                         const float* __restrict d4, const float* __restrict d5,
                         float* __restrict o0, float* __restrict o1, float* __restrict o2,
                         float* __restrict o3, float* __restrict o4, float* __restrict o5,
                         int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    o0[t] = 4.f * d0[t] - 5.f * d2[t] + d4[t];
    o1[t] = -4.f * (d1[t] + d2[t]) + d3[t] + d4[t];
    o2[t] = 4.f * (d1[t] - d2[t]) - d3[t] + d4[t];
    o3[t] = 2.f * (d3[t] - d1[t]) - d2[t] + d4[t];
    o4[t] = 2.f * (d1[t] - d3[t]) - d2[t] + d4[t];
    o5[t] = 4.f * d1[t] - 5.f * d3[t] + d5[t];
  }
}
static inline void winograd_bt(const float* const in[6], float* const out[6], int64_t n) {
  winograd_bt6(in[0], in[1], in[2], in[3], in[4], in[5], out[0], out[1], out[2], out[3],
               out[4], out[5], n);
}


// A^T applied to six rows of n values (out[r] = sum_k A^T[r][k] in[k]).
static inline void winograd_at6(const float* __restrict m0, const float* __restrict m1,
                         const float* __restrict m2, const float* __restrict m3,
                         const float* __restrict m4, const float* __restrict m5,
                         float* __restrict o0, float* __restrict o1, float* __restrict o2,
                         float* __restrict o3, int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    const float a = m1[t] + m2[t], b = m1[t] - m2[t];
    const float c = m3[t] + m4[t], d = m3[t] - m4[t];
    o0[t] = m0[t] + a + c;
    o1[t] = b + 2.f * d;
    o2[t] = a + 4.f * c;
    o3[t] = b + 8.f * d + m5[t];
  }
}
static inline void winograd_at(const float* const m[6], float* const o[4], int64_t n) {
  winograd_at6(m[0], m[1], m[2], m[3], m[4], m[5], o[0], o[1], o[2], o[3], n);
}


// A applied to four rows of n values (out[k] = sum_r A[k][r] in[r], A = (A^T)^T is 6x4):
// the transform of a 4x4 tile of the output gradient in the weight gradient.
static inline void winograd_a6(const float* __restrict e0, const float* __restrict e1,
                        const float* __restrict e2, const float* __restrict e3,
                        float* __restrict o0, float* __restrict o1, float* __restrict o2,
                        float* __restrict o3, float* __restrict o4, float* __restrict o5,
                        int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    const float s02 = e0[t] + e2[t], s13 = e1[t] + e3[t];
    const float f02 = e0[t] + 4.f * e2[t], f13 = 2.f * e1[t] + 8.f * e3[t];
    o0[t] = e0[t];
    o1[t] = s02 + s13;
    o2[t] = s02 - s13;
    o3[t] = f02 + f13;
    o4[t] = f02 - f13;
    o5[t] = e3[t];
  }
}


void wino_input(const WinoBlock& b, const float* x, float* V, float* rows, float* tv) {
  const int64_t C = b.C, H = b.H, W = b.W, TWp = b.TW + 1, Tb = b.Tb;
  const int64_t th0 = b.th0, th1 = b.th1;
  const int64_t RL = (th1 - th0) * TWp;  // one phase row across the block's tile rows
  // The block's input rows [r0, r1) of a channel are one contiguous run of floats.
  const int64_t r0 = std::max<int64_t>(0, 4 * th0 - b.ph);
  const int64_t r1 = std::min<int64_t>(H, 4 * (th1 - 1) - b.ph + 6);
  for (int64_t c = 0; c < C; ++c) {
    const float* xc = x + c * H * W;
    // NOTE: the next channel's rows are requested now: the phase gathers below wait on
    // these loads (measured: ~40% of this function's time on the first touch of each row).
    if (c + 1 < C && r1 > r0)
      for (const float* p = xc + H * W + r0 * W; p < xc + H * W + r1 * W; p += 16)
        __builtin_prefetch(p);
    // Input rows split by column phase (q = 4*tw + phase) so tile columns are unit-stride.
    for (int64_t th = th0; th < th1; ++th) {
      for (int i = 0; i < 6; ++i) {
        const int64_t r = 4 * th - b.ph + i;
        for (int m = 0; m < 4; ++m) {
          float* dst = rows + (i * 4 + m) * RL + (th - th0) * TWp;
          if (r < 0 || r >= H) {
            for (int64_t t = 0; t < TWp; ++t) dst[t] = 0.f;
            continue;
          }
          const float* xr = xc + r * W;
          // Columns q = 4t + m - pw inside [0, W) for t in [lo, hi): the middle copies
          // without a bounds test per element.
          const int64_t off = m - b.pw;
          const int64_t lo = std::min(TWp, off >= 0 ? (int64_t)0 : (-off + 3) / 4);
          const int64_t hi = std::max(lo, std::min(TWp, W - 1 - off < 0 ? (int64_t)0
                                                                : (W - 1 - off) / 4 + 1));
          for (int64_t t = 0; t < lo; ++t) dst[t] = 0.f;
          gather_stride4(xr + off + 4 * lo, dst + lo, hi - lo);
          for (int64_t t = hi; t < TWp; ++t) dst[t] = 0.f;
        }
      }
    }
    // Vertical B^T (over the 6 input rows) for every column phase and tile row at once.
    for (int m = 0; m < 4; ++m) {
      const float* in[6];
      float* out[6];
      for (int i = 0; i < 6; ++i) {
        in[i] = rows + (i * 4 + m) * RL;
        out[i] = tv + (i * 4 + m) * RL;
      }
      winograd_bt(in, out, RL);
    }
    // Horizontal B^T: tile tw's columns 0..5 are phases 0..3 at tw and 0..1 at tw+1, for
    // the whole block at once (V's tile pitch is TWp; the last tile of each row is garbage:
    // it reads the next row's first phase values, in bounds of tv, see winograd.h).
    for (int k = 0; k < 6; ++k) {
      const float* e = tv + k * 4 * RL;
      const float* in[6] = {e, e + RL, e + 2 * RL, e + 3 * RL, e + 1, e + RL + 1};
      float* out[6];
      for (int l = 0; l < 6; ++l) out[l] = V + ((k * 6 + l) * C + c) * Tb;
      winograd_bt(in, out, RL);
    }
  }
}

void wino_output(const WinoBlock& b, const float* M, const float* bias, bool relu, float* y,
                 float* ot, float* oq) {
  const int64_t OC = b.C, OH = b.H, OW = b.W, TWp = b.TW + 1, Tb = b.Tb;
  const int64_t th0 = b.th0, th1 = b.th1, tb = (th1 - th0) * TWp;
  for (int64_t oc = 0; oc < OC; ++oc) {
    const float bv = bias ? bias[oc] : 0.f;
    float* yc = y + oc * OH * OW;
    // A^T over l along each row k of the 6x6 tiles, then over k down each column r,
    // for all of the block's tiles at once (long unit-stride loops).
    for (int k = 0; k < 6; ++k) {
      const float* in[6];
      float* out[4];
      for (int l = 0; l < 6; ++l) in[l] = M + ((k * 6 + l) * OC + oc) * Tb;
      for (int r = 0; r < 4; ++r) out[r] = ot + (k * 4 + r) * Tb;
      winograd_at(in, out, tb);
    }
    for (int r = 0; r < 4; ++r) {
      const float* in[6];
      float* out[4];
      for (int k = 0; k < 6; ++k) in[k] = ot + (k * 4 + r) * Tb;
      for (int q = 0; q < 4; ++q) out[q] = oq + (q * 4 + r) * Tb;
      winograd_at(in, out, tb);
    }
    for (int64_t th = th0; th < th1; ++th) {
      const int64_t tl = (th - th0) * TWp;
      for (int q = 0; q < 4; ++q) {
        const int64_t oh = 4 * th + q;
        if (oh >= OH) break;
        float* __restrict yr = yc + oh * OW;
        const float* __restrict v0 = oq + (q * 4) * Tb + tl;
        const float* __restrict v1 = v0 + Tb;
        const float* __restrict v2 = v1 + Tb;
        const float* __restrict v3 = v2 + Tb;
        // Whole tiles interleave the four column phases back into the row; a last,
        // partial tile is clipped.
        const int64_t full = OW / 4;
        if (relu) {
          for (int64_t t = 0; t < full; ++t) {
            yr[4 * t] = std::max(v0[t] + bv, 0.f);
            yr[4 * t + 1] = std::max(v1[t] + bv, 0.f);
            yr[4 * t + 2] = std::max(v2[t] + bv, 0.f);
            yr[4 * t + 3] = std::max(v3[t] + bv, 0.f);
          }
        } else {
          for (int64_t t = 0; t < full; ++t) {
            yr[4 * t] = v0[t] + bv;
            yr[4 * t + 1] = v1[t] + bv;
            yr[4 * t + 2] = v2[t] + bv;
            yr[4 * t + 3] = v3[t] + bv;
          }
        }
        for (int64_t ow = 4 * full; ow < OW; ++ow) {
          const float v = oq[(q * 4 + ow % 4) * Tb + tl + full] + bv;
          yr[ow] = relu ? std::max(v, 0.f) : v;
        }
      }
    }
  }
}

void wino_grad(const WinoBlock& b, const float* dz, float* Z, float* ge, float* he) {
  const int64_t OC = b.C, OH = b.H, OW = b.W, TW = b.TW, TWp = b.TW + 1, Tb = b.Tb;
  const int64_t th0 = b.th0, th1 = b.th1, tb = (th1 - th0) * TWp;
  const int64_t r0 = 4 * th0, r1 = std::min(OH, 4 * th1);
  for (int64_t oc = 0; oc < OC; ++oc) {
    const float* dzc = dz + oc * OH * OW;
    // NOTE: prefetch the next channel's rows, as in wino_input.
    if (oc + 1 < OC)
      for (const float* p = dzc + OH * OW + r0 * OW; p < dzc + OH * OW + r1 * OW; p += 16)
        __builtin_prefetch(p);
    // E split by row r and column phase q: ge[(r*4 + q)*Tb + tile] = E[r][q], zero past
    // the output's edges (those positions contribute nothing).
    for (int64_t th = th0; th < th1; ++th)
      for (int r = 0; r < 4; ++r) {
        const int64_t oh = 4 * th + r;
        for (int q = 0; q < 4; ++q) {
          float* dst = ge + (r * 4 + q) * Tb + (th - th0) * TWp;
          int64_t hi = 0;
          if (oh < OH) {
            hi = std::min(TW, (OW - q + 3) / 4);
            gather_stride4(dzc + oh * OW + q, dst, hi);
          }
          // Zero to the end of the tile row, the garbage tile included (no gradient there).
          for (int64_t t = hi; t < TWp; ++t) dst[t] = 0.f;
        }
      }
    // Z = A E A^T: along each row r (over the phases q), then down each column l.
    for (int r = 0; r < 4; ++r) {
      const float* e = ge + r * 4 * Tb;
      float* o = he + r * 6 * Tb;
      winograd_a6(e, e + Tb, e + 2 * Tb, e + 3 * Tb, o, o + Tb, o + 2 * Tb, o + 3 * Tb,
                  o + 4 * Tb, o + 5 * Tb, tb);
    }
    for (int l = 0; l < 6; ++l) {
      const float* h = he + l * Tb;
      float* o[6];
      for (int k = 0; k < 6; ++k) o[k] = Z + ((k * 6 + l) * OC + oc) * Tb;
      winograd_a6(h, h + 6 * Tb, h + 12 * Tb, h + 18 * Tb, o[0], o[1], o[2], o[3], o[4], o[5],
                  tb);
    }
  }
}

}  // namespace

const WinoKernels& FASTNN_WINO_NAME() {
  static const WinoKernels k{wino_input, wino_output, wino_grad};
  return k;
}

}  // namespace fastnn
