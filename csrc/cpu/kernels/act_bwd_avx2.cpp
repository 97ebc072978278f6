// The activation-backward pass on 8-float AVX2 registers (see act_bwd_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx2.h"

#define FASTNN_ACT_BWD_COLS act_bwd_cols_avx2
#include "cpu/kernels/act_bwd_impl.h"
#endif
