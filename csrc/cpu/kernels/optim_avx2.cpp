// The optimizer loops on 8-float AVX2 registers, with FMA (see optim_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx2.h"

#define FASTNN_SGD_SPAN sgd_span_avx2
#define FASTNN_ADAM_SPAN adam_span_avx2
#include "cpu/kernels/optim_impl.h"
#endif
