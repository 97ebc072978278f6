// 2-D max and average pooling, NCHW float32. Every (n, c) plane is independent, so planes are
// spread over the library pool.
#pragma once
#include <cstdint>

namespace fastnn {

struct Pool2dShape {
  int64_t N, C, H, W;        // input (N, C, H, W)
  int64_t KH, KW, sh, sw, ph, pw, dh, dw;
  int64_t OH, OW;            // output (N, C, OH, OW)
};

// y = window max; idx = flat index ih*W + iw of the max inside its input plane (PyTorch's
// return_indices convention); NaN wins (propagates). idx may be null.
//   x: (N, C, H, W)  y, idx: (N, C, OH, OW)
void max_pool2d_fwd(const Pool2dShape& s, const float* x, float* y, int64_t* idx);
// dx (N, C, H, W), overwritten: dx[idx] += dy for every output element.
void max_pool2d_bwd(const Pool2dShape& s, const float* dy, const int64_t* idx, float* dx);

// y = window sum / divisor; divisor: divisor_override if > 0, else the window's size counted
// inside the padded input (count_include_pad) or inside the input only. dh/dw unused (1).
void avg_pool2d_fwd(const Pool2dShape& s, const float* x, float* y, bool count_include_pad,
                    int64_t divisor_override);
// dx (N, C, H, W), overwritten.
void avg_pool2d_bwd(const Pool2dShape& s, const float* dy, float* dx, bool count_include_pad,
                    int64_t divisor_override);

}  // namespace fastnn
