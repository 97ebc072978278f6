// The loops of act_fwd.h; included by act_fwd_<isa>.cpp and cpu/activation.cpp (generic),
// each of which first defines FASTNN_ACT_SUFFIX (the functions' name suffix).
#include <cstdint>

#include "cpu/act.h"
#include "cpu/fastmath.h"

#define FASTNN_ACT_CAT2(a, b) a##b
#define FASTNN_ACT_CAT(a, b) FASTNN_ACT_CAT2(a, b)

namespace fastnn {

// y = act(x); y may alias x.
void FASTNN_ACT_CAT(act_fwd_span_, FASTNN_ACT_SUFFIX)(const ActParams& p, const float* x,
                                                       float* y, int64_t n) {
  dispatch_act(p.act, [&]<Act A>() {
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
        dx[i] = y[i] > 0.f ? d : 0.f;
      }
    } else if constexpr (act_backward_needs_input(A)) {
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_grad<A>(x[i], 0.f, beta, thr);
    } else {
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_grad<A>(0.f, y[i], beta, thr);
    }
  });
}

void FASTNN_ACT_CAT(exp_span_, FASTNN_ACT_SUFFIX)(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i]);
}

}  // namespace fastnn

#undef FASTNN_ACT_CAT
#undef FASTNN_ACT_CAT2
