#include "ops/dense.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/kernels/act_bwd.h"
#include "ops/common.h"
#include "ops/shapes.h"

namespace fastnn {

namespace {

void check_f32_contig(const Tensor& t, const char* op, const char* name) {
  check_dtype(t, DType::f32, op, name);
  check_contiguous(t, op, name);
}

// Columns [j0, j1) of the column sums of a (rows, cols) row-major matrix into out[j0, j1),
// overwritten.
// NOTE: float32 accumulation down each column (vectorised across columns); its error grows
// with rows like any length-`rows` reduction, which the tests' tolerance accounts for.
void column_sums(const float* a, int64_t rows, int64_t cols, float* out, int64_t j0,
                 int64_t j1) {
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 15) / std::max<int64_t>(rows, 1));
  parallel_for(j1 - j0, grain, [&](int64_t b, int64_t e) {
    std::fill(out + j0 + b, out + j0 + e, 0.f);
    for (int64_t i = 0; i < rows; ++i) {
      const float* ai = a + i * cols;
      for (int64_t j = j0 + b; j < j0 + e; ++j) out[j] += ai[j];
    }
  });
}

// Rows [0, rows) x columns [j0, j1) of act_bwd_and_bias_grad below, on the generic path and
// for gelu/softplus (the SIMD kernels in cpu/kernels/act_bwd_<isa>.cpp do the same arithmetic
// for relu/sigmoid/tanh). `saved` is the pre-activation (gelu/softplus) or the output (the
// others): act_grad<A> reads only the one its activation needs.
template <Act A, bool Db>
void act_bwd_cols(const float* __restrict dy, const float* __restrict saved,
                  float* __restrict dz, float* __restrict db, int64_t rows, int64_t cols,
                  int64_t j0, int64_t j1, float beta, float thr) {
  if (Db) std::fill(db + j0, db + j1, 0.f);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t o = i * cols;
    for (int64_t j = j0; j < j1; ++j) {
      // relu: a select, not dy * 0, so the gradient is 0 where y <= 0 even when dy is NaN or
      // inf (PyTorch's threshold_backward, and activation_bwd's relu).
      // (The load is unconditional so the select vectorises.)
      const float d = dy[o + j];
      const float v = A == Act::relu ? (saved[o + j] <= 0.f ? 0.f : d)
                                     : d * act_grad<A>(saved[o + j], saved[o + j], beta, thr);
      dz[o + j] = v;
      if (Db) db[j] += v;
    }
  }
}

// One pass over dy for the activation's backward and the bias gradient together, on columns
// [j0, j1):
//   dz(rows, cols) = dy * act'(saved), overwritten;  db(cols) = column sums of dz,
//   overwritten (db may be null). saved: the pre-activation (gelu/softplus) or the output
//   (relu/sigmoid/tanh). All row-major, leading dimension cols.
// Threads split the columns, so each owns its slice of db and no reduction is needed.
// NOTE: db accumulates in float32 down each column, as column_sums does.
void act_bwd_and_bias_grad(const ActParams& p, const float* dy, const float* saved, float* dz,
                           float* db, int64_t rows, int64_t cols, int64_t j0, int64_t j1) {
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 15) / std::max<int64_t>(rows, 1));
#ifdef FASTNN_X86
  // NOTE (speed): 64x256 relu with the bias gradient, 1 thread, Zen 5, through _C.linear_bwd
  // less its call overhead: the scalar loop (4-wide SSE at the baseline ISA) 2.5 us, AVX-512
  // 1.6 us.
  const Isa isa = active_isa();
  if (isa != Isa::generic && (p.act == Act::relu || p.act == Act::sigmoid || p.act == Act::tanh)) {
    const auto fn = isa == Isa::avx512 ? act_bwd_cols_avx512 : act_bwd_cols_avx2;
    parallel_for(j1 - j0, grain, [&](int64_t b, int64_t e) {
      fn(p.act, dy, saved, dz, db, rows, cols, j0 + b, j0 + e);
    });
    return;
  }
