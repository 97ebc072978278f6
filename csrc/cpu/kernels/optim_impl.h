// The SGD and Adam element loops on SIMD registers; included by optim_<isa>.cpp, each of which
// first includes its ISA's `struct V` and `struct S` (simd_<isa>.h, simd_scalar.h) and defines
// the two function names. The span contracts are optim_kernels.h's.
//
// NOTE (numerics): these follow PyTorch's *vectorised* CPU kernels, one op at a time, because
// that is the code torch.optim's single-tensor path runs on an AVX2/AVX-512 machine:
//   - `a.add(b, alpha=s)` / `a.add_(b, alpha=s)` is fmadd(b, s, a) (ATen ufunc::add): one
//     rounding, so V::fma here;
//   - `mul_`, `sqrt`, `/`, `add_(eps)` are single IEEE operations, the same in every path;
//   - `lerp_(end, w)` is fmadd(w, end - self, self) for |w| < 0.5, else
//     fmadd(w - 1, end - self, end) (ATen lerp_vec);
//   - `addcmul_(t1, t2, value=s)` is fmadd(s * t1, t2, self): ATen writes
//     self + s * t1 * t2 on its vector type and GCC contracts the last multiply-add (matches
//     torch 2.13 bit for bit, measured); `addcdiv_(t1, t2, value=s)` is self + (s * t1) / t2.
// This file is compiled with -ffp-contract=off (CMakeLists.txt), so V::fma is the only FMA.
// Elements past the last full register go through the same code on one float at a time
// (struct S in simd_scalar.h, with std::fma), so every element of a tensor is rounded alike.
#ifdef FASTNN_X86
#include <cmath>
#include <cstdint>

#include "cpu/kernels/optim_kernels.h"

namespace fastnn {

namespace {

// One register of W elements at j: the whole SGD rule (see SgdHyper).
template <class T, bool Mom>
inline void sgd_one(const SgdHyper& h, const SgdSlot& s, int64_t j) {
  using R = typename T::R;
  R g = T::load(s.g + j);
  if (h.maximize) g = T::neg(g);
  if (h.weight_decay != 0.f) g = T::fma(T::load(s.p + j), T::set1(h.weight_decay), g);
  if constexpr (Mom) {
    R b;
    if (s.first) {
      b = g;  // PyTorch clones the gradient on the first step, no dampening
    } else {  // buf.mul_(momentum).add_(grad, alpha=1 - dampening)
      b = T::fma(g, T::set1(h.one_minus_dampening),
                 T::mul(T::load(s.buf + j), T::set1(h.momentum)));
    }
    T::store(s.buf + j, b);
    g = h.nesterov ? T::fma(b, T::set1(h.momentum), g) : b;  // grad.add(buf, alpha=momentum)
  }
  T::store(s.p + j, T::fma(g, T::set1(h.neg_lr), T::load(s.p + j)));  // param.add_(grad, -lr)
}

// NOTE (speed): the loops run on copies of the hyperparameters and the slot. Through the
// references, every store to p (a float*) might have changed h or s, so GCC reloaded the
// pointers and hyperparameters and re-tested maximize and weight_decay on every register of
// elements; locals whose address is never taken cannot alias p.
template <bool Mom>
inline void sgd_loop(const SgdHyper& hr, const SgdSlot& sr, int64_t b, int64_t e) {
  const SgdHyper h = hr;
  const SgdSlot s = sr;
  int64_t j = b;
  for (; j + V::W <= e; j += V::W) sgd_one<V, Mom>(h, s, j);
  for (; j < e; ++j) sgd_one<S, Mom>(h, s, j);
}

template <class T>
inline void adam_one(const AdamHyper& h, const AdamSlot& s, int64_t j) {
  using R = typename T::R;
  R g = T::load(s.g + j);
  if (h.maximize) g = T::neg(g);
  const R p = T::load(s.p + j);
  if (h.weight_decay != 0.f) g = T::fma(p, T::set1(h.weight_decay), g);
  // exp_avg.lerp_(grad, 1 - beta1)
  const R m0 = T::load(s.m + j);
  const float w = h.beta1_weight;
  const bool small = std::fabs(w) < 0.5f;
  const R m = T::fma(T::set1(small ? w : w - 1.f), T::sub(g, m0), small ? m0 : g);
  // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
  const R v = T::fma(T::mul(T::set1(h.one_minus_beta2), g), g,
                     T::mul(T::load(s.v + j), T::set1(h.beta2)));
  T::store(s.m + j, m);
  T::store(s.v + j, v);
  // denom = (exp_avg_sq.sqrt() / sqrt(bias_correction2)).add_(eps)
  const R denom = T::add(T::div(T::sqrt(v), T::set1(s.bc2_sqrt)), T::set1(h.eps));
  // param.addcdiv_(exp_avg, denom, value=-step_size)
  T::store(s.p + j, T::add(p, T::div(T::mul(T::set1(s.neg_step_size), m), denom)));
}

}  // namespace

void FASTNN_SGD_SPAN(const SgdHyper& h, const SgdSlot& s, int64_t b, int64_t e) {
  if (s.buf) sgd_loop<true>(h, s, b, e);
  else sgd_loop<false>(h, s, b, e);
}

void FASTNN_ADAM_SPAN(const AdamHyper& hr, const AdamSlot& sr, int64_t b, int64_t e) {
  const AdamHyper h = hr;  // (copies: see sgd_loop)
  const AdamSlot s = sr;
  int64_t j = b;
  for (; j + V::W <= e; j += V::W) adam_one<V>(h, s, j);
  for (; j < e; ++j) adam_one<S>(h, s, j);
}

}  // namespace fastnn
#endif
