// 2-D convolution, NCHW float32, on the library GEMM (fastnn::gemm_f32).
//
// Algorithms, chosen per shape (why):
//  - Winograd F(4x4, 3x3) for 3x3 stride-1 ungrouped convolutions with >= 32 channels in and
//    out (forward, and the input gradient, which is such a convolution too): 4x fewer
//    multiplies, as 36 GEMMs (one per tile position) of (OC, C) x (C, tiles).
//  - otherwise im2col: per image and group the input window matrix `col` (K = Cg*KH*KW rows,
//    P = OH*OW columns) turns the convolution into one GEMM, y_g(OCg, P) = w_g(OCg, K)·col;
//    small images are batched (several images' columns side by side in one GEMM), large ones
//    are cut into blocks of output rows so col stays in cache. A 1x1 stride-1 unpadded
//    convolution needs no col at all (the input already is that matrix).
// Every GEMM is fastnn::gemm_f32. Images (or tile blocks) are spread over the library pool,
// each thread running its own serial GEMMs (no nested oversubscription); with fewer images
// than threads the GEMM threads itself instead.
#pragma once
#include <cstdint>
#include <string>

namespace fastnn {

struct Conv2dShape {
  int64_t N, C, H, W;         // input (N, C, H, W)
  int64_t OC, KH, KW;         // weight (OC, C/groups, KH, KW)
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t OH, OW;             // output (N, OC, OH, OW)
  int64_t cg() const { return C / groups; }
  int64_t ocg() const { return OC / groups; }
  int64_t K() const { return cg() * KH * KW; }
  int64_t P() const { return OH * OW; }
  bool direct() const {  // the input plane already is the GEMM's B matrix
    return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  }
};

// y = act(conv(x, w) + b), act: false identity, true ReLU. Overwrites y.
//   x: (N, C, H, W)  w: (OC, C/groups, KH, KW)  b: (OC,) or null  y: (N, OC, OH, OW)
void conv2d_fwd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                bool relu);

// Gradients of sum(y * dy). Each of dx, dw, db may be null (not wanted); all overwrite.
//   dy: (N, OC, OH, OW); y: the forward output, needed only when relu (mask), else null
//   dx: (N, C, H, W)  dw: (OC, C/groups, KH, KW)  db: (OC,)
void conv2d_bwd(const Conv2dShape& s, const float* dy, const float* y, const float* x,
                const float* w, float* dx, float* dw, float* db, bool relu);

// The algorithms shape s takes, for tests and benchmarks: "fwd=A dx=B dw=C", each one of
// winograd, wide, im2col, direct (1x1 stride 1), dots (few-tap weight gradient on the wide
// layout).
std::string conv2d_algorithms(const Conv2dShape& s);

// Winograd F(4x4, 3x3) for 3x3 stride-1 ungrouped convolutions with >= 32 channels in and
// out (on by default); off forces im2col, so tests and benchmarks can compare the two.
void conv2d_set_winograd(bool on);
bool conv2d_winograd();

}  // namespace fastnn
