// Scalar definitions of the activations and their derivatives: the one place their math
// lives. The elementwise kernels and the GEMM epilogues both use these.
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/fastmath.h"

namespace fastnn {

enum class Act : int { none = 0, relu = 1, sigmoid = 2, tanh = 3, gelu = 4, softplus = 5 };

struct ActParams {
  Act act = Act::none;
  float beta = 1.f;        // softplus only
  float threshold = 20.f;  // softplus only
};

const char* act_name(Act a);
// gelu and softplus need the pre-activation input for their derivative; the others can
// take it from the output alone.
constexpr bool act_backward_needs_input(Act a) { return a == Act::gelu || a == Act::softplus; }

// NOTE: sigmoid, tanh and softplus come from cpu/fastmath.h (branch-free, no libm call), so
// the loops over them vectorise: activation_fwd/_bwd compile them once per ISA
// (kernels/act_fwd_impl.h). sigmoid is evaluated on the side where exp() cannot overflow, so
// |x| up to 1e4 (or inf) gives 0 or 1, never NaN. gelu is x Phi(x) (normal_cdf_f32).

template <Act A>
FASTNN_MATH_INLINE float act_fwd(float x, float beta, float threshold) {
  if constexpr (A == Act::none) return x;
  if constexpr (A == Act::relu) return x < 0.f ? 0.f : x;  // NaN passes through
  if constexpr (A == Act::sigmoid) return sigmoid_f32(x);
  if constexpr (A == Act::tanh) return tanh_f32(x);
  if constexpr (A == Act::gelu) return x * normal_cdf_f32(x);
  if constexpr (A == Act::softplus) {
    // NOTE: PyTorch's rule: linear above the threshold (where log1p(exp(z)) == z in float32
    // anyway); below it log1p(exp(z)), which cannot overflow because z <= threshold.
    float z = beta * x;
    return z > threshold ? x : log1pexp_f32(z) / beta;
  }
  return x;
}

// dy/dx given the input x and the output y.
template <Act A>
FASTNN_MATH_INLINE float act_grad(float x, float y, float beta, float threshold) {
  if constexpr (A == Act::none) return 1.f;
  // relu'(0) = 0; at a NaN output the gradient passes, as PyTorch's threshold_backward
  // (0 only where y <= 0).
  if constexpr (A == Act::relu) return y <= 0.f ? 0.f : 1.f;
  if constexpr (A == Act::sigmoid) return y * (1.f - y);
  if constexpr (A == Act::tanh) return 1.f - y * y;
  if constexpr (A == Act::gelu) {
    float g;  // exp(-x^2 / 2), from Phi's own computation
    const float cdf = normal_cdf_f32(x, &g);
    return cdf + x * (0.39894228040143268f * g);
  }
  if constexpr (A == Act::softplus) {
    float z = beta * x;
    return z > threshold ? 1.f : sigmoid_f32(z);
  }
  return 1.f;
}

// Calls f.template operator()<A>() with A fixed at compile time, so the per-element switch
// never sits inside a hot loop.
template <class F>
inline void dispatch_act(Act a, F&& f) {
  switch (a) {
    case Act::none: f.template operator()<Act::none>(); break;
    case Act::relu: f.template operator()<Act::relu>(); break;
    case Act::sigmoid: f.template operator()<Act::sigmoid>(); break;
    case Act::tanh: f.template operator()<Act::tanh>(); break;
    case Act::gelu: f.template operator()<Act::gelu>(); break;
    case Act::softplus: f.template operator()<Act::softplus>(); break;
  }
}

// Kernels (csrc/cpu/activation.cpp). y = act(x); dx = dy * act'(x) (dx overwritten).
// x, y, dy, dx: n floats, contiguous. x may be null for acts that do not need it.
void activation_fwd(const ActParams& p, const float* x, float* y, int64_t n);
void activation_bwd(const ActParams& p, const float* dy, const float* x, const float* y, float* dx,
                    int64_t n);
// The same on the calling thread only (for callers that split the work themselves, e.g. a
// GEMM epilogue on a finished tile), at the active ISA's vector width; y may alias x.
void act_fwd_span(const ActParams& p, const float* x, float* y, int64_t n);
void act_bwd_span(const ActParams& p, const float* dy, const float* x, const float* y, float* dx,
                  int64_t n);
// y = exp(x) (exp_f32, cpu/fastmath.h), n floats, on the calling thread; y may alias x.
void exp_span(const float* x, float* y, int64_t n);

}  // namespace fastnn
