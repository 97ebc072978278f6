#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/isa.h"

#ifdef FASTNN_X86
#include <immintrin.h>
#endif

namespace fastnn {

namespace {

// Planes per chunk so that a chunk touches at least ~32K input floats (waking the pool for
// less costs more than it saves).
int64_t plane_grain(const Pool2dShape& s) {
  return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, s.H * s.W));
}

// Window rows [h0, h1) of output row oh clipped to the input, and the unclipped size inside
// the padded input (PyTorch's avg_pool divisor with count_include_pad, ceil_mode windows
// clipped at H + ph).
inline void avg_window(int64_t o, int64_t k, int64_t st, int64_t pad, int64_t n, int64_t& a,
                       int64_t& b, int64_t& padded) {
  a = o * st - pad;
  b = std::min(a + k, n + pad);
  padded = b - a;
  a = std::max<int64_t>(a, 0);
  b = std::min(b, n);
}

// ---- 2x2 stride 2, windows inside the plane (the common case) ----------------------------
// Written branch-free so the compiler vectorises them; compiled three times below (baseline,
// AVX2, AVX-512 via target attributes) and picked by fastnn::active_isa().

// One output row: y/idx (OW,) from input rows r0, r1; base = flat index of r0[0].
#define FASTNN_MAX22_FWD_BODY                                                        \
  for (int64_t ow = 0; ow < OW; ++ow) {                                              \
    const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1]; \
    /* NOTE: v > m || v != v is PyTorch's rule: NaN wins (the last NaN's index). */  \
    float m = a;                                                                     \
    int64_t k = 0;                                                                   \
    bool t = b > m || b != b;                                                        \
    m = t ? b : m; k = t ? 1 : k;                                                    \
    t = c > m || c != c;                                                             \
    m = t ? c : m; k = t ? W : k;                                                    \
    t = d > m || d != d;                                                             \
    m = t ? d : m; k = t ? W + 1 : k;                                                \
    y[ow] = m;                                                                       \
    idx[ow] = base + 2 * ow + k;                                                     \
  }

// One output row back: writes both input rows' first 2*OW columns (every element of a
// non-overlapping window is written, so dx needs no zeroing first). Returns false when an
// index is not inside its own window (indices not from this forward): the caller then takes
// the general scatter path.
#define FASTNN_MAX22_BWD_BODY                                                        \
  int64_t bad = 0;                                                                   \
  for (int64_t ow = 0; ow < OW; ++ow) {                                              \
    const int64_t off = idx[ow] - (base + 2 * ow);                                   \
    const float g = dy[ow];                                                          \
    d0[2 * ow] = off == 0 ? g : 0.f;                                                 \
    d0[2 * ow + 1] = off == 1 ? g : 0.f;                                             \
    d1[2 * ow] = off == W ? g : 0.f;                                                 \
    d1[2 * ow + 1] = off == W + 1 ? g : 0.f;                                         \
    bad |= (int64_t)(off != 0 && off != 1 && off != W && off != W + 1);              \
  }                                                                                  \
  return bad == 0;

#define FASTNN_MAX22_ARGS_FWD                                                        \
  const float *__restrict r0, const float *__restrict r1, int64_t OW, int64_t W,     \
      int64_t base, float *__restrict y, int64_t *__restrict idx
#define FASTNN_MAX22_ARGS_BWD                                                        \
  const float *__restrict dy, const int64_t *__restrict idx, int64_t OW, int64_t W,  \
      int64_t base, float *__restrict d0, float *__restrict d1

