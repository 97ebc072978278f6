// Winograd F(4x4, 3x3) transforms of csrc/cpu/conv.cpp, compiled once per ISA
// (winograd_<isa>.cpp from winograd_impl.h): they are long unit-stride loops of adds and
// small-constant multiplies, ~60% of a Winograd pass at the baseline's 4 SSE lanes.
// Every function handles one block of whole tile rows [th0, th1) of one image; Tb is the
// leading dimension of the (36, channels, Tb) transformed arrays, TW + 1 tiles to a tile row
// (the last one garbage, see wino_geom in conv.cpp).
#pragma once
#include <cstdint>

namespace fastnn {

struct WinoBlock {
  int64_t C;       // channels of the plane array the function reads or writes
  int64_t H, W;    // its planes
  int64_t ph, pw;  // input transform: padding of the convolution
  int64_t th0, th1, TW, Tb;
};

// V (36, C, Tb) = B^T d B for every channel and tile; x: (C, H, W) of one image.
//   rows, tv: scratch of 24*(th1-th0)*(TW+1) floats each.
using WinoInputFn = void (*)(const WinoBlock& b, const float* x, float* V, float* rows,
                             float* tv);
// y (C, H, W) tiles of the block = act(A^T M A + bias), clipped at H, W; M: (36, C, Tb).
//   bias: (C,) or null. ot, oq: scratch of 24*Tb and 16*Tb floats.
using WinoOutputFn = void (*)(const WinoBlock& b, const float* M, const float* bias, bool relu,
                              float* y, float* ot, float* oq);
// Z (36, C, Tb) = A E A^T for every channel's 4x4 output-gradient tiles E (zero past H, W);
// dz: (C, H, W). ge, he: scratch of 16*Tb and 24*Tb floats.
using WinoGradFn = void (*)(const WinoBlock& b, const float* dz, float* Z, float* ge,
                            float* he);

struct WinoKernels {
  WinoInputFn input;
  WinoOutputFn output;
  WinoGradFn grad;
};

const WinoKernels& wino_kernels_generic();
#ifdef FASTNN_X86
const WinoKernels& wino_kernels_avx2();
const WinoKernels& wino_kernels_avx512();
#endif

}  // namespace fastnn
