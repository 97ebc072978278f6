// The elementwise activation loops (forward, backward) and exp over a span of floats,
// compiled once per ISA from act_fwd_impl.h: the math in cpu/act.h and cpu/fastmath.h is
// branch-free, so each loop vectorises at its ISA's width. cpu/activation.cpp holds the
// generic copy and chooses with active_isa() (act_fwd_span and friends in cpu/act.h).
// Built with -ffp-contract=off, so the only FMAs are fastmath.h's explicit ones (fmadd):
// AVX2 and AVX-512 give the same bits; the generic copy (no FMA in baseline x86-64) rounds
// those steps in two and agrees to within the functions' ulp bounds.
#pragma once
#include <cstdint>

#include "cpu/act.h"

namespace fastnn {

#ifdef FASTNN_X86
void act_fwd_span_avx512(const ActParams& p, const float* x, float* y, int64_t n);
void act_bwd_span_avx512(const ActParams& p, const float* dy, const float* x, const float* y,
                         float* dx, int64_t n);
void exp_span_avx512(const float* x, float* y, int64_t n);
void act_fwd_span_avx2(const ActParams& p, const float* x, float* y, int64_t n);
void act_bwd_span_avx2(const ActParams& p, const float* dy, const float* x, const float* y,
                       float* dx, int64_t n);
void exp_span_avx2(const float* x, float* y, int64_t n);
#endif

}  // namespace fastnn
