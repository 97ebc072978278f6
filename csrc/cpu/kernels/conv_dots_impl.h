// Body of conv_wgrad_dots_<isa> (see conv_dots.h); included by conv_dots_<isa>.cpp with
// FASTNN_CONV_DOTS_NAME set, so one source is compiled with each ISA's flags.
#include <cstdint>

#include "cpu/kernels/conv_dots.h"

namespace fastnn {

// NOTE: each dot product keeps kLanes independent float partial sums (a plain running sum
// would not vectorise without reassociation, which -O3 does not allow); the lanes are
// added at the end. Two output channels and four taps per pass: each dz vector loaded
// feeds four FMAs and each x vector two, so the loop is not bound by loads.
void FASTNN_CONV_DOTS_NAME(int64_t O, int64_t R, int64_t n, const float* dz, int64_t ldz,
                           const float* x, const int64_t* shift, float* dw, int64_t ldw) {
  constexpr int kLanes = 16;
  const int64_t nv = n / kLanes * kLanes;
  for (int64_t o0 = 0; o0 < O; o0 += 2) {
    const int no = O - o0 < 2 ? 1 : 2;
    for (int64_t r0 = 0; r0 < R; r0 += 4) {
      const int nr = R - r0 < 4 ? (int)(R - r0) : 4;
      // Missing rows/taps (edges) repeat the first one; their sums are not stored.
      const float* __restrict d0 = dz + o0 * ldz;
      const float* __restrict d1 = dz + (o0 + (no > 1 ? 1 : 0)) * ldz;
      const float* __restrict x0 = x + shift[r0];
      const float* __restrict x1 = x + shift[r0 + (nr > 1 ? 1 : 0)];
      const float* __restrict x2 = x + shift[r0 + (nr > 2 ? 2 : 0)];
      const float* __restrict x3 = x + shift[r0 + (nr > 3 ? 3 : 0)];
      float a00[kLanes] = {}, a01[kLanes] = {}, a02[kLanes] = {}, a03[kLanes] = {};
      float a10[kLanes] = {}, a11[kLanes] = {}, a12[kLanes] = {}, a13[kLanes] = {};
      for (int64_t q = 0; q < nv; q += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          const float u = d0[q + l], v = d1[q + l];
          const float y0 = x0[q + l], y1 = x1[q + l], y2 = x2[q + l], y3 = x3[q + l];
          a00[l] += u * y0; a01[l] += u * y1; a02[l] += u * y2; a03[l] += u * y3;
          a10[l] += v * y0; a11[l] += v * y1; a12[l] += v * y2; a13[l] += v * y3;
        }
      const float* acc[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};
      const float* dd[2] = {d0, d1};
      const float* xx[4] = {x0, x1, x2, x3};
      for (int i = 0; i < no; ++i)
        for (int k = 0; k < nr; ++k) {
          float s = 0.f;
          for (int l = 0; l < kLanes; ++l) s += acc[i][k][l];
          for (int64_t q = nv; q < n; ++q) s += dd[i][q] * xx[k][q];
          dw[(o0 + i) * ldw + r0 + k] += s;
        }
    }
  }
}

}  // namespace fastnn
