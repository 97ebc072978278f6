// Winograd transforms for the avx2 path (see winograd.h).
#ifdef FASTNN_X86
#define FASTNN_WINO_NAME wino_kernels_avx2
#include "cpu/kernels/winograd_impl.h"
#endif
