// The _C_cuda ops: the same names, signatures (argument names, order, defaults), return
// structure, checks and messages as the _C bindings (csrc/bindings/bind_*.cpp and the op
// layer csrc/ops/*.cpp they call), on CudaArrays. Each check below mirrors the CPU op's
// check of the same name; the kernels are in this folder's .cu files.
// NOTE: checks that depend on array values (class targets, max/min indices) read a small
// result back from the device, i.e. they synchronise, as the CPU op's checks do before it
// computes (PyTorch's CUDA ops use device-side asserts instead).
#include "cuda/ops.h"

#include <pybind11/stl.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <optional>

#include "bindings/shared.h"
#include "cpu/act.h"
#include "cpu/broadcast.h"
#include "cuda/array.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {
namespace cuda {

namespace {
std::atomic<int> g_precision{(int)Precision::highest};
const char* kPrecisionNames[] = {"highest", "high", "medium"};
}  // namespace

void set_precision(const std::string& name) {
  for (int i = 0; i < 3; ++i)
    if (name == kPrecisionNames[i]) {
      g_precision = i;
      return;
    }
  fail("set_matmul_precision", "precision must be 'highest', 'high' or 'medium', got '", name, "'");
}
std::string precision_name() { return kPrecisionNames[g_precision.load()]; }
Precision current_precision() { return (Precision)g_precision.load(); }

namespace {

const DType kF32 = DType::f32, kI64 = DType::i64;

const char* act_label(Act a) {
  static const char* names[] = {"identity", "relu", "sigmoid", "tanh", "gelu", "softplus"};
  return names[(int)a];
}

ActParams act_params(const char* op, int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail(op, "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
}

py::object opt_out(const std::optional<Out>& o) {
  return o ? py::cast(o->arr) : py::object(py::none());
}

const float* f(const Tensor& t) { return t.data<float>(); }
float* fo(const Out& o) { return o.t.data<float>(); }

// A view of a with a new shape of the same element count (shares the buffer).
CudaArray reshaped(const CudaArray& a, const Shape& shape) {
  CudaArray v = a;
  v.shape = shape;
  return v;
}

// ---- dense

py::object gemm_op(py::handle a, py::handle b, bool trans_a, bool trans_b, py::handle out,
                   bool accumulate) {
  const char* op = "matmul";
  int dev = -1;
  Tensor ta = arg_view(a, op, "a", dev, &kF32);
  Tensor tb = arg_view(b, op, "b", dev, &kF32);
  Tensor tc = out.is_none() ? Tensor() : arg_view(out, op, "out", dev, &kF32);
  const MatmulDims md = matmul_dims(ta, tb, trans_a, trans_b, 2, op);
  const int64_t M = md.M, N = md.N, K = md.K;
  std::optional<Out> o;
  float* c;
  if (tc.defined() && !out.is_none()) {
    check_shape(tc, {M, N}, op, "out");
    c = tc.data<float>();
  } else {
    o = new_out({M, N}, kF32, dev, op);
    c = fo(*o);
    accumulate = false;
  }
  gemm(current_precision(), trans_a, trans_b, M, N, K, f(ta), ta.size(1), 0, f(tb), tb.size(1),
       0, c, N, 0, 1, accumulate, nullptr, op);
  if (!out.is_none()) return py::reinterpret_borrow<py::object>(out);
  return py::cast(o->arr);
}

void bind_dense(py::module_& m) {
  m.def("linear_fwd", [](py::handle x, py::handle w, py::handle b, int act, float beta,
                         float threshold) {
    const char* op = "linear";
    ActParams p = act_params(op, act, beta, threshold);
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, &kF32);
    Tensor tw = arg_view(w, op, "weight", dev, &kF32);
    Tensor tb = opt_view(b, op, "bias", dev, &kF32);
    const auto [N, IN, OUT] = linear_dims(tx, tw, op);
    if (tb.defined() && !b.is_none()) check_shape(tb, {OUT}, op, "bias");
    if (p.act == Act::softplus && !(p.beta != 0.f)) fail(op, "softplus beta must be non-zero");
    Out y = new_out({N, OUT}, kF32, dev, op);
    std::optional<Out> z;
    if (act_backward_needs_input(p.act)) z = new_out({N, OUT}, kF32, dev, op);
    Epilogue ep;
    ep.bias = b.is_none() ? nullptr : f(tb);
    ep.act = (int)p.act;
    ep.beta = p.beta;
    ep.threshold = p.threshold;
    ep.z = z ? fo(*z) : nullptr;
    // y(N, OUT) = x(N, IN) · w(OUT, IN)ᵀ, w read transposed in place.
    gemm(current_precision(), false, true, N, OUT, IN, f(tx), IN, 0, f(tw), IN, 0, fo(y), OUT, 0,
         1, false, &ep, op);
    return py::make_tuple(y.arr, opt_out(z));
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("act") = 0, py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f,
     "(y, z) with y = act(x·wᵀ + b); z = x·wᵀ + b only for gelu (4) and softplus (5), else None.");

  m.def("linear_bwd", [](py::handle dy, py::handle x, py::handle w, py::handle saved, int act,
                         float beta, float threshold, bool need_dx, bool need_dw, bool need_db) {
    const char* op = "linear";
    ActParams p = act_params(op, act, beta, threshold);
    int dev = -1;
    Tensor tdy = arg_view(dy, op, "grad_output", dev, &kF32);
    Tensor tx = arg_view(x, op, "input", dev, &kF32);
    Tensor tw = arg_view(w, op, "weight", dev, &kF32);
    Tensor ts = opt_view(saved, op, "saved", dev, &kF32);
    check_ndim(tdy, 2, op, "grad_output");
    const auto [N, IN, OUT] = linear_dims(tx, tw, op);
    check_shape(tdy, {N, OUT}, op, "grad_output");
    // dZ = dy * act'(saved), then db = column sums of dZ, dx = dZ·w, dw = dZᵀ·x.
    const float* dz = f(tdy);
    std::optional<Out> dzo;
    if (p.act != Act::none) {
      const bool need_z = act_backward_needs_input(p.act);
      const char* sname = need_z ? "pre-activation" : "output";
      if (saved.is_none())
        fail(op, "backward through ", act_label(p.act), " needs the saved ", sname, ", got None");
      check_shape(ts, {N, OUT}, op, sname);
      dzo = new_out({N, OUT}, kF32, dev, op);
      act_bwd((int)p.act, p.beta, p.threshold, f(tdy), need_z ? f(ts) : nullptr,
              need_z ? nullptr : f(ts), fo(*dzo), N * OUT);
      dz = fo(*dzo);
    }
    std::optional<Out> dx, dw, db;
    const Precision prec = current_precision();
    if (need_db) {
      db = new_out({OUT}, kF32, dev, op);
      sum_f32(dz, 1, N, OUT, 1.0, fo(*db));
    }
    if (need_dx) {
      dx = new_out({N, IN}, kF32, dev, op);
      gemm(prec, false, false, N, IN, OUT, dz, OUT, 0, f(tw), IN, 0, fo(*dx), IN, 0, 1, false,
           nullptr, op);
    }
    if (need_dw) {
      dw = new_out({OUT, IN}, kF32, dev, op);
      gemm(prec, true, false, OUT, IN, N, dz, OUT, 0, f(tx), IN, 0, fo(*dw), IN, 0, 1, false,
           nullptr, op);
    }
    return py::make_tuple(opt_out(dx), opt_out(dw), opt_out(db));
  }, py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("saved"), py::arg("act") = 0,
     py::arg("beta") = 1.f, py::arg("threshold") = 20.f, py::arg("need_dx") = true,
     py::arg("need_dw") = true, py::arg("need_db") = true,
     "(dx, dw, db) of linear; saved is z for gelu/softplus, y for relu/sigmoid/tanh.");

  m.def("gemm", &gemm_op, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("out") = py::none(), py::arg("accumulate") = false,
        "c = op(a)·op(b) (2-D). With out: written into out, or added to it when accumulate.");
  m.def("mm", [](py::handle a, py::handle b) {
    return gemm_op(a, b, false, false, py::none(), false);
  }, "c = a·b for 2-D float32 a (M, K), b (K, N).");

  m.def("bmm", [](py::handle a, py::handle b, bool trans_a, bool trans_b) {
    const char* op = "matmul";
    int dev = -1;
    Tensor ta = arg_view(a, op, "a", dev, &kF32);
    Tensor tb = arg_view(b, op, "b", dev, &kF32);
    const MatmulDims md = matmul_dims(ta, tb, trans_a, trans_b, 3, op);
    const int64_t Bt = md.batch, M = md.M, N = md.N, K = md.K;
    const int64_t Ba = ta.size(0), Bb = tb.size(0);
    Out c = new_out({Bt, M, N}, kF32, dev, op);
    // A batch of 1 broadcasts through a zero batch stride.
    const int64_t sa = Ba == 1 ? 0 : ta.size(1) * ta.size(2);
    const int64_t sb = Bb == 1 ? 0 : tb.size(1) * tb.size(2);
    gemm(current_precision(), trans_a, trans_b, M, N, K, f(ta), ta.size(2), sa, f(tb),
         tb.size(2), sb, fo(c), N, M * N, Bt, false, nullptr, op);
    return c.arr;
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     "c[i] = op(a[i])·op(b[i]) for 3-D a, b; a batch of 1 broadcasts.");
}

// ---- activations
void bind_activation(py::module_& m) {
  m.def("activation_fwd", [](py::handle x, int act, float beta, float threshold) {
    ActParams p = act_params("activation", act, beta, threshold);
    const char* op = act_label(p.act);
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, &kF32);
    if (p.act == Act::softplus && !(p.beta != 0.f)) fail(op, "beta must be non-zero, got ", p.beta);
    Out y = new_out(tx.shape(), kF32, dev, op);
    act_fwd((int)p.act, p.beta, p.threshold, f(tx), fo(y), tx.numel());
    return y.arr;
  }, py::arg("x"), py::arg("act"), py::arg("beta") = 1.f, py::arg("threshold") = 20.f,
     "y = act(x). act codes: 0 identity, 1 relu, 2 sigmoid, 3 tanh, 4 gelu, 5 softplus.");
  m.def("activation_bwd", [](py::handle dy, py::handle x, py::handle y, int act, float beta,
                             float threshold) {
    ActParams p = act_params("activation", act, beta, threshold);
    const char* op = act_label(p.act);
    int dev = -1;
    Tensor tdy = arg_view(dy, op, "grad_output", dev, &kF32);
    Tensor tx = opt_view(x, op, "input", dev, &kF32);
    Tensor ty = opt_view(y, op, "output", dev, &kF32);
    const bool need_x = act_backward_needs_input(p.act);
    const bool missing = need_x ? x.is_none() : y.is_none();
    const Tensor& ref = need_x ? tx : ty;
    const char* ref_name = need_x ? "input" : "output";
    if (missing) fail(op, "backward needs the ", ref_name, ", got None");
    check_shape(ref, tdy.shape(), op, ref_name);
    Out dx = new_out(tdy.shape(), kF32, dev, op);
    act_bwd((int)p.act, p.beta, p.threshold, f(tdy), need_x ? f(tx) : nullptr,
            need_x ? nullptr : f(ty), fo(dx), tdy.numel());
    return dx.arr;
  }, py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("act"), py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f, "dx = dy * act'(x); x or y may be None when not needed.");
}

// ---- elementwise
const char* kBinNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
const char* kUnNames[] = {"neg", "abs", "exp", "log", "sqrt"};
enum { kAdd = 0, kSub, kMul, kDiv, kPow, kMaximum, kMinimum };
enum { kNeg = 0, kAbs, kExp, kLog, kSqrt };

int parse_binop(const std::string& s) {
  for (int i = 0; i < 7; ++i)
    if (s == kBinNames[i]) return i;
  fail("binary", "unknown op '", s, "' (expected add, sub, mul, div, pow, maximum, minimum)");
}
int parse_unop(const std::string& s) {
  for (int i = 0; i < 5; ++i)
    if (s == kUnNames[i]) return i;
  fail("unary", "unknown op '", s, "' (expected neg, abs, exp, log, sqrt)");
}

// The coalesced walk (cpu/broadcast.h's make_walk, with the contiguous output as its operand
// 0 so coalescing keeps the output's linear index) of operands of the given shapes.
template <int N>
Walk device_walk(const Shape& shape, const std::array<Shape, N - 1>& operand_shapes,
                 const char* op) {
  std::array<std::vector<int64_t>, N> st;
  std::array<const int64_t*, N> sp{};  // (operand 0, the output: contiguous)
  for (int k = 1; k < N; ++k) {
    st[k] = broadcast_strides(operand_shapes[k - 1], shape);
    sp[k] = st[k].data();
  }
  const auto w = make_walk<N>(shape, sp, op);
  Walk d;
  if (w.nd > kMaxDims)
    fail<std::runtime_error>(op, "at most ", kMaxDims, " non-mergeable dims are supported on "
                             "CUDA, got ", w.nd, " for shape ", shape_str(shape));
  d.nd = w.nd;
  for (int i = 0; i < d.nd; ++i) {
    d.shape[i] = w.shape[i];
    for (int k = 1; k < N; ++k) d.st[k - 1][i] = w.step[i][k];
  }
  return d;
}

void bind_elementwise(py::module_& m) {
  m.def("binary", [](py::handle a, py::handle b, const std::string& ops) {
    const int o = parse_binop(ops);
    const char* name = kBinNames[o];
    int dev = -1;
    Tensor ta = arg_view(a, name, "input", dev, nullptr);
    Tensor tb = arg_view(b, name, "other", dev, nullptr);
    if (ta.dtype() != tb.dtype())
      fail<TypeError>(name, "input and other must have the same dtype, got ",
                      dtype_name(ta.dtype()), " and ", dtype_name(tb.dtype()));
    if (ta.dtype() == DType::i64 && (o == kDiv || o == kPow))
      fail<TypeError>(name, "int64 inputs are computed in float32: cast them first, got int64");
    Shape shape = broadcast_shape(ta.shape(), tb.shape(), name);
    Out out = new_out(shape, ta.dtype(), dev, name);
    if (out.t.numel() == 0) return out.arr;
    const Walk w = device_walk<3>(shape, {ta.shape(), tb.shape()}, name);
    if (ta.dtype() == DType::f32) binary_f32(o, w, f(ta), f(tb), fo(out));
    else binary_i64(o, w, ta.data<int64_t>(), tb.data<int64_t>(), out.t.data<int64_t>());
    return out.arr;
  }, py::arg("a"), py::arg("b"), py::arg("op"),
     "out = a op b with NumPy broadcasting; a, b: same dtype (float32, or int64 for "
     "add/sub/mul/maximum/minimum).");
  m.def("binary_bwd", [](py::handle g, py::handle a, py::handle b, const std::string& ops,
                         bool need_a, bool need_b) {
    const int o = parse_binop(ops);
    const char* name = kBinNames[o];
    int dev = -1;
    Tensor tg = arg_view(g, name, "grad_output", dev, &kF32);
    Tensor ta = arg_view(a, name, "input", dev, &kF32);
    Tensor tb = arg_view(b, name, "other", dev, &kF32);
    Shape shape = broadcast_shape(ta.shape(), tb.shape(), name);
    check_shape(tg, shape, name, "grad_output");
    std::optional<Out> ga, gb;
    if (need_a) ga = new_out(shape, kF32, dev, name);
    if (need_b) gb = new_out(shape, kF32, dev, name);
    if ((need_a || need_b) && tg.numel() > 0)
      binary_bwd_f32(o, device_walk<3>(shape, {ta.shape(), tb.shape()}, name), f(tg), f(ta),
                     f(tb), ga ? fo(*ga) : nullptr, gb ? fo(*gb) : nullptr);
    return py::make_tuple(opt_out(ga), opt_out(gb));
  }, py::arg("g"), py::arg("a"), py::arg("b"), py::arg("op"), py::arg("need_a") = true,
     py::arg("need_b") = true,
     "(da, db): gradients of sum(g * (a op b)) at the broadcast shape (None where not wanted).");
  m.def("binary_inplace", [](py::handle dst, py::handle src, const std::string& ops,
                             double alpha, const std::string& name_s) {
    const int o = parse_binop(ops);
    const char* name = name_s.c_str();
    int dev = -1;
    Tensor td = arg_view(dst, name, "self", dev, nullptr);
    Tensor ts = arg_view(src, name, "other", dev, nullptr);
    if (o != kAdd && o != kMul && o != kDiv)
      fail(name, "in-place op must be add, mul or div, got ", kBinNames[o]);
    if (td.dtype() != ts.dtype())
      fail<TypeError>(name, "other must have self's dtype ", dtype_name(td.dtype()), ", got ",
                      dtype_name(ts.dtype()));
    if (td.dtype() == DType::i64 && o == kDiv)
      fail<TypeError>(name, "true division of an int64 tensor in place would give float32; "
                      "result type float32 can't be cast to the desired output type int64");
    Shape shape = broadcast_shape(td.shape(), ts.shape(), name);
    if (shape != td.shape())
      fail(name, "other of shape ", shape_str(ts.shape()), " does not broadcast to self's shape ",
           shape_str(td.shape()), " (the result would be ", shape_str(shape), ")");
    if (td.dtype() == DType::i64 && alpha != (double)(int64_t)alpha)
      fail<TypeError>(name, "alpha must be an integer for an int64 tensor, got ", alpha);
    if (td.numel() == 0) return;
    const Walk w = device_walk<2>(shape, {ts.shape()}, name);
    if (td.dtype() == DType::f32)
      binary_inplace_f32(o, w, td.data<float>(), f(ts), (float)alpha);
    else
      binary_inplace_i64(o, w, td.data<int64_t>(), ts.data<int64_t>(), (int64_t)alpha);
  }, py::arg("dst"), py::arg("src"), py::arg("op"), py::arg("alpha") = 1.0,
     py::arg("name") = "add_",
     "dst = dst op (alpha * src) in place (op: add, mul, div); src broadcasts to dst's shape.");
  m.def("unary", [](py::handle x, const std::string& ops) {
    const int o = parse_unop(ops);
    const char* name = kUnNames[o];
    int dev = -1;
    Tensor tx = arg_view(x, name, "input", dev, nullptr);
    if (tx.dtype() == DType::i64 && o != kNeg && o != kAbs)
      fail<TypeError>(name, "input must be float32 (int64 is cast by the caller), got int64");
    Out y = new_out(tx.shape(), tx.dtype(), dev, name);
    if (tx.dtype() == DType::f32) unary_f32(o, f(tx), fo(y), tx.numel());
    else unary_i64(o, tx.data<int64_t>(), y.t.data<int64_t>(), tx.numel());
    return y.arr;
  }, py::arg("x"), py::arg("op"), "y = op(x): neg, abs (float32, int64), exp, log, sqrt (float32).");
  m.def("unary_bwd", [](py::handle g, py::handle x, py::handle y, const std::string& ops) {
    const int o = parse_unop(ops);
    const char* name = kUnNames[o];
    int dev = -1;
    Tensor tg = arg_view(g, name, "grad_output", dev, &kF32);
    Tensor tx = opt_view(x, name, "input", dev, &kF32);
    Tensor ty = opt_view(y, name, "output", dev, &kF32);
    const bool need_y = o == kExp || o == kSqrt;
    const bool need_x = o == kAbs || o == kLog;
    if (need_x || need_y) {
      const char* ref_name = need_y ? "output" : "input";
      if (need_y ? y.is_none() : x.is_none()) fail(name, "backward needs the ", ref_name, ", got None");
      check_shape(need_y ? ty : tx, tg.shape(), name, ref_name);
    }
    Out dx = new_out(tg.shape(), kF32, dev, name);
    unary_bwd_f32(o, f(tg), need_x ? f(tx) : nullptr, need_y ? f(ty) : nullptr, fo(dx),
                  tg.numel());
    return dx.arr;
  }, py::arg("g"), py::arg("x"), py::arg("y"), py::arg("op"),
     "dx = g * op'(x); x or y may be None where op does not need it.");
  m.def("expand", [](py::handle src, std::vector<int64_t> shape, double scale) {
    const char* op = "expand";
    int dev = -1;
    Tensor ts = arg_view(src, op, "grad_output", dev, &kF32);
    Shape bs = broadcast_shape(ts.shape(), shape, op);
    if (bs != shape)
      fail(op, "grad_output of shape ", shape_str(ts.shape()), " does not broadcast to ",
           shape_str(shape));
    Out out = new_out(shape, kF32, dev, op);
    if (out.t.numel() > 0)
      expand_f32(device_walk<2>(shape, {ts.shape()}, op), f(ts), (float)scale, fo(out));
    return out.arr;
  }, py::arg("src"), py::arg("shape"), py::arg("scale") = 1.0,
     "scale * src broadcast to shape (a new contiguous array).");
}

// ---- reductions

// The first out-of-range value of an int64 array (RuntimeError on CUDA failures).
int64_t value_at(const Tensor& t, int64_t i, const char* op) {
  int64_t v = 0;
  memcpy_d2h(&v, t.data<int64_t>() + i, sizeof(v), op);
  return v;
}

void bind_reduce(py::module_& m) {
  m.def("sum", [](py::handle x, std::optional<std::vector<int64_t>> dims, bool keepdim, bool mean) {
    const char* op = mean ? "mean" : "sum";
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, nullptr);
    if (mean && tx.dtype() != DType::f32)
      fail<TypeError>(op, "input must be float32 (the mean of int64 is undefined, as in PyTorch: "
                      "cast with .float()), got ", dtype_name(tx.dtype()));
    const size_t nd = (size_t)tx.ndim();
    const SumPlan plan = sum_plan(tx.shape(), dims, op);
    const auto& runs = plan.runs;
    const int64_t count = plan.count;
    // Each run of consecutive reduced dims is one (outer, r, inner) pass, last run first; the
    // mean divides in the last pass (as the CPU op).
    Shape shape = tx.shape();
    const void* cur = tx.raw();
    std::optional<Out> out;
    for (size_t k = runs.size(); k-- > 0;) {
      auto [b, e] = runs[k];
      const int64_t outer = prod(shape, 0, b), r = prod(shape, b, e), inner = prod(shape, e, nd);
      for (size_t d = b; d < e; ++d) shape[d] = 1;
      Out o = new_out(shape, tx.dtype(), dev, op);
      if (tx.dtype() == DType::f32)
        sum_f32((const float*)cur, outer, r, inner, (mean && k == 0) ? (double)count : 1.0, fo(o));
      else
        sum_i64((const int64_t*)cur, outer, r, inner, o.t.data<int64_t>());
      out = o;  // keeps this pass's buffer alive for the next
      cur = out->arr.data;
    }
    if (keepdim) return out->arr;
    return reshaped(out->arr, plan.out);
  }, py::arg("x"), py::arg("dims") = py::none(), py::arg("keepdim") = false,
     py::arg("mean") = false,
     "Sum (or mean) over dims (None: all). float32: double accumulation; int64 sum wraps.");

  m.def("extreme", [](py::handle x, std::optional<int64_t> dim, bool keepdim, bool is_max)
        -> py::object {
    const char* op = is_max ? "max" : "min";
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, nullptr);
    if (!dim) {
      if (tx.numel() == 0)
        fail<std::runtime_error>(op, "expected a non-empty input for a reduction over all "
                                 "elements, got shape ", shape_str(tx.shape()),
                                 "; specify the reduction dim with dim=");
      Out v = new_out({}, tx.dtype(), dev, op);
      if (tx.dtype() == DType::f32) extreme_f32(is_max, f(tx), 1, tx.numel(), 1, fo(v), nullptr);
      else extreme_i64(is_max, tx.data<int64_t>(), 1, tx.numel(), 1, v.t.data<int64_t>(), nullptr);
      return py::cast(v.arr);
    }
    const DimSplit v = split_dim(tx.shape(), *dim, keepdim, op);
    const int64_t outer = v.outer, r = v.r, inner = v.inner;
    if (r == 0)
      fail<IndexError>(op, "expected reduction dim ", v.d, " to have non-zero size, got shape ",
                       shape_str(tx.shape()));
    const Shape& out_shape = v.out;
    Out val = new_out(out_shape, tx.dtype(), dev, op), idx = new_out(out_shape, kI64, dev, op);
    if (tx.dtype() == DType::f32)
      extreme_f32(is_max, f(tx), outer, r, inner, fo(val), idx.t.data<int64_t>());
    else
      extreme_i64(is_max, tx.data<int64_t>(), outer, r, inner, val.t.data<int64_t>(),
                  idx.t.data<int64_t>());
    return py::make_tuple(val.arr, idx.arr);
  }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false,
     py::arg("is_max") = true,
     "max/min over all elements (0-d array) or along dim -> (values, indices).");