void max22_fwd_generic(FASTNN_MAX22_ARGS_FWD) { FASTNN_MAX22_FWD_BODY }
bool max22_bwd_generic(FASTNN_MAX22_ARGS_BWD) { FASTNN_MAX22_BWD_BODY }
#ifdef FASTNN_X86
__attribute__((target("avx2,fma"))) void max22_fwd_avx2(FASTNN_MAX22_ARGS_FWD) {
  FASTNN_MAX22_FWD_BODY
}
__attribute__((target("avx2,fma"))) bool max22_bwd_avx2(FASTNN_MAX22_ARGS_BWD) {
  FASTNN_MAX22_BWD_BODY
}
// AVX-512 kernels for rows under 16 outputs (max22_fwd/max22_bwd pick them by width; they
// handle any width): 16 outputs per step and a masked last step, so short rows (the 7- and
// 14-wide outputs of a small CNN) stay branch-free. NOTE: the compiler-vectorised body leaves
// rows shorter than one vector to a scalar tail whose float compares become branches,
// mispredicted half the time on real data (~10 ns per output). Full steps load and store
// unmasked, and a part with an empty mask is not issued at all. On long rows (the 56-wide
// maxpool bench case) this loop measured 2x slower than the compiler's, cause not found, so
// those keep the compiler's body.
#define FASTNN_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
FASTNN_AVX512 inline __mmask16 tail_mask16(int64_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}
// Rows of 16 outputs or more: the compiler-vectorised body, as for the other ISAs.
FASTNN_AVX512 void max22_fwd_avx512(FASTNN_MAX22_ARGS_FWD) { FASTNN_MAX22_FWD_BODY }
FASTNN_AVX512 bool max22_bwd_avx512(FASTNN_MAX22_ARGS_BWD) { FASTNN_MAX22_BWD_BODY }
FASTNN_AVX512 void max22_fwd_avx512_short(FASTNN_MAX22_ARGS_FWD) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i k1 = _mm512_set1_epi32(1), kW = _mm512_set1_epi32((int)W),
                kW1 = _mm512_set1_epi32((int)W + 1);
  const __m512i step2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  for (int64_t ow = 0; ow < OW; ow += 16) {
    const int64_t n = std::min<int64_t>(16, OW - ow);
    const __mmask16 m = tail_mask16(n), lo = tail_mask16(2 * n),
                    hi = tail_mask16(std::max<int64_t>(0, 2 * n - 16));
    __m512 r0a, r0b, r1a, r1b;
    if (n == 16) {
      r0a = _mm512_loadu_ps(r0 + 2 * ow);
      r0b = _mm512_loadu_ps(r0 + 2 * ow + 16);
      r1a = _mm512_loadu_ps(r1 + 2 * ow);
      r1b = _mm512_loadu_ps(r1 + 2 * ow + 16);
    } else {
      r0a = _mm512_maskz_loadu_ps(lo, r0 + 2 * ow);
      r1a = _mm512_maskz_loadu_ps(lo, r1 + 2 * ow);
      r0b = r1b = _mm512_setzero_ps();
      if (hi) {  // NOTE: no access at all under an empty mask (see above)
        r0b = _mm512_maskz_loadu_ps(hi, r0 + 2 * ow + 16);
        r1b = _mm512_maskz_loadu_ps(hi, r1 + 2 * ow + 16);
      }
    }
    const __m512 a = _mm512_permutex2var_ps(r0a, even, r0b);
    const __m512 b = _mm512_permutex2var_ps(r0a, odd, r0b);
    const __m512 c = _mm512_permutex2var_ps(r1a, even, r1b);
    const __m512 d = _mm512_permutex2var_ps(r1a, odd, r1b);
    // NOTE: v > m || v != v is PyTorch's rule: NaN wins (the last NaN's index).
    __m512 mx = a;
    __m512i k = _mm512_setzero_si512();
    __mmask16 t = _mm512_cmp_ps_mask(b, mx, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
    mx = _mm512_mask_blend_ps(t, mx, b);
    k = _mm512_mask_blend_epi32(t, k, k1);
    t = _mm512_cmp_ps_mask(c, mx, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
    mx = _mm512_mask_blend_ps(t, mx, c);
    k = _mm512_mask_blend_epi32(t, k, kW);
    t = _mm512_cmp_ps_mask(d, mx, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
    mx = _mm512_mask_blend_ps(t, mx, d);
    k = _mm512_mask_blend_epi32(t, k, kW1);
    if (n == 16) {
      _mm512_storeu_ps(y + ow, mx);
    } else {
      _mm512_mask_storeu_ps(y + ow, m, mx);
    }
    // idx = base + 2*ow + k, as two 8-lane int64 halves.
    const __m512i b0 = _mm512_add_epi64(_mm512_set1_epi64(base + 2 * ow), step2);
    const __m512i b1 = _mm512_add_epi64(b0, _mm512_set1_epi64(16));
    const __m512i i0 = _mm512_add_epi64(b0, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(k)));
    const __m512i i1 =
        _mm512_add_epi64(b1, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(k, 1)));
    if (n == 16) {
      _mm512_storeu_si512(idx + ow, i0);
      _mm512_storeu_si512(idx + ow + 8, i1);
    } else {
      _mm512_mask_storeu_epi64(idx + ow, (__mmask8)(m & 0xFF), i0);
      if (m >> 8) _mm512_mask_storeu_epi64(idx + ow + 8, (__mmask8)(m >> 8), i1);
    }
  }
}
// 16 lanes of (o0 | o1) == v, o0 the low 8 int64 lanes.
FASTNN_AVX512 inline __mmask16 eq16(__m512i o0, __m512i o1, __m512i v) {
  return (__mmask16)(_mm512_cmpeq_epi64_mask(o0, v) |
                     ((unsigned)_mm512_cmpeq_epi64_mask(o1, v) << 8));
}
FASTNN_AVX512 bool max22_bwd_avx512_short(FASTNN_MAX22_ARGS_BWD) {
  // Interleave: out[2i] = e[i], out[2i+1] = o[i] (lanes 0-7 of each into the low vector,
  // 8-15 into the high one).
  const __m512i lo_ix = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7,
                                          23);
  const __m512i hi_ix = _mm512_add_epi32(lo_ix, _mm512_set1_epi32(8));
  const __m512i step2 = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i z = _mm512_setzero_si512(), one = _mm512_set1_epi64(1),
                w0 = _mm512_set1_epi64(W), w1 = _mm512_set1_epi64(W + 1);
  __mmask16 bad = 0;
  for (int64_t ow = 0; ow < OW; ow += 16) {
    const int64_t n = std::min<int64_t>(16, OW - ow);
    const __mmask16 m = tail_mask16(n), lo = tail_mask16(2 * n),
                    hi = tail_mask16(std::max<int64_t>(0, 2 * n - 16));
    const __m512 g = _mm512_maskz_loadu_ps(m, dy + ow);
    const __m512i b0 = _mm512_add_epi64(_mm512_set1_epi64(base + 2 * ow), step2);
    const __m512i b1 = _mm512_add_epi64(b0, _mm512_set1_epi64(16));
    const __m512i o0 =
        _mm512_sub_epi64(_mm512_maskz_loadu_epi64((__mmask8)(m & 0xFF), idx + ow), b0);
    const __m512i o1 = (m >> 8) ? _mm512_sub_epi64(
                                      _mm512_maskz_loadu_epi64((__mmask8)(m >> 8), idx + ow + 8), b1)
                                : _mm512_setzero_si512();
    const __mmask16 e00 = eq16(o0, o1, z), e01 = eq16(o0, o1, one), e10 = eq16(o0, o1, w0),
                    e11 = eq16(o0, o1, w1);
    bad |= (__mmask16)(m & ~(e00 | e01 | e10 | e11));
    const __m512 g00 = _mm512_maskz_mov_ps(e00, g), g01 = _mm512_maskz_mov_ps(e01, g);
    const __m512 g10 = _mm512_maskz_mov_ps(e10, g), g11 = _mm512_maskz_mov_ps(e11, g);
    const __m512 s0 = _mm512_permutex2var_ps(g00, lo_ix, g01);
    const __m512 s1 = _mm512_permutex2var_ps(g00, hi_ix, g01);
    const __m512 s2 = _mm512_permutex2var_ps(g10, lo_ix, g11);
    const __m512 s3 = _mm512_permutex2var_ps(g10, hi_ix, g11);
    if (n == 16) {
      _mm512_storeu_ps(d0 + 2 * ow, s0);
      _mm512_storeu_ps(d0 + 2 * ow + 16, s1);
      _mm512_storeu_ps(d1 + 2 * ow, s2);
      _mm512_storeu_ps(d1 + 2 * ow + 16, s3);
    } else {
      _mm512_mask_storeu_ps(d0 + 2 * ow, lo, s0);
      _mm512_mask_storeu_ps(d1 + 2 * ow, lo, s2);
      if (hi) {
        _mm512_mask_storeu_ps(d0 + 2 * ow + 16, hi, s1);
        _mm512_mask_storeu_ps(d1 + 2 * ow + 16, hi, s3);
      }
    }
  }
  return bad == 0;
}
#undef FASTNN_AVX512
#endif

