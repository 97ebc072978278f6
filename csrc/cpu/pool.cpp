#include "cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.h"

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

}  // namespace

void max_pool2d_fwd(const Pool2dShape& s, const float* x, float* y, int64_t* idx) {
  const int64_t HW = s.H * s.W, OP = s.OH * s.OW;
  const bool fast22 = s.KH == 2 && s.KW == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 &&
                      s.pw == 0 && s.dh == 1 && s.dw == 1 && 2 * s.OH <= s.H &&
                      2 * s.OW <= s.W;  // ceil_mode can add a window hanging off the edge
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const float* xp = x + p * HW;
      float* yp = y + p * OP;
      int64_t* ip = idx ? idx + p * OP : nullptr;
      if (fast22) {
        // 2x2 stride 2 (the common case): every window lies inside the plane.
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const float* r0 = xp + 2 * oh * s.W;
          const float* r1 = r0 + s.W;
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const int64_t i0 = 2 * oh * s.W + 2 * ow;
            float m = r0[2 * ow];
            int64_t mi = i0;
            // NOTE: `v > m || isnan(v)` as PyTorch: a NaN anywhere in the window wins.
            float v = r0[2 * ow + 1];
            if (v > m || std::isnan(v)) { m = v; mi = i0 + 1; }
            v = r1[2 * ow];
            if (v > m || std::isnan(v)) { m = v; mi = i0 + s.W; }
            v = r1[2 * ow + 1];
            if (v > m || std::isnan(v)) { m = v; mi = i0 + s.W + 1; }
            yp[oh * s.OW + ow] = m;
            if (ip) ip[oh * s.OW + ow] = mi;
          }
        }
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
              if (mi < 0 || v > m || std::isnan(v)) {
                m = v;
                mi = ih * s.W + iw;
                if (std::isnan(v)) goto done;  // nothing beats NaN
              }
            }
          }
        done:
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
  parallel_for(s.N * s.C, plane_grain(s), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dxp = dx + p * HW;
      const float* dyp = dy + p * OP;
      const int64_t* ip = idx + p * OP;
      std::memset(dxp, 0, sizeof(float) * HW);
      // Accumulate: overlapping windows (stride < kernel) can pick the same element.
      for (int64_t o = 0; o < OP; ++o) dxp[ip[o]] += dyp[o];
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