  m.def("extreme_dim_bwd", [](py::handle g, py::handle idx, std::vector<int64_t> shape,
                              int64_t dim, bool keepdim, bool is_max) {
    const char* op = is_max ? "max" : "min";
    int dev = -1;
    Tensor tg = arg_view(g, op, "grad_output", dev, &kF32);
    Tensor ti = arg_view(idx, op, "indices", dev, &kI64);
    const DimSplit v = split_dim(shape, dim, keepdim, op);
    check_shape(tg, v.out, op, "grad_output");
    check_shape(ti, v.out, op, "indices");
    const int64_t outer = v.outer, r = v.r, inner = v.inner;
    int64_t kept = 0, bad;
    {
      py::gil_scoped_release nogil;
      bad = first_out_of_range(ti.data<int64_t>(), ti.numel(), 0, r, false, 0, &kept, op);
    }
    if (bad >= 0)
      fail<IndexError>(op, "indices must be in [0, ", r, "), got ", value_at(ti, bad, op));
    Out dx = new_out(shape, kF32, dev, op);
    scatter_dim_f32(f(tg), ti.data<int64_t>(), outer, r, inner, fo(dx));
    return dx.arr;
  }, py::arg("g"), py::arg("indices"), py::arg("shape"), py::arg("dim"), py::arg("keepdim"),
     py::arg("is_max") = true, "Backward of max/min along dim: g scattered to the indices.");

