#include "core/parallel.h"
#include "cpu/act.h"
#include "cpu/isa.h"
#include "cpu/kernels/act_fwd.h"

// The generic copies of the span loops (act_fwd_span_generic, ...); the ISA copies are
// kernels/act_fwd_<isa>.cpp.
#define FASTNN_ACT_SUFFIX generic
#include "cpu/kernels/act_fwd_impl.h"
#undef FASTNN_ACT_SUFFIX

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

void act_fwd_span(const ActParams& p, const float* x, float* y, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return act_fwd_span_avx512(p, x, y, n);
    case Isa::avx2: return act_fwd_span_avx2(p, x, y, n);
    case Isa::generic: break;
  }
#endif
  act_fwd_span_generic(p, x, y, n);
}

void act_bwd_span(const ActParams& p, const float* dy, const float* x, const float* y, float* dx,
                  int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return act_bwd_span_avx512(p, dy, x, y, dx, n);
    case Isa::avx2: return act_bwd_span_avx2(p, dy, x, y, dx, n);
    case Isa::generic: break;
  }
#endif
  act_bwd_span_generic(p, dy, x, y, dx, n);
}

void exp_span(const float* x, float* y, int64_t n) {
#ifdef FASTNN_X86
  switch (active_isa()) {
    case Isa::avx512: return exp_span_avx512(x, y, n);
    case Isa::avx2: return exp_span_avx2(x, y, n);
    case Isa::generic: break;
  }
#endif
  exp_span_generic(x, y, n);
}

void activation_fwd(const ActParams& p, const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { act_fwd_span(p, x + b, y + b, e - b); });
}

void activation_bwd(const ActParams& p, const float* dy, const float* x, const float* y, float* dx,
                    int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    act_bwd_span(p, dy + b, x ? x + b : nullptr, y ? y + b : nullptr, dx + b, e - b);
  });
}

}  // namespace fastnn
