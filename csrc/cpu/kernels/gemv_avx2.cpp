// The matrix-vector loops on 8-float AVX2 registers, with FMA (see gemv_impl.h).
#ifdef FASTNN_X86
#include "cpu/kernels/simd_avx2.h"

#define FASTNN_GEMV_ROWS gemv_rows_avx2
#define FASTNN_GEMV_COLS gemv_cols_avx2
#define FASTNN_GEMV_PANELS gemv_panels_avx2
#define FASTNN_GEMV_OUTER gemv_outer_avx2
#include "cpu/kernels/gemv_impl.h"
#endif
