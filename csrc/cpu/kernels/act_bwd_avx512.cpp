// The activation-backward pass on 16-float AVX-512 registers (see act_bwd_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx512.h"

#define FASTNN_ACT_BWD_COLS act_bwd_cols_avx512
#include "cpu/kernels/act_bwd_impl.h"
#endif