using Max22Fwd = void (*)(FASTNN_MAX22_ARGS_FWD);
using Max22Bwd = bool (*)(FASTNN_MAX22_ARGS_BWD);

// ow: output row width (rows under 16 outputs take the AVX-512 masked kernel).
Max22Fwd max22_fwd(int64_t ow) {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return ow < 16 ? max22_fwd_avx512_short : max22_fwd_avx512;
  if (active_isa() == Isa::avx2) return max22_fwd_avx2;
#endif
  return max22_fwd_generic;
}
Max22Bwd max22_bwd(int64_t ow) {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return ow < 16 ? max22_bwd_avx512_short : max22_bwd_avx512;
  if (active_isa() == Isa::avx2) return max22_bwd_avx2;
#endif
  return max22_bwd_generic;
}

bool is_max22(const Pool2dShape& s) {
  return s.KH == 2 && s.KW == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0 &&
         s.dh == 1 && s.dw == 1 && 2 * s.OH <= s.H &&
         2 * s.OW <= s.W;  // ceil_mode can add a window hanging off the edge
}

// General scatter of one plane: dx zeroed, then dx[idx] += dy; indices range-checked.
void max_bwd_plane(const Pool2dShape& s, const float* dyp, const int64_t* ip, float* dxp) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  std::memset(dxp, 0, sizeof(float) * HW);
  // Accumulate: overlapping windows (stride < kernel) can pick the same element.
  for (int64_t o = 0; o < OP; ++o) {
    // Indices can come from Python: an out-of-range one would write outside dx.
    if ((uint64_t)ip[o] >= (uint64_t)HW)
      fail<IndexError>("max_pool2d", "indices must be in [0, ", HW, "), got ", ip[o]);
    dxp[ip[o]] += dyp[o];
  }
}

}  // namespace