  m.def("extreme_all_bwd", [](py::handle x, py::handle value, py::handle g, bool is_max) {
    const char* op = is_max ? "max" : "min";
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, &kF32);
    Tensor tv = arg_view(value, op, "value", dev, &kF32);
    Tensor tg = arg_view(g, op, "grad_output", dev, &kF32);
    if (tv.numel() != 1) fail(op, "value must have one element, got shape ", shape_str(tv.shape()));
    if (tg.numel() != 1) fail(op, "grad_output must have one element, got shape ", shape_str(tg.shape()));
    Out dx = new_out(tx.shape(), kF32, dev, op);
    extreme_all_bwd_f32(f(tx), tx.numel(), f(tv), f(tg), fo(dx));
    return dx.arr;
  }, py::arg("x"), py::arg("value"), py::arg("g"), py::arg("is_max") = true,
     "Backward of max/min over all elements: g split evenly among the ties.");
}

// ---- softmax, argmax

void bind_softmax(py::module_& m) {
  m.def("softmax_fwd", [](py::handle x, int64_t dim, bool log) {
    const char* op = log ? "log_softmax" : "softmax";
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, &kF32);
    const DimSplit v = split_dim(tx.shape(), dim, true, op);
    Out y = new_out(tx.shape(), kF32, dev, op);
    softmax_fwd(f(tx), fo(y), v.outer, v.r, v.inner, log);
    return y.arr;
  }, py::arg("x"), py::arg("dim"), py::arg("log") = false,
     "softmax(x) along dim (log_softmax when log); float32, any rank.");
  m.def("softmax_bwd", [](py::handle dy, py::handle y, int64_t dim, bool log) {
    const char* op = log ? "log_softmax" : "softmax";
    int dev = -1;
    Tensor tdy = arg_view(dy, op, "grad_output", dev, &kF32);
    Tensor ty = arg_view(y, op, "output", dev, &kF32);
    check_shape(ty, tdy.shape(), op, "output");
    const DimSplit v = split_dim(tdy.shape(), dim, true, op);
    Out dx = new_out(tdy.shape(), kF32, dev, op);
    softmax_bwd(f(tdy), f(ty), fo(dx), v.outer, v.r, v.inner, log);
    return dx.arr;
  }, py::arg("dy"), py::arg("y"), py::arg("dim"), py::arg("log") = false,
     "dx from dy and the forward output y (probabilities, or log-probabilities when log).");
  m.def("argmax", [](py::handle x, std::optional<int64_t> dim, bool keepdim) {
    const char* op = "argmax";
    int dev = -1;
    Tensor tx = arg_view(x, op, "input", dev, nullptr);
    const DimSplit v = argmax_split(tx.shape(), dim, keepdim, op);
    Out idx = new_out(v.out, kI64, dev, op);
    // argmax is max's index: first maximum, NaN counts as the maximum (first NaN wins).
    if (tx.dtype() == DType::f32)
      extreme_f32(true, f(tx), v.outer, v.r, v.inner, nullptr, idx.t.data<int64_t>());
    else
      extreme_i64(true, tx.data<int64_t>(), v.outer, v.r, v.inner, nullptr, idx.t.data<int64_t>());
    return idx.arr;
  }, py::arg("x"), py::arg("dim") = py::none(), py::arg("keepdim") = false,
     "int64 index of the first maximum along dim, or over all elements when dim is None; "
     "NaN counts as the maximum.");
}

