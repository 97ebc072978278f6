// Winograd transforms for the generic path (see winograd.h).
#define FASTNN_WINO_NAME wino_kernels_generic
#include "cpu/kernels/winograd_impl.h"
