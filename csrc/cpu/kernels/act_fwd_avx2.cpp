// The activation and exp loops at avx2 width (see act_fwd.h).
#ifdef FASTNN_X86
#include "cpu/kernels/act_fwd.h"
#include "cpu/kernels/simd_avx2.h"

#define FASTNN_ACT_SUFFIX avx2
#define FASTNN_ACT_VEC
#include "cpu/kernels/act_fwd_impl.h"
#endif