// ---- losses
enum class Reduction { mean, sum, none };
Reduction parse_reduction(const std::string& r, const char* op) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  fail(op, "reduction must be 'mean', 'sum' or 'none', got '", r, "'");
}

constexpr const char* kCE = "cross_entropy";
struct CEChecked : CEDims {
  int64_t kept;  // targets != ignore_index
};
CEChecked ce_check(const Tensor& x, const Tensor& t, int64_t ignore_index) {
  CEChecked d{ce_dims(x, t), 0};
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    bad = first_out_of_range(t.data<int64_t>(), d.n, 0, d.c, true, ignore_index, &d.kept, kCE);
  }
  if (bad >= 0)
    fail<IndexError>(kCE, "target ", value_at(t, bad, kCE), " is out of range for ", d.c, " classes");
  return d;
}

constexpr const char* kMSE = "mse_loss";
void mse_check(const Tensor& x, const Tensor& y) {
  if (x.shape() != y.shape())
    fail(kMSE, "input and target must have the same shape, got input ", shape_str(x.shape()),
         " and target ", shape_str(y.shape()));
}

void bind_loss(py::module_& m) {
  m.def("cross_entropy_fwd", [](py::handle input, py::handle target, const std::string& reduction,
                                int64_t ignore_index) {
    Reduction r = parse_reduction(reduction, kCE);
    int dev = -1;
    Tensor tx = arg_view(input, kCE, "input", dev, &kF32);
    Tensor tt = arg_view(target, kCE, "target", dev, &kI64);
    CEChecked d = ce_check(tx, tt, ignore_index);
    Out loss = new_out(d.unbatched ? Shape{} : Shape{d.n}, kF32, dev, kCE);
    Out stats = new_out({d.n, 2}, kF32, dev, kCE);
    cross_entropy_fwd(f(tx), tt.data<int64_t>(), fo(loss), fo(stats), d.n, d.c, ignore_index);
    if (r == Reduction::none) return py::make_tuple(loss.arr, stats.arr);
    // NOTE: "mean" divides by the number of non-ignored targets; none gives 0/0 = NaN.
    Out s = new_out({}, kF32, dev, kCE);
    sum_to_scalar(fo(loss), nullptr, d.n, r == Reduction::mean ? (double)d.kept : 1.0, fo(s));
    return py::make_tuple(s.arr, stats.arr);
  }, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     py::arg("ignore_index") = -100,
     "(loss, stats): cross-entropy of (N, C) logits against (N,) int64 targets; stats (N, 2) "
     "is what cross_entropy_bwd needs.");
  m.def("cross_entropy_bwd", [](py::handle grad, py::handle input, py::handle target,
                                py::handle stats, const std::string& reduction,
                                int64_t ignore_index) {
    Reduction r = parse_reduction(reduction, kCE);
    int dev = -1;
    Tensor tg = arg_view(grad, kCE, "grad_output", dev, &kF32);
    Tensor tx = arg_view(input, kCE, "input", dev, &kF32);
    Tensor tt = arg_view(target, kCE, "target", dev, &kI64);
    Tensor ts = arg_view(stats, kCE, "stats", dev, &kF32);
    CEChecked d = ce_check(tx, tt, ignore_index);
    check_shape(tg, r == Reduction::none ? (d.unbatched ? Shape{} : Shape{d.n}) : Shape{}, kCE,
                "grad_output");
    check_shape(ts, {d.n, 2}, kCE, "stats");
    float scale = 1.f;
    if (r == Reduction::mean)
      scale = d.kept ? (float)(1.0 / (double)d.kept) : std::numeric_limits<float>::quiet_NaN();
    Out dx = new_out(tx.shape(), kF32, dev, kCE);
    cross_entropy_bwd(f(tx), tt.data<int64_t>(), f(ts), f(tg), r == Reduction::none ? 1 : 0,
                      scale, fo(dx), d.n, d.c, ignore_index);
    return dx.arr;
  }, py::arg("grad"), py::arg("input"), py::arg("target"), py::arg("stats"),
     py::arg("reduction") = "mean", py::arg("ignore_index") = -100,
     "grad_input = (softmax(input) - onehot(target)) * grad, in one pass over the logits.");
  m.def("mse_fwd", [](py::handle input, py::handle target, const std::string& reduction) {
    Reduction r = parse_reduction(reduction, kMSE);
    int dev = -1;
    Tensor tx = arg_view(input, kMSE, "input", dev, &kF32);
    Tensor ty = arg_view(target, kMSE, "target", dev, &kF32);
    mse_check(tx, ty);
    const int64_t n = tx.numel();
    if (r == Reduction::none) {
      Out out = new_out(tx.shape(), kF32, dev, kMSE);
      mse_none(f(tx), f(ty), fo(out), n);
      return out.arr;
    }
    Out s = new_out({}, kF32, dev, kMSE);
    // Empty input with "mean": 0/0 = NaN, as PyTorch.
    sum_to_scalar(f(tx), f(ty), n, r == Reduction::mean ? (double)n : 1.0, fo(s));
    return s.arr;
  }, py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     "(input - target)^2 reduced by 'mean', 'sum' (SSR) or 'none'; shapes must match.");
  m.def("mse_bwd", [](py::handle grad, py::handle input, py::handle target,
                      const std::string& reduction, bool need_input, bool need_target) {
    Reduction r = parse_reduction(reduction, kMSE);
    int dev = -1;
    Tensor tg = arg_view(grad, kMSE, "grad_output", dev, &kF32);
    Tensor tx = arg_view(input, kMSE, "input", dev, &kF32);
    Tensor ty = arg_view(target, kMSE, "target", dev, &kF32);
    mse_check(tx, ty);
    check_shape(tg, r == Reduction::none ? tx.shape() : Shape{}, kMSE, "grad_output");
    const int64_t n = tx.numel();
    const float scale = r == Reduction::mean ? (float)(1.0 / (double)std::max<int64_t>(n, 1)) : 1.f;
    std::optional<Out> gx, gy;
    if (need_input) gx = new_out(tx.shape(), kF32, dev, kMSE);
    if (need_target) gy = new_out(tx.shape(), kF32, dev, kMSE);
    mse_bwd(f(tx), f(ty), f(tg), r == Reduction::none ? 1 : 0, scale, gx ? fo(*gx) : nullptr,
            gy ? fo(*gy) : nullptr, n);
    return py::make_tuple(opt_out(gx), opt_out(gy));
  }, py::arg("grad"), py::arg("input"), py::arg("target"), py::arg("reduction") = "mean",
     py::arg("need_input") = true, py::arg("need_target") = true,
     "(grad_input, grad_target), each None unless asked for.");
}

