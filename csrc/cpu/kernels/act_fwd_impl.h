// The loops of act_fwd.h; included by act_fwd_<isa>.cpp and cpu/activation.cpp (generic),
// each of which first defines FASTNN_ACT_SUFFIX (the functions' name suffix). The ISA files
// also define FASTNN_ACT_VEC after including their simd_<isa>.h: exp, sigmoid, tanh, gelu and
// softplus (gelu's and softplus's backward too) then run on SIMD registers (vmath_impl.h), relu
// as the auto-vectorised scalar loops.
#include <cstdint>

#include "cpu/act.h"
#include "cpu/fastmath.h"
#ifdef FASTNN_ACT_VEC
#include "cpu/kernels/vmath_impl.h"
#endif

#define FASTNN_ACT_CAT2(a, b) a##b
#define FASTNN_ACT_CAT(a, b) FASTNN_ACT_CAT2(a, b)

namespace fastnn {

// y = act(x); y may alias x.
void FASTNN_ACT_CAT(act_fwd_span_, FASTNN_ACT_SUFFIX)(const ActParams& p, const float* x,
                                                       float* y, int64_t n) {
  dispatch_act(p.act, [&]<Act A>() {
#ifdef FASTNN_ACT_VEC
    // The SIMD forms (vmath_impl.h) where there are some.
    if constexpr (A == Act::sigmoid) return vmap<vsigmoid<V>, vsigmoid<S>>(x, y, n);
    if constexpr (A == Act::tanh) return vmap<vtanh<V>, vtanh<S>>(x, y, n);
    if constexpr (A == Act::gelu) return vmap<vgelu<V>, vgelu<S>, 2>(x, y, n);
    if constexpr (A == Act::softplus) return vmapf<2>(x, y, n, Softplus{p.beta, p.threshold});
#endif
    const float beta = p.beta, thr = p.threshold;
    for (int64_t i = 0; i < n; ++i) y[i] = act_fwd<A>(x[i], beta, thr);
  });
}

// dx = dy * act'(x or y); x may be null for acts that do not need it (see act.h).
void FASTNN_ACT_CAT(act_bwd_span_, FASTNN_ACT_SUFFIX)(const ActParams& p, const float* dy,
                                                       const float* x, const float* y, float* dx,
                                                       int64_t n) {
  dispatch_act(p.act, [&]<Act A>() {
    const float beta = p.beta, thr = p.threshold;
    // One loop per kind of saved value, with no pointer test inside it.
    if constexpr (A == Act::relu) {
      // NOTE: a select on an unconditional load (not dy * mask): 0 where y <= 0 even when dy
      // is NaN, as PyTorch's threshold_backward; relu'(0) = 0.
      for (int64_t i = 0; i < n; ++i) {
        const float d = dy[i];
        dx[i] = y[i] <= 0.f ? 0.f : d;  // (a NaN y passes d, as PyTorch)
      }
    } else if constexpr (act_backward_needs_input(A)) {
#ifdef FASTNN_ACT_VEC
      // dy * gelu'(x), and dy * (z > threshold ? 1 : sigmoid(z)) with z = beta x for
      // softplus, in act_grad's order, on SIMD registers.
      if constexpr (A == Act::gelu) return vzip(dy, x, dx, n, GeluGradMul{});
      if constexpr (A == Act::softplus) return vzip(dy, x, dx, n, SoftplusGradMul{beta, thr});
#endif
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_grad<A>(x[i], 0.f, beta, thr);
    } else {
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_grad<A>(0.f, y[i], beta, thr);
    }
  });
}

void FASTNN_ACT_CAT(exp_span_, FASTNN_ACT_SUFFIX)(const float* x, float* y, int64_t n) {
#ifdef FASTNN_ACT_VEC
  vmap<vexp<V>, vexp<S>>(x, y, n);
#else
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i]);
#endif
}

}  // namespace fastnn

#undef FASTNN_ACT_CAT
#undef FASTNN_ACT_CAT2