#endif
  dispatch_act(p.act, [&]<Act A>() {
    parallel_for(j1 - j0, grain, [&](int64_t b, int64_t e) {
      if (db) act_bwd_cols<A, true>(dy, saved, dz, db, rows, cols, j0 + b, j0 + e, p.beta,
                                    p.threshold);
      else act_bwd_cols<A, false>(dy, saved, dz, db, rows, cols, j0 + b, j0 + e, p.beta,
                                  p.threshold);
    });
  });
}

// The unit threads split a layer's columns in: 16 floats, one 64-byte line, so no line of an
// output is written by two threads.
constexpr int64_t kLineFloats = 16;
// Rows of a narrow layer's split: the small-shape GEMM's row tile.
constexpr int64_t kRowUnit = 8;

// x (N, IN) and w (OUT, IN), both contiguous float32: the checks linear's forward and
// backward share. Returns {N, IN, OUT}.
LinearDims check_linear_args(const Tensor& x, const Tensor& w, const char* op) {
  check_f32_contig(x, op, "input");
  check_f32_contig(w, op, "weight");
  return linear_dims(x, w, op);
}

}  // namespace

LinearFwdJob prepare_linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                    const ActParams& p) {
  const char* op = "linear";
  const auto [N, IN, OUT] = check_linear_args(x, w, op);
  if (b.defined()) {
    check_f32_contig(b, op, "bias");
    check_shape(b, {OUT}, op, "bias");
  }
  if (p.act == Act::softplus && !(p.beta != 0.f)) fail(op, "softplus beta must be non-zero");
  LinearFwdJob j;
  j.y = empty({N, OUT}, DType::f32);
  if (act_backward_needs_input(p.act)) j.z = empty({N, OUT}, DType::f32);
  j.x = x.data<float>();
  j.w = w.data<float>();
  j.b = b.defined() ? b.data<float>() : nullptr;
  j.p = p;
  j.N = N;
  j.IN = IN;
  j.OUT = OUT;
  return j;
}

namespace {

// A layer too narrow for every thread to get a 16-float unit of its outputs (the 10 logits of
// a classifier): split its rows instead (forward) and its weight gradient's columns
// (backward), so no thread idles at the barrier that follows.
// NOTE (speed): 2 threads, 784-256-128-10 MLP step: the 128->10 layer ran on one thread while
// the other waited, ~2 us in the forward and ~1.5 us in the backward (timed with rdtsc
// around each step of the region).
bool narrow(int64_t OUT, int T) {
  return T > 1 && (OUT + kLineFloats - 1) / kLineFloats < T;
}

// Thread t of T's share of a layer's forward: y's columns [c0, c1) (split_range, 16-float
// units, as the backward splits them), i.e. w's rows c0..c1; for a narrow layer, y's rows.
void linear_forward_part(const LinearFwdJob& j, int t, int T) {
  if (narrow(j.OUT, T)) {
    const auto [r0, r1] = split_range(j.N, t, T, kRowUnit);
    if (r0 >= r1) return;
    GemmEpilogue ep;
    ep.bias = j.b;
    ep.act = j.p;
    ep.z = j.z.defined() ? j.z.data<float>() + r0 * j.OUT : nullptr;
    gemm_f32(false, true, r1 - r0, j.OUT, j.IN, j.x + r0 * j.IN, j.IN, j.w, j.IN,
             j.y.data<float>() + r0 * j.OUT, j.OUT, false, &ep);
    return;
  }
  const auto [c0, c1] = split_range(j.OUT, t, T, kLineFloats);
  if (c0 >= c1) return;
  GemmEpilogue ep;
  ep.bias = j.b ? j.b + c0 : nullptr;
  ep.act = j.p;
  ep.z = j.z.defined() ? j.z.data<float>() + c0 : nullptr;
  // y(N, OUT) = x(N, IN) · w(OUT, IN)ᵀ: w is read transposed in place, never copied.
  gemm_f32(false, true, j.N, c1 - c0, j.IN, j.x, j.IN, j.w + c0 * j.IN, j.IN,
           j.y.data<float>() + c0, j.OUT, false, &ep);
}

}  // namespace

std::pair<Tensor, Tensor> linear_forward(const Tensor& x, const Tensor& w, const Tensor& b,
                                         const ActParams& p) {
  LinearFwdJob j = prepare_linear_forward(x, w, b, p);
  linear_forward_part(j, 0, 1);  // one GEMM, which threads itself
  return {j.y, j.z};
}

