// conv_wgrad_dots for the avx512 path (see conv_dots.h).
#ifdef FASTNN_X86
#define FASTNN_CONV_DOTS_NAME conv_wgrad_dots_avx512
#include "cpu/kernels/conv_dots_impl.h"
#endif
