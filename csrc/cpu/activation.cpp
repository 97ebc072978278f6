#include "core/parallel.h"
#include "cpu/act.h"

namespace fastnn {

const char* act_name(Act a) {
  switch (a) {
    case Act::none: return "identity";
    case Act::relu: return "relu";
    case Act::sigmoid: return "sigmoid";
    case Act::tanh: return "tanh";
    case Act::gelu: return "gelu";
    case Act::softplus: return "softplus";
  }
  return "?";
}

namespace {
// Elementwise work below this many floats stays on the calling thread: waking the pool costs
// more than it saves.
constexpr int64_t kGrain = 1 << 15;
}  // namespace

void activation_fwd(const ActParams& p, const float* x, float* y, int64_t n) {
  dispatch_act(p.act, [&]<Act A>() {
    float beta = p.beta, thr = p.threshold;
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = act_fwd<A>(x[i], beta, thr);
    });
  });
}

void activation_bwd(const ActParams& p, const float* dy, const float* x, const float* y, float* dx,
                    int64_t n) {
  dispatch_act(p.act, [&]<Act A>() {
    float beta = p.beta, thr = p.threshold;
    // One loop per kind of saved value, with no pointer test inside it, so the loops over y
    // (relu, sigmoid, tanh) vectorise.
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      if constexpr (A == Act::relu) {
        // NOTE: a select on an unconditional load (not dy * mask): 0 where y <= 0 even when dy
        // is NaN, as PyTorch's threshold_backward; relu'(0) = 0.
        for (int64_t i = b; i < e; ++i) {
          const float d = dy[i];
          dx[i] = y[i] > 0.f ? d : 0.f;
        }
      } else if constexpr (act_backward_needs_input(A)) {
        for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * act_grad<A>(x[i], 0.f, beta, thr);
      } else {
        for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * act_grad<A>(0.f, y[i], beta, thr);
      }
    });
  });
}

}  // namespace fastnn