LinearBwdJob prepare_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                                     const Tensor& saved, const ActParams& p, bool need_dx,
                                     bool need_dw, bool need_db) {
  const char* op = "linear";
  check_f32_contig(dy, op, "grad_output");
  check_ndim(dy, 2, op, "grad_output");
  const auto [N, IN, OUT] = check_linear_args(x, w, op);
  check_shape(dy, {N, OUT}, op, "grad_output");

  LinearBwdJob j;
  j.p = p;
  j.N = N;
  j.IN = IN;
  j.OUT = OUT;
  j.dy = dy.data<float>();
  j.x = x.data<float>();
  j.w = w.data<float>();
  // dZ = dy * act'(.): the activation's derivative from the saved output (or pre-activation).
  j.dz_t = dy;
  if (p.act != Act::none) {
    const bool need_z = act_backward_needs_input(p.act);
    const char* sname = need_z ? "pre-activation" : "output";
    if (!saved.defined()) fail(op, "backward through ", act_name(p.act), " needs the saved ",
                               sname, ", got None");
    check_f32_contig(saved, op, sname);
    check_shape(saved, {N, OUT}, op, sname);
    j.saved = saved.data<float>();
    j.dz_t = empty({N, OUT}, DType::f32);
  }
  j.dz = j.dz_t.data<float>();
  if (need_db) j.db = (j.g.db = empty({OUT}, DType::f32)).data<float>();
  if (need_dx) j.dx = (j.g.dx = empty({N, IN}, DType::f32)).data<float>();
  if (need_dw) j.dw = (j.g.dw = empty({OUT, IN}, DType::f32)).data<float>();
  return j;
}

