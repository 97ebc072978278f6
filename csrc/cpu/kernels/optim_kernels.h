// SIMD versions of the optimizer element loops (cpu/optim.cpp chooses with active_isa(); its
// scalar loop is the generic path). Compiled once per ISA from optim_impl.h.
#pragma once
#include <cstdint>

#include "cpu/optim.h"

namespace fastnn {

// Elements [b, e) of one slot, updated in place as sgd_update / adam_update describe.
#ifdef FASTNN_X86
void sgd_span_avx512(const SgdHyper& h, const SgdSlot& s, int64_t b, int64_t e);
void adam_span_avx512(const AdamHyper& h, const AdamSlot& s, int64_t b, int64_t e);
void sgd_span_avx2(const SgdHyper& h, const SgdSlot& s, int64_t b, int64_t e);
void adam_span_avx2(const AdamHyper& h, const AdamSlot& s, int64_t b, int64_t e);
#endif

}  // namespace fastnn
