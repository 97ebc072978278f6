// Multi-tensor optimizer updates: one call updates every parameter of a param group in place,
// in one parallel region: each thread takes its share of every tensor (cpu/optim.cpp says why
// per tensor).
#pragma once
#include <cstdint>
#include <vector>

namespace fastnn {

// Hyper-parameters already rounded to float32 the way PyTorch rounds its Python scalars
// (each scalar expression is computed in double, then converted once).
struct SgdHyper {
  float neg_lr;               // -lr
  float momentum;             // momentum (0: no buffer)
  float one_minus_dampening;  // 1 - dampening
  float weight_decay;         // L2 penalty folded into the gradient
  bool nesterov;
  bool maximize;
};

// One parameter tensor of an SGD step; all pointers cover n contiguous floats.
struct SgdSlot {
  float* p;        // param: updated in place
  const float* g;  // grad: read only
  float* buf;      // momentum buffer: overwritten (first) or updated in place;
                   // null when momentum == 0
  bool first;      // true: the buffer is (re)initialised to the gradient, as PyTorch's None buffer
  int64_t n;
};

struct AdamHyper {
  float beta1_weight;     // 1 - beta1: the lerp weight of the first moment
  float beta2;            // decay of the second moment
  float one_minus_beta2;  // 1 - beta2
  float eps;
  float weight_decay;
  bool maximize;
};

// One parameter tensor of an Adam step. The bias corrections depend on the per-parameter
// step count, so they travel with the slot.
struct AdamSlot {
  float* p;        // param: updated in place
  const float* g;  // grad: read only
  float* m;        // exp_avg: updated in place
  float* v;        // exp_avg_sq: updated in place
  float neg_step_size;  // -lr / (1 - beta1^t)
  float bc2_sqrt;       // sqrt(1 - beta2^t)
  int64_t n;
};

void sgd_update(const SgdHyper& h, const std::vector<SgdSlot>& slots);
void adam_update(const AdamHyper& h, const std::vector<AdamSlot>& slots);

}  // namespace fastnn