namespace {

// Thread t of T's share of a layer's backward. Phase 1 on its OUT columns [o0, o1): dZ and db
// there, then dw's rows o0..o1 (= dZ's columns: dZ is read transposed, so those are exactly
// the columns it just wrote). Phase 2, once every thread's dZ is complete (bar): dx's IN
// columns [i0, i1), a reduction over all of dZ's columns. Both split with split_range in
// 16-float units, as the forward's GEMM splits its output columns, so in a chain the columns
// a thread reads back (y in phase 1, the previous layer's dx as this one's dy) are the ones it
// wrote, and the weight-gradient rows it writes are those an optimizer splitting each tensor
// by split_range updates on the same thread.
// Work inside a parallel region runs serially (gemm_f32, parallel_for); called outside one
// with T = 1, each op uses the pool itself.
// A narrow layer's dw is computed in phase 2 instead, split by IN columns like dx (its OUT
// rows are too few to share), once phase 1 has finished dZ.
void linear_backward_phase1(const LinearBwdJob& j, int t, int T) {
  const auto [o0, o1] = split_range(j.OUT, t, T, kLineFloats);
  if (o0 >= o1) return;
  if (j.p.act != Act::none) {
    // dZ and db in the same pass over dy (db is the column sums of dZ).
    act_bwd_and_bias_grad(j.p, j.dy, j.saved, j.dz, j.db, j.N, j.OUT, o0, o1);
  } else if (j.db) {
    column_sums(j.dz, j.N, j.OUT, j.db, o0, o1);
  }
  // dw(OUT, IN) = dZ(N, OUT)ᵀ · x(N, IN), dZ read transposed in place
  if (j.dw && !narrow(j.OUT, T))
    gemm_f32(true, false, o1 - o0, j.IN, j.N, j.dz + o0, j.OUT, j.x, j.IN, j.dw + o0 * j.IN,
             j.IN, false);
}

// Whether phase 2 has work (and so needs all of phase 1's dZ first).
bool has_phase2(const LinearBwdJob& j, int T) { return j.dx || (j.dw && narrow(j.OUT, T)); }

void linear_backward_phase2(const LinearBwdJob& j, int t, int T) {
  const auto [i0, i1] = split_range(j.IN, t, T, kLineFloats);
  if (i0 >= i1) return;
  // dx(N, IN) = dZ(N, OUT) · w(OUT, IN), columns [i0, i1)
  if (j.dx)
    gemm_f32(false, false, j.N, i1 - i0, j.OUT, j.dz, j.OUT, j.w + i0, j.IN, j.dx + i0, j.IN,
             false);
  // a narrow layer's dw, columns [i0, i1)
  if (j.dw && narrow(j.OUT, T))
    gemm_f32(true, false, j.OUT, i1 - i0, j.N, j.dz, j.OUT, j.x + i0, j.IN, j.dw + i0, j.IN,
             false);
}

// A small-batch chain of layers with enough arithmetic runs in one parallel region, each
// thread on its own slices of every layer, with a barrier only where a step reads what another
// thread wrote; anything else runs op by op, each op threading itself (large products split
// their own way, with a shared packed B). NOTE (speed): at batch 64 a layer's ops are a few
// microseconds each; op by op, the activation backward ran on one thread, each GEMM was a pool
// round trip, and the weight gradient's threads split its columns, so the optimizer's threads
// (which split each tensor by rows) read half of it from the other core. Measured with
// cpu/optim.cpp's per-tensor split, 2 threads, 784-256-128-10 MLP step (best of 6
// interleaved runs, Zen 5): 182.6 us before both changes, 177.1 after.
constexpr int64_t kRegionMaxBatch = 256;
constexpr int64_t kRegionMinMacs = int64_t(1) << 20;

bool use_region(int64_t batch, int64_t macs, int T) {
  return T > 1 && batch <= kRegionMaxBatch && macs >= kRegionMinMacs;
}

// Whether a region's shares may follow the threads' measured speeds (balanced), given the
// multiply-adds of its steps whose split is coarse (fewer than kBalancedMinUnitsPerThread
// units per thread, core/parallel.h; a Linear with 24 outputs: 2 units of 16) out of `total`:
// while those steps are under a quarter of the work (784-256-128-10 at batch 64: ~14%).
bool coarse_split(int64_t n, int64_t unit, int T) {
  return (n + unit - 1) / unit < kBalancedMinUnitsPerThread * T;
}
bool balanced_region(int64_t coarse, int64_t total) { return coarse * 4 < total; }

// f(), with its exception (the first) kept in err instead of thrown.
template <class F>
void guarded(std::exception_ptr& err, F&& f) {
  try {
    f();
  } catch (...) {
    if (!err) err = std::current_exception();
  }
}

// Steps 0..n-1 in order: step(k, t, T) is thread t's share of step k. In one region of T
// threads when `region`, with a barrier after step k where sync(k, T) (the next step reads what
// other threads wrote); else step(k, 0, 1) on the caller. Inside the region every thread
// passes every barrier even after an error (its work is skipped, the first exception rethrown
// after the region), so none is left waiting.
template <class Step, class Sync>
void run_steps(size_t n, bool region, bool balanced, const Step& step, const Sync& sync) {
  if (!region) {
    for (size_t k = 0; k < n; ++k) step(k, 0, 1);
    return;
  }
  const int T = get_num_threads();
  SpinBarrier bar(T);
  std::vector<std::exception_ptr> err(static_cast<size_t>(T));
  // Balanced: every step divides its work with split_range, so the shares follow the threads'
  // measured speeds (see parallel_run_balanced), unless too much of it splits too coarsely.
  (balanced ? parallel_run_balanced : parallel_run_concurrent)(T, [&](int t, int nt) {
    std::exception_ptr& my = err[size_t(t)];
    for (size_t k = 0; k < n; ++k) {
      if (!my) guarded(my, [&] { step(k, t, nt); });
      if (nt > 1 && k + 1 < n && sync(k, nt)) bar.wait();
    }
  });
  for (auto& x : err)
    if (x) std::rethrow_exception(x);
}

}  // namespace

void run_linear_forward(const std::vector<LinearFwdJob>& jobs) {
  const int T = get_num_threads();
  int64_t macs = 0, coarse = 0;
  for (const LinearFwdJob& j : jobs) {
    macs += j.N * j.IN * j.OUT;
    if (narrow(j.OUT, T) ? coarse_split(j.N, kRowUnit, T) : coarse_split(j.OUT, kLineFloats, T))
      coarse += j.N * j.IN * j.OUT;
  }
  // Each layer reads every column of the one before.
  run_steps(
      jobs.size(), use_region(jobs.empty() ? 0 : jobs[0].N, macs, T),
      balanced_region(coarse, macs),
      [&](size_t k, int t, int T) { linear_forward_part(jobs[k], t, T); },
      [](size_t, int) { return true; });
}

