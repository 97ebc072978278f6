#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/isa.h"

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
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) void max22_fwd_avx512(
    FASTNN_MAX22_ARGS_FWD) {
  FASTNN_MAX22_FWD_BODY
}
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) bool max22_bwd_avx512(
    FASTNN_MAX22_ARGS_BWD) {
  FASTNN_MAX22_BWD_BODY
}
#endif

using Max22Fwd = void (*)(FASTNN_MAX22_ARGS_FWD);
using Max22Bwd = bool (*)(FASTNN_MAX22_ARGS_BWD);

Max22Fwd max22_fwd() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return max22_fwd_avx512;
  if (active_isa() == Isa::avx2) return max22_fwd_avx2;
#endif
  return max22_fwd_generic;
}
Max22Bwd max22_bwd() {
#ifdef FASTNN_X86
  if (active_isa() == Isa::avx512) return max22_bwd_avx512;
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
  const Max22Fwd k22 = max22_fwd();
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
  const Max22Bwd k22 = max22_bwd();
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
