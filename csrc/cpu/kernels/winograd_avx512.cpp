// Winograd transforms for the avx512 path (see winograd.h).
#ifdef FASTNN_X86
#define FASTNN_WINO_NAME wino_kernels_avx512
#include "cpu/kernels/winograd_impl.h"
#endif