void run_linear_backward(const std::vector<LinearBwdJob>& jobs) {
  const int T = get_num_threads();
  int64_t macs = 0, coarse = 0;
  for (const LinearBwdJob& j : jobs) {
    const int64_t prod = j.N * j.IN * j.OUT;
    macs += prod * ((j.dx ? 1 : 0) + (j.dw ? 1 : 0));
    // Phase 1 splits OUT (dZ, and dw unless narrow); phase 2 splits IN (dx, a narrow dw).
    const bool nar = narrow(j.OUT, T);
    if (coarse_split(j.OUT, kLineFloats, T) && j.dw && !nar) coarse += prod;
    if (coarse_split(j.IN, kLineFloats, T))
      coarse += prod * ((j.dx ? 1 : 0) + (j.dw && nar ? 1 : 0));
  }
  // Two steps per layer: phase 1, then phase 2 (dx, a narrow layer's dw), which reads all of
  // dZ. The next layer's phase 1 reads only the dx columns this thread wrote.
  run_steps(
      2 * jobs.size(), use_region(jobs.empty() ? 0 : jobs[0].N, macs, T),
      balanced_region(coarse, macs),
      [&](size_t k, int t, int T) {
        const LinearBwdJob& j = jobs[k / 2];
        if (k % 2 == 0) linear_backward_phase1(j, t, T);
        else if (has_phase2(j, T)) linear_backward_phase2(j, t, T);
      },
      [&](size_t k, int T) { return k % 2 == 0 && has_phase2(jobs[k / 2], T); });
}

LinearGrads linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w,
                            const Tensor& saved, const ActParams& p, bool need_dx, bool need_dw,
                            bool need_db) {
  std::vector<LinearBwdJob> jobs;
  jobs.push_back(prepare_linear_backward(dy, x, w, saved, p, need_dx, need_dw, need_db));
  run_linear_backward(jobs);
  return std::move(jobs[0].g);
}

Tensor gemm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor& out,
            bool accumulate) {
  const char* op = "matmul";
  check_f32_contig(a, op, "a");
  check_f32_contig(b, op, "b");
  const MatmulDims md = matmul_dims(a, b, trans_a, trans_b, 2, op);
  const int64_t M = md.M, N = md.N, K = md.K;
  Tensor c = out;
  if (c.defined()) {
    check_f32_contig(c, op, "out");
    check_shape(c, {M, N}, op, "out");
  } else {
    c = empty({M, N}, DType::f32);
    accumulate = false;
  }
  gemm_f32(trans_a, trans_b, M, N, K, a.data<float>(), a.size(1), b.data<float>(), b.size(1),
           c.data<float>(), N, accumulate);
  return c;
}

Tensor bmm(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const char* op = "matmul";
  check_f32_contig(a, op, "a");
  check_f32_contig(b, op, "b");
  const MatmulDims md = matmul_dims(a, b, trans_a, trans_b, 3, op);
  const int64_t Bt = md.batch, M = md.M, N = md.N, K = md.K;
  const int64_t Ba = a.size(0), Bb = b.size(0);
  Tensor c = empty({Bt, M, N}, DType::f32);
  if (Bt == 0 || M == 0 || N == 0) return c;
  // A batch of 1 is broadcast by a zero batch stride, never copied.
  const int64_t sa = Ba == 1 ? 0 : a.size(1) * a.size(2);
  const int64_t sb = Bb == 1 ? 0 : b.size(1) * b.size(2);
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* pc = c.data<float>();
  auto one = [&](int64_t i) {
    gemm_f32(trans_a, trans_b, M, N, K, pa + i * sa, a.size(2), pb + i * sb, b.size(2),
             pc + i * M * N, N, false);
  };
  // Many small products: threads over the batch (each GEMM then runs serially inside the
  // parallel region). Large ones: one at a time, each using the pool itself.
  const int64_t macs = std::max<int64_t>(M * N * K, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / macs);
  if (macs >= (int64_t(1) << 20)) {
    for (int64_t i = 0; i < Bt; ++i) one(i);
  } else {
    parallel_for(Bt, grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) one(i);
    });
  }
  return c;
}

}  // namespace fastnn
