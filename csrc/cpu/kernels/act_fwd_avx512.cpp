// The activation and exp loops at avx512 width (see act_fwd.h).
#ifdef FASTNN_X86
#include "cpu/kernels/act_fwd.h"
#include "cpu/kernels/simd_avx512.h"

#define FASTNN_ACT_SUFFIX avx512
#define FASTNN_ACT_VEC
// GCC 12 reports the unset pass-through operand inside _mm512_max_ps/_mm512_min_ps (an
// _mm512_undefined_ps()) as "may be used uninitialized" once inlined here: a known false
// positive of those headers (GCC bug 105593), silenced for this file's loops only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "cpu/kernels/act_fwd_impl.h"
#pragma GCC diagnostic pop
#endif