// ---- optimizers
std::vector<Tensor> tensor_list(py::handle obj, const char* op, const char* list, int& dev) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    fail<TypeError>(op, list, " must be a list of arrays, got ",
                    py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  std::vector<Tensor> out;
  out.reserve(seq.size());
  // NOTE (speed): the element's name ("params[3]") is formatted only for an error message,
  // as in the CPU binding (bind_optim.cpp).
  for (size_t i = 0; i < seq.size(); ++i) {
    py::handle item = PySequence_Fast_GET_ITEM(seq.ptr(), (py::ssize_t)i);
    try {
      out.push_back(arg_view(item, op, list, dev, &kF32));
    } catch (const std::exception&) {
      const std::string name = str(list, "[", i, "]");
      out.push_back(arg_view(item, op, name.c_str(), dev, &kF32));  // throws
    }
  }
  return out;
}

void check_like(const char* op, const char* list, const std::vector<Tensor>& ts,
                const std::vector<Tensor>& params) {
  if (ts.size() != params.size())
    fail(op, list, " has ", ts.size(), " arrays but params has ", params.size());
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].shape() != params[i].shape())
      fail(op, list, "[", i, "] must have shape ", shape_str(params[i].shape()), " like params[",
           i, "], got ", shape_str(ts[i].shape()));
}

