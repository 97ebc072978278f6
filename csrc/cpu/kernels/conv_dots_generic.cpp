// conv_wgrad_dots for the generic path (see conv_dots.h).

#define FASTNN_CONV_DOTS_NAME conv_wgrad_dots_generic
#include "cpu/kernels/conv_dots_impl.h"

