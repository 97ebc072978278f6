// The activation and exp loops at avx2 width (see act_fwd.h).
#ifdef FASTNN_X86
#include "cpu/kernels/act_fwd.h"

#define FASTNN_ACT_SUFFIX avx2
#include "cpu/kernels/act_fwd_impl.h"
#endif