void check_nonneg(const char* op, const char* what, double x) {
  if (!(x >= 0)) fail(op, "invalid ", what, ": ", x);
}

void bind_optim(py::module_& m) {
  m.def("sgd_step", [](py::handle params, py::handle grads, py::handle bufs, double lr,
                       double momentum, double dampening, double weight_decay, bool nesterov,
                       bool maximize, py::handle first_step) {
    const char* op = "sgd";
    int dev = -1;
    auto tp = tensor_list(params, op, "params", dev);
    auto tg = tensor_list(grads, op, "grads", dev);
    std::vector<Tensor> tb;
    if (momentum != 0) {
      if (bufs.is_none())
        fail(op, "momentum_buffers must be a list of arrays when momentum != 0, got None");
      tb = tensor_list(bufs, op, "momentum_buffers", dev);
    }
    std::vector<bool> first = first_step_flags(first_step, tp.size());
    check_nonneg(op, "learning rate", lr);
    check_nonneg(op, "momentum value", momentum);
    check_nonneg(op, "weight_decay value", weight_decay);
    if (!std::isfinite(dampening)) fail(op, "invalid dampening value: ", dampening);
    if (nesterov && (momentum <= 0 || dampening != 0))
      fail(op, "nesterov momentum requires a momentum and zero dampening, got momentum=",
           momentum, ", dampening=", dampening);
    check_like(op, "grads", tg, tp);
    const bool use_buf = momentum != 0;
    if (use_buf) {
      check_like(op, "momentum_buffers", tb, tp);
      if (first.size() != tp.size())
        fail(op, "first_step has ", first.size(), " flags but params has ", tp.size());
    }
    if (tp.empty()) return;
    // NOTE: each Python scalar expression is computed in double and rounded once, as PyTorch.
    SgdHyper h{(float)-lr, (float)momentum, (float)(1.0 - dampening), (float)weight_decay,
               nesterov, maximize};
    std::vector<SgdSlot> slots(tp.size());
    for (size_t i = 0; i < tp.size(); ++i)
      slots[i] = SgdSlot{tp[i].data<float>(), f(tg[i]), use_buf ? tb[i].data<float>() : nullptr,
                         tp[i].numel(), (use_buf && first[i]) ? 1 : 0};
    sgd_update(h, slots.data(), (int)slots.size(), dev);
  }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("lr"),
     py::arg("momentum") = 0.0, py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0,
     py::arg("nesterov") = false, py::arg("maximize") = false, py::arg("first_step") = false,
     "One SGD step (PyTorch's rule) over lists of float32 CUDA arrays, in place, in one launch.");
  m.def("adam_step", [](py::handle params, py::handle grads, py::handle exp_avgs,
                        py::handle exp_avg_sqs, const std::vector<int64_t>& steps, double lr,
                        double beta1, double beta2, double eps, double weight_decay,
                        bool maximize) {
    const char* op = "adam";
    int dev = -1;
    auto tp = tensor_list(params, op, "params", dev);
    auto tg = tensor_list(grads, op, "grads", dev);
    auto tm = tensor_list(exp_avgs, op, "exp_avgs", dev);
    auto tv = tensor_list(exp_avg_sqs, op, "exp_avg_sqs", dev);
    check_nonneg(op, "learning rate", lr);
    check_nonneg(op, "epsilon value", eps);
    check_nonneg(op, "weight_decay value", weight_decay);
    if (!(beta1 >= 0 && beta1 < 1)) fail(op, "invalid beta parameter at index 0: ", beta1);
    if (!(beta2 >= 0 && beta2 < 1)) fail(op, "invalid beta parameter at index 1: ", beta2);
    check_like(op, "grads", tg, tp);
    check_like(op, "exp_avgs", tm, tp);
    check_like(op, "exp_avg_sqs", tv, tp);
    if (steps.size() != tp.size())
      fail(op, "steps has ", steps.size(), " counts but params has ", tp.size());
    AdamHyper h{(float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2), (float)eps,
                (float)weight_decay, maximize};
    std::vector<AdamSlot> slots(tp.size());
    for (size_t i = 0; i < tp.size(); ++i) {
      if (steps[i] < 1)
        fail(op, "steps[", i, "] must be >= 1 (counted after increment), got ", steps[i]);
      // NOTE: bias corrections in double, as PyTorch's Python floats, then rounded once.
      const double t = (double)steps[i];
      const double bc1 = 1.0 - std::pow(beta1, t), bc2 = 1.0 - std::pow(beta2, t);
      slots[i] = AdamSlot{tp[i].data<float>(), f(tg[i]), tm[i].data<float>(), tv[i].data<float>(),
                          (float)(-(lr / bc1)), (float)std::sqrt(bc2), tp[i].numel()};
    }
    if (tp.empty()) return;
    adam_update(h, slots.data(), (int)slots.size(), dev);
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
     py::arg("steps"), py::arg("lr"), py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
     py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0, py::arg("maximize") = false,
     "One Adam step (PyTorch's non-fused rule) over lists of float32 CUDA arrays, in place, in "
     "one launch. steps: per-param step counts, already incremented.");
}

}  // namespace

void bind_ops(py::module_& m) {
  bind_dense(m);
  bind_activation(m);
  bind_elementwise(m);
  bind_reduce(m);
  bind_softmax(m);
  bind_loss(m);
  bind_optim(m);
}

}  // namespace cuda
}  // namespace fastnn
