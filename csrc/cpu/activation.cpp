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
    parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        dx[i] = dy[i] * act_grad<A>(x ? x[i] : 0.f, y ? y[i] : 0.f, beta, thr);
    });
  });
}

}  // namespace fastnn
