// The optimizer loops on 16-float AVX-512 registers (see optim_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx512.h"

#define FASTNN_SGD_SPAN sgd_span_avx512
#define FASTNN_ADAM_SPAN adam_span_avx512
#include "cpu/kernels/optim_impl.h"
#endif
