#include "ops/optim.h"

#include <cmath>
#include <string>

#include "cpu/optim.h"
#include "ops/common.h"

namespace fastnn {

namespace {

std::string item(const char* list, size_t i) { return str(list, "[", i, "]"); }

// t is float32 and C-contiguous, else the error names it "<list>[i]". NOTE: the name is
// formatted only on failure; formatting it for every array cost ~0.3 us each.
void check_f32_contig_item(const Tensor& t, const char* op, const char* list, size_t i) {
  if (t.dtype() != DType::f32 || !t.is_contiguous()) {
    const std::string name = item(list, i);
    check_dtype(t, DType::f32, op, name.c_str());
    check_contiguous(t, op, name.c_str());
  }
}

// Every array must be float32, C-contiguous and shaped like params[i]; the bindings already
// check writability (they know which lists are updated in place).
void check_like(const char* op, const char* list, const std::vector<Tensor>& ts,
                const std::vector<Tensor>& params) {
  if (ts.size() != params.size())
    fail(op, list, " has ", ts.size(), " arrays but params has ", params.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    check_f32_contig_item(ts[i], op, list, i);
    if (ts[i].shape() != params[i].shape())
      fail(op, item(list, i), " must have shape ", shape_str(params[i].shape()), " like params[",
           i, "], got ", shape_str(ts[i].shape()));
  }
}

void check_params(const char* op, const std::vector<Tensor>& params) {
  for (size_t i = 0; i < params.size(); ++i) check_f32_contig_item(params[i], op, "params", i);
}

// NaN fails every comparison, so `!(x >= 0)` also rejects NaN.
void check_nonneg(const char* op, const char* what, double x) {
  if (!(x >= 0)) fail(op, "invalid ", what, ": ", x);
}

}  // namespace

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& bufs, const std::vector<bool>& first,
              const SgdOptions& o) {
  const char* op = "sgd";
  check_nonneg(op, "learning rate", o.lr);
  check_nonneg(op, "momentum value", o.momentum);
  check_nonneg(op, "weight_decay value", o.weight_decay);
  if (!std::isfinite(o.dampening)) fail(op, "invalid dampening value: ", o.dampening);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    fail(op, "nesterov momentum requires a momentum and zero dampening, got momentum=",
         o.momentum, ", dampening=", o.dampening);
  check_params(op, params);
  check_like(op, "grads", grads, params);
  const bool use_buf = o.momentum != 0;
  if (use_buf) {
    check_like(op, "momentum_buffers", bufs, params);
    if (first.size() != params.size())
      fail(op, "first_step has ", first.size(), " flags but params has ", params.size());
  }
  // NOTE: PyTorch converts each Python scalar expression (computed in double) to float once;
  // e.g. float(1 - dampening), not 1 - float(dampening).
  SgdHyper h{(float)-o.lr, (float)o.momentum, (float)(1.0 - o.dampening),
             (float)o.weight_decay, o.nesterov, o.maximize};
  std::vector<SgdSlot> slots(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    slots[i] = SgdSlot{params[i].data<float>(), grads[i].data<float>(),
                       use_buf ? bufs[i].data<float>() : nullptr, use_buf && first[i],
                       params[i].numel()};
  sgd_update(h, slots);
}

void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
               const std::vector<int64_t>& steps, const AdamOptions& o) {
  const char* op = "adam";
  check_nonneg(op, "learning rate", o.lr);
  check_nonneg(op, "epsilon value", o.eps);
  check_nonneg(op, "weight_decay value", o.weight_decay);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail(op, "invalid beta parameter at index 0: ", o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail(op, "invalid beta parameter at index 1: ", o.beta2);
  check_params(op, params);
  check_like(op, "grads", grads, params);
  check_like(op, "exp_avgs", exp_avgs, params);
  check_like(op, "exp_avg_sqs", exp_avg_sqs, params);
  if (steps.size() != params.size())
    fail(op, "steps has ", steps.size(), " counts but params has ", params.size());
  AdamHyper h{(float)(1.0 - o.beta1), (float)o.beta2, (float)(1.0 - o.beta2), (float)o.eps,
              (float)o.weight_decay, o.maximize};
  std::vector<AdamSlot> slots(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (steps[i] < 1)
      fail(op, "steps[", i, "] must be >= 1 (counted after increment), got ", steps[i]);
    // NOTE: bias corrections in double, as PyTorch's Python floats, then rounded once.
    const double t = (double)steps[i];
    const double bc1 = 1.0 - std::pow(o.beta1, t);
    const double bc2 = 1.0 - std::pow(o.beta2, t);
    slots[i] = AdamSlot{params[i].data<float>(), grads[i].data<float>(), exp_avgs[i].data<float>(),
                        exp_avg_sqs[i].data<float>(), (float)(-(o.lr / bc1)),
                        (float)std::sqrt(bc2), params[i].numel()};
  }
  adam_update(h, slots);
}

}  // namespace fastnn