void max_pool2d_fwd(const Pool2dShape& s, const float* x, float* y, int64_t* idx) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  const bool fast22 = is_max22(s) && idx;
  const Max22Fwd k22 = max22_fwd(s.OW);
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * HW;
      float* yp = y + p * OP;
      int64_t* ip = idx ? idx + p * OP : nullptr;
      if (fast22) {
        for (int64_t oh = 0; oh < s.OH; ++oh)
          k22(xp + 2 * oh * s.W, xp + (2 * oh + 1) * s.W, s.OW, s.W, 2 * oh * s.W,
              yp + oh * s.OW, ip + oh * s.OW);
        continue;
      }
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        const int64_t h0 = oh * s.sh - s.ph;
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          const int64_t w0 = ow * s.sw - s.pw;
          float m = -std::numeric_limits<float>::infinity();
          int64_t mi = -1;
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t ih = h0 + kh * s.dh;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t iw = w0 + kw * s.dw;
              if (iw < 0 || iw >= s.W) continue;
              const float v = xp[ih * s.W + iw];
              // NOTE: PyTorch's rule: NaN wins (the last NaN's index).
              if (mi < 0 || v > m || std::isnan(v)) {
                m = v;
                mi = ih * s.W + iw;
              }
            }
          }
          // Output size rules guarantee every window holds at least one input element.
          yp[oh * s.OW + ow] = m;
          if (ip) ip[oh * s.OW + ow] = mi;
        }
      }
    }
  });
}

void max_pool2d_bwd(const Pool2dShape& s, const float* dy, const int64_t* idx, float* dx) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  const bool fast22 = is_max22(s);
  const Max22Bwd k22 = max22_bwd(s.OW);
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * HW;
      const float* dyp = dy + p * OP;
      const int64_t* ip = idx + p * OP;
      bool ok = fast22;
      for (int64_t oh = 0; ok && oh < s.OH; ++oh) {
        float* d0 = dxp + 2 * oh * s.W;
        ok = k22(dyp + oh * s.OW, ip + oh * s.OW, s.OW, s.W, 2 * oh * s.W, d0, d0 + s.W);
        // An odd width leaves a last column no window covers.
        if (s.W > 2 * s.OW) d0[s.W - 1] = d0[2 * s.W - 1] = 0.f;
      }
      if (ok) {
        if (s.H > 2 * s.OH) std::memset(dxp + (s.H - 1) * s.W, 0, sizeof(float) * s.W);
        continue;
      }
      max_bwd_plane(s, dyp, ip, dxp);
    }
  });
}

void avg_pool2d_fwd(const Pool2dShape& s, const float* x, float* y, bool count_include_pad,
                    int64_t divisor_override) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * HW;
      float* yp = y + p * OP;
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        int64_t h0, h1, hp;
        avg_window(oh, s.KH, s.sh, s.ph, s.H, h0, h1, hp);
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          int64_t w0, w1, wp;
          avg_window(ow, s.KW, s.sw, s.pw, s.W, w0, w1, wp);
          float acc = 0.f;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) acc += xp[ih * s.W + iw];
          const int64_t div = divisor_override > 0 ? divisor_override
                              : count_include_pad  ? hp * wp
                                                   : (h1 - h0) * (w1 - w0);
          yp[oh * s.OW + ow] = div > 0 ? acc / (float)div : 0.f;
        }
      }
    }
  });
}

void avg_pool2d_bwd(const Pool2dShape& s, const float* dy, float* dx, bool count_include_pad,
                    int64_t divisor_override) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * HW;
      const float* dyp = dy + p * OP;
      std::memset(dxp, 0, sizeof(float) * HW);
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        int64_t h0, h1, hp;
        avg_window(oh, s.KH, s.sh, s.ph, s.H, h0, h1, hp);
        for (int64_t ow = 0; ow < s.OW; ++ow) {
          int64_t w0, w1, wp;
          avg_window(ow, s.KW, s.sw, s.pw, s.W, w0, w1, wp);
          const int64_t div = divisor_override > 0 ? divisor_override
                              : count_include_pad  ? hp * wp
                                                   : (h1 - h0) * (w1 - w0);
          if (div <= 0) continue;
          const float g = dyp[oh * s.OW + ow] / (float)div;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) dxp[ih * s.W + iw] += g;
        }
      }
    }
  });
}

}  // namespace fastnn
