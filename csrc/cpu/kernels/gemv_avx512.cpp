// The matrix-vector loops on 16-float AVX-512 registers (see gemv_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx512.h"

#define FASTNN_GEMV_ROWS gemv_rows_avx512
#define FASTNN_GEMV_COLS gemv_cols_avx512
#define FASTNN_GEMV_PANELS gemv_panels_avx512
#define FASTNN_GEMV_OUTER gemv_outer_avx512
#include "cpu/kernels/gemv_impl.h"
#endif
