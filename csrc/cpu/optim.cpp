// Optimizer update kernels (PyTorch's single-tensor rules, applied to many tensors at once).
//
// NOTE (numerics): each update reproduces the float32 operation order of PyTorch's
// non-fused CPU implementation (torch/optim/sgd.py and adam.py, `_single_tensor_*`), one
// PyTorch tensor op at a time, so that trajectories agree with torch.optim to a few ulps per
// step instead of drifting apart. On AVX2/AVX-512 the loops run in kernels/optim_<isa>.cpp,
// which follow ATen's vectorised kernels (an add with alpha is one FMA there); the scalar
// loops here are the generic path and follow ATen's scalar kernels (a separate multiply and
// add: at the baseline ISA the compiler cannot contract them into an FMA).
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "cpu/isa.h"
#include "cpu/kernels/optim_kernels.h"

namespace fastnn {

namespace {

// Optimizer updates stream 3-5 arrays per element and do little math: below this many
// elements the pool's wake-up costs more than it saves.
constexpr int64_t kGrain = 1 << 15;

// fn(slot, begin, end) over every slot, each tensor split evenly over the pool in 16-float
// (64-byte) units, so no line is written by two threads.
// NOTE (speed): per tensor, not over the concatenation of all of them: a weight's gradient was
// just written by the backward's GEMM, whose threads split it by rows in the same units
// (dense.cpp, split_range), so each thread updates the half its own core wrote and still holds
// in L2. Split over the concatenation, the boundary fell 22 rows into the other half of
// a 256x784 weight.
template <class Slot, class F>
void for_each_span(const std::vector<Slot>& slots, F&& fn) {
  int64_t total = 0;
  for (const Slot& s : slots) total += s.n;
  if (total == 0) return;
  const int T = (int)std::min<int64_t>(get_num_threads(), (total + kGrain - 1) / kGrain);
  auto part = [&](int t, int nt) {
    for (const Slot& s : slots) {
      const auto [b, e] = split_range(s.n, t, nt, 16);
      if (b < e) fn(s, b, e);
    }
  };
  if (T <= 1) part(0, 1);
  else parallel_run_balanced(T, part);  // the backward's shares (see dense.cpp)
}

#ifdef FASTNN_X86
// The update on the active ISA's SIMD loop (kernels/optim_<isa>.cpp); false on the generic
// path, which the caller then runs itself.
template <class Hyper, class Slot>
bool simd_update(const Hyper& h, const std::vector<Slot>& slots,
                 void (*avx512)(const Hyper&, const Slot&, int64_t, int64_t),
                 void (*avx2)(const Hyper&, const Slot&, int64_t, int64_t)) {
  const Isa isa = active_isa();
  if (isa == Isa::generic) return false;
  const auto span = isa == Isa::avx512 ? avx512 : avx2;
  for_each_span(slots, [&](const Slot& s, int64_t b, int64_t e) { span(h, s, b, e); });
  return true;
}
#endif

}  // namespace

void sgd_update(const SgdHyper& h, const std::vector<SgdSlot>& slots) {
#ifdef FASTNN_X86
  if (simd_update(h, slots, sgd_span_avx512, sgd_span_avx2)) return;
#endif
  for_each_span(slots, [&](const SgdSlot& s, int64_t b, int64_t e) {
    float* p = s.p;          // (n,) param, in place
    const float* gr = s.g;   // (n,) grad
    float* buf = s.buf;      // (n,) momentum buffer, in place (or null)
    for (int64_t j = b; j < e; ++j) {
      float g = h.maximize ? -gr[j] : gr[j];
      if (h.weight_decay != 0.f) g = g + h.weight_decay * p[j];  // grad.add(param, alpha=wd)
      if (buf) {
        float bj;
        if (s.first) {
          bj = g;  // NOTE: PyTorch clones the gradient on the first step, no dampening
        } else {
          bj = buf[j] * h.momentum;                 // buf.mul_(momentum)
          bj = bj + h.one_minus_dampening * g;      //    .add_(grad, alpha=1 - dampening)
        }
        buf[j] = bj;
        g = h.nesterov ? g + h.momentum * bj : bj;  // grad.add(buf, alpha=momentum) or buf
      }
      p[j] = p[j] + h.neg_lr * g;  // param.add_(grad, alpha=-lr)
    }
  });
}

void adam_update(const AdamHyper& h, const std::vector<AdamSlot>& slots) {
  // NOTE: ATen's lerp switches formula at weight 0.5 for accuracy; 1 - beta1 is almost always
  // small (0.1), but follow it either way so any beta1 matches.
  const float w1 = h.beta1_weight;
  const bool small = std::fabs(w1) < 0.5f;
  const float w1c = 1.f - w1;
#ifdef FASTNN_X86
  if (simd_update(h, slots, adam_span_avx512, adam_span_avx2)) return;
#endif
  for_each_span(slots, [&](const AdamSlot& s, int64_t b, int64_t e) {
    float* p = s.p;          // (n,) param, in place
    const float* gr = s.g;   // (n,) grad
    float* m = s.m;          // (n,) exp_avg, in place
    float* v = s.v;          // (n,) exp_avg_sq, in place
    const float step = s.neg_step_size, bc2 = s.bc2_sqrt;
    for (int64_t j = b; j < e; ++j) {
      float g = h.maximize ? -gr[j] : gr[j];
      if (h.weight_decay != 0.f) g = g + h.weight_decay * p[j];  // grad.add(param, alpha=wd)
      float mj = m[j];
      mj = small ? mj + w1 * (g - mj) : g - (g - mj) * w1c;    // exp_avg.lerp_(grad, 1 - b1)
      float vj = v[j] * h.beta2;                               // exp_avg_sq.mul_(beta2)
      vj = vj + (h.one_minus_beta2 * g) * g;                   //   .addcmul_(g, g, value=1-b2)
      m[j] = mj;
      v[j] = vj;
      // NOTE: sqrt(v) / sqrt(bc2) + eps, not sqrt(v / bc2) + eps: PyTorch's order, and eps
      // is added after the bias correction, as in the paper's final form.
      const float denom = std::sqrt(vj) / bc2 + h.eps;
      p[j] = p[j] + (step * mj) / denom;  // param.addcdiv_(exp_avg, denom, value=-step_size)
    }
  });
}

}  // namespace fastnn
