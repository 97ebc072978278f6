// Weight gradient of a convolution with few taps (K = C/groups*KH*KW small, e.g. a first layer
// on 1-3 channel images), as OC*K long dot products on the "wide" stride-1 layout of
// csrc/cpu/conv.cpp: as a GEMM (OC, K) x long reduction it would use a K/NR fraction of the
// micro-kernel's tile (9 of 32 columns for a 3x3 kernel on one channel).
// Compiled once per ISA (conv_dots_<isa>.cpp) from conv_dots_impl.h.
#pragma once
#include <cstdint>

namespace fastnn {

// dw[o*ldw + r] += sum_{q < n} dz[o*ldz + q] * x[shift[r] + q]   for o < O, r < R.
//   dz: (O, n) rows with leading dimension ldz; x: the padded input, read at R shifts.
using ConvDotsFn = void (*)(int64_t O, int64_t R, int64_t n, const float* dz, int64_t ldz,
                            const float* x, const int64_t* shift, float* dw, int64_t ldw);
void conv_wgrad_dots_generic(int64_t O, int64_t R, int64_t n, const float* dz, int64_t ldz,
                             const float* x, const int64_t* shift, float* dw, int64_t ldw);
#ifdef FASTNN_X86
void conv_wgrad_dots_avx2(int64_t O, int64_t R, int64_t n, const float* dz, int64_t ldz,
                          const float* x, const int64_t* shift, float* dw, int64_t ldw);
void conv_wgrad_dots_avx512(int64_t O, int64_t R, int64_t n, const float* dz, int64_t ldz,
                            const float* x, const int64_t* shift, float* dw, int64_t ldw);
#endif

}  // namespace fastnn
