#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>

#include "bindings/convert.h"
#include "bindings/shared.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "ops/common.h"
#include "ops/dense.h"

namespace fastnn {

namespace {

ActParams act_params(int act, float beta, float threshold) {
  if (act < 0 || act > (int)Act::softplus) fail("linear", "unknown activation code ", act);
  return ActParams{(Act)act, beta, threshold};
}

// Below this many multiply-adds the product takes well under a microsecond, about what
// releasing and re-taking the GIL costs, so tiny products keep it (they never call Python).
constexpr int64_t kReleaseGilMacs = int64_t(1) << 15;

// The pybind11 function that handles mm's general case (set once in bind_dense).
PyObject* g_mm_general = nullptr;

// mm's fast path: both arguments float32 matrices the GEMM reads in place (see gemm_operand)
// with matching inner dimensions. The output is a bare ndarray (new_out_array, no Tensor
// wrapper) and tiny products keep the GIL.
PyObject* mm_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs == 2) {
    bool handled = false;
    PyObject* out = mm_plain(args[0], args[1], &handled);
    if (handled) return out;
  }
  return PyObject_Vectorcall(g_mm_general, args, size_t(nargs), nullptr);
}

}  // namespace

namespace {

// A 2-D operand as the GEMM reads it in place: element (i, j) of the matrix is
// p[i*ld + j], or p[j*ld + i] when `trans` (the matrix is the transpose of what p holds).
struct GemmOperand {
  const float* p = nullptr;
  bool trans = false;
  int64_t ld = 1;
};

// True (and *r filled) when o is a 2-D float32 ndarray (native byte order, aligned) whose
// layout the GEMM reads without a copy: rows contiguous with any row stride at least the
// row length (C-contiguous, or a column slice such as x[:, :k]), or columns contiguous the
// same way (a transposed view such as w.T, as in x @ w.T). Negative, zero (broadcast) and
// other strides are left to the caller's general path, which copies.
bool gemm_operand(PyObject* o, GemmOperand* r) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(o)) return false;
  const auto* x = py::detail::array_proxy(o);
  if (x->nd != 2 || !(x->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) return false;
  const auto* d = py::detail::array_descriptor_proxy(x->descr);
  if (d->type_num != py::detail::npy_api::NPY_FLOAT_ || d->byteorder == '>') return false;
  const int64_t rows = x->dimensions[0], cols = x->dimensions[1];
  const int64_t s0 = x->strides[0], s1 = x->strides[1];
  constexpr int64_t f = sizeof(float);
  r->p = reinterpret_cast<const float*>(x->data);
  // A stride of a dimension of length 1 is never used (NumPy sets it freely).
  auto unit = [&](int64_t n, int64_t s) { return n <= 1 || s == f; };
  // Leading dimension (in floats) of a stride across `n` lines of `len` floats, or 0.
  auto lead = [&](int64_t n, int64_t s, int64_t len) -> int64_t {
    if (n <= 1) return std::max<int64_t>(len, 1);
    return s % f == 0 && s / f >= len ? s / f : 0;
  };
  if (rows == 0 || cols == 0) {  // nothing is read
    r->trans = false;
    r->ld = std::max<int64_t>(cols, 1);
    return true;
  }
  if (unit(cols, s1)) {
    if (const int64_t ld = lead(rows, s0, cols)) {
      r->trans = false;
      r->ld = ld;
      return true;
    }
  }
  if (unit(rows, s0)) {
    if (const int64_t ld = lead(cols, s1, rows)) {
      r->trans = true;
      r->ld = ld;
      return true;
    }
  }
  return false;
}

}  // namespace

PyObject* mm_plain(PyObject* a, PyObject* b, bool* handled) {
  *handled = false;
  GemmOperand oa, ob;
  if (!gemm_operand(a, &oa) || !gemm_operand(b, &ob)) return nullptr;
  const auto *xa = py::detail::array_proxy(a), *xb = py::detail::array_proxy(b);
  const int64_t M = xa->dimensions[0], K = xa->dimensions[1], N = xb->dimensions[1];
  if (xb->dimensions[0] != K) return nullptr;
  *handled = true;
  const Py_intptr_t dims[2] = {(Py_intptr_t)M, (Py_intptr_t)N};
  PyObject* out = new_out_array(2, dims);
  if (!out) return nullptr;
  float* C = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
  // NOTE: nothing may propagate into CPython; the only failure a GEMM can have is the
  // allocation of its packing buffers.
  bool oom = false;
  auto run = [&] {
    try {
      gemm_f32(oa.trans, ob.trans, M, N, K, oa.p, oa.ld, ob.p, ob.ld, C, N, false);
    } catch (...) {
      oom = true;
    }
  };
  if (M * N * K >= kReleaseGilMacs) {
    Py_BEGIN_ALLOW_THREADS
    run();
    Py_END_ALLOW_THREADS
  } else {
    run();
  }
  if (oom) {
    Py_DECREF(out);
    return PyErr_NoMemory();
  }
  return out;
}

void bind_dense(py::module_& m) {
  m.def("linear_fwd", [](py::handle x, py::handle w, py::handle b, int act, float beta,
                         float threshold) {
    ActParams p = act_params(act, beta, threshold);
    Tensor tx = arg_tensor(x, "linear", "input", DType::f32);
    Tensor tw = arg_tensor(w, "linear", "weight", DType::f32);
    Tensor tb = opt_tensor(b, "linear", "bias", DType::f32);
    std::pair<Tensor, Tensor> r;
    { py::gil_scoped_release nogil; r = linear_forward(tx, tw, tb, p); }
    return py::make_tuple(to_numpy(r.first), opt_numpy(r.second));
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("act") = 0, py::arg("beta") = 1.f,
     py::arg("threshold") = 20.f,
     "(y, z) with y = act(x·wᵀ + b); z = x·wᵀ + b only for gelu (4) and softplus (5), else None.");

  m.def("linear_bwd", [](py::handle dy, py::handle x, py::handle w, py::handle saved, int act,
                         float beta, float threshold, bool need_dx, bool need_dw, bool need_db) {
    ActParams p = act_params(act, beta, threshold);
    Tensor tdy = arg_tensor(dy, "linear", "grad_output", DType::f32);
    Tensor tx = arg_tensor(x, "linear", "input", DType::f32);
    Tensor tw = arg_tensor(w, "linear", "weight", DType::f32);
    Tensor ts = opt_tensor(saved, "linear", "saved", DType::f32);
    LinearGrads g;
    {
      py::gil_scoped_release nogil;
      g = linear_backward(tdy, tx, tw, ts, p, need_dx, need_dw, need_db);
    }
    return py::make_tuple(need_dx ? opt_numpy(g.dx) : py::none(),
                          need_dw ? opt_numpy(g.dw) : py::none(),
                          need_db ? opt_numpy(g.db) : py::none());
  }, py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("saved"), py::arg("act") = 0,
     py::arg("beta") = 1.f, py::arg("threshold") = 20.f, py::arg("need_dx") = true,
     py::arg("need_dw") = true, py::arg("need_db") = true,
     "(dx, dw, db) of linear; saved is z for gelu/softplus, y for relu/sigmoid/tanh.");

  m.def("gemm", [](py::handle a, py::handle b, bool trans_a, bool trans_b, py::handle out,
                   bool accumulate) {
    Tensor ta = arg_tensor(a, "matmul", "a", DType::f32);
    Tensor tb = arg_tensor(b, "matmul", "b", DType::f32);
    Tensor tc = out.is_none() ? Tensor() : arg_tensor(out, "matmul", "out", DType::f32, true);
    Tensor c;
    { py::gil_scoped_release nogil; c = gemm(ta, tb, trans_a, trans_b, tc, accumulate); }
    if (!out.is_none()) return py::reinterpret_borrow<py::object>(out);
    return py::object(to_numpy(c));
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     py::arg("out") = py::none(), py::arg("accumulate") = false,
     "c = op(a)·op(b) (2-D). With out: written into out, or added to it when accumulate.");

  // c = a·b for 2-D float32 operands, the general route: any float32 array is accepted
  // (layouts the GEMM cannot read in place, e.g. negative or zero strides, are copied), and
  // every problem is reported by arg_tensor / gemm with the usual messages. `mm` below sends
  // here whatever its fast path does not take.
  m.def("_mm_general", [](py::handle a, py::handle b) -> py::object {
    auto contiguous = [](py::handle o) -> py::object {
      if (py::isinstance<py::array_t<float>>(o) &&
          !(py::reinterpret_borrow<py::array>(o).flags() & py::array::c_style))
        return py::module_::import("numpy").attr("ascontiguousarray")(o);
      return py::reinterpret_borrow<py::object>(o);
    };
    py::object ca = contiguous(a), cb = contiguous(b);
    Tensor ta = arg_tensor(ca, "matmul", "a", DType::f32);
    Tensor tb = arg_tensor(cb, "matmul", "b", DType::f32);
    Tensor c;
    { py::gil_scoped_release nogil; c = gemm(ta, tb, false, false); }
    return py::object(to_numpy(c));
  }, "c = a·b for 2-D float32 a (M, K), b (K, N) (any layout; copies what the GEMM cannot "
     "read in place); see mm.");

  // mm is a plain CPython METH_FASTCALL function rather than a pybind11 one: at 16^3 the
  // product itself takes ~50 ns and pybind11's generic dispatch (argument loaders, overload
  // walk, exception translation frame) was a comparable part of the call.
  g_mm_general = m.attr("_mm_general").ptr();
  Py_INCREF(g_mm_general);  // kept for the life of the process, as the module is
  static PyMethodDef mm_def = {
      "mm", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&mm_fast)),
      METH_FASTCALL,
      // First line in pybind11's form, as _C_cuda.mm's (tests/test_cuda_build.py compares).
      "mm(arg0: object, arg1: object) -> object\n\nc = a·b for 2-D float32 a (M, K), b (K, N), "
      "with the least per-call work. C-contiguous operands, transposed views (a.T) and row or "
      "column slices are read in place, other strided views are copied, and anything else is "
      "reported as by matmul."};
  add_fastcall(m, &mm_def);

  m.def("bmm", [](py::handle a, py::handle b, bool trans_a, bool trans_b) {
    Tensor ta = arg_tensor(a, "matmul", "a", DType::f32);
    Tensor tb = arg_tensor(b, "matmul", "b", DType::f32);
    Tensor c;
    { py::gil_scoped_release nogil; c = bmm(ta, tb, trans_a, trans_b); }
    return to_numpy(c);
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     "c[i] = op(a[i])·op(b[i]) for 3-D a, b; a batch of 1 broadcasts.");

  m.def("peak_gflops", [](int threads) {
    if (threads < 1) fail("peak_gflops", "threads must be >= 1, got ", threads);
    py::gil_scoped_release nogil;
    return peak_gflops(threads);
  }, py::arg("threads"),
     "Measured float32 FMA peak (GFLOP/s) of the active ISA on `threads` pool threads.");

  m.def("cache_sizes", [] {
    const CacheSizes& cs = cache_sizes();
    py::dict d;
    d["l1d"] = cs.l1d; d["l2"] = cs.l2; d["l3"] = cs.l3; d["detected"] = cs.detected;
    return d;
  }, "Data cache sizes in bytes read from cpuid: {'l1d', 'l2', 'l3', 'detected'}.");

  m.def("gemm_blocks", [] {
    GemmBlocks b = gemm_blocks(gemm_kernel());
    return py::make_tuple(b.mc, b.kc, b.nc);
  }, "(mc, kc, nc) cache blocks of the active GEMM kernel.");

  m.def("gemm_b_in_l2", [] { return gemm_blocks(gemm_kernel()).b_in_l2; },
        "The GEMM's loop order: True when the packed B block stays in L2 and each A micro-panel "
        "in L1 (the A block in L3), False when the packed A block stays in L2.");

  // Test hook: force the blocks and loop order of every later GEMM (None: back to the derived
  // ones), so both loop orders and every block edge are tested on any machine.
  m.def("set_gemm_blocks", [](py::object blocks) {
    const char* op = "set_gemm_blocks";
    if (blocks.is_none()) return set_gemm_blocks_override(nullptr);
    if (!py::isinstance<py::tuple>(blocks) || py::len(blocks) != 4)
      fail<TypeError>(op, "blocks must be None or a tuple (mc, kc, nc, b_in_l2), got ",
                      py::str(blocks).cast<std::string>());
    py::tuple t = blocks.cast<py::tuple>();
    int64_t v[3];
    for (int i = 0; i < 3; ++i) {
      if (!py::isinstance<py::int_>(t[i]) || py::isinstance<py::bool_>(t[i]))
        fail<TypeError>(op, "blocks[", i, "] must be an int, got ",
                        py::str(t[i]).cast<std::string>());
      const py::object x = t[i];
      if (x < py::int_(1) || x > py::int_(kGemmBlockMax))
        fail(op, "blocks[", i, "] must be in [1, ", kGemmBlockMax, "], got ",
             py::str(x).cast<std::string>());
      v[i] = x.cast<int64_t>();
    }
    if (!py::isinstance<py::bool_>(t[3]))
      fail<TypeError>(op, "blocks[3] (b_in_l2) must be a bool, got ",
                      py::str(t[3]).cast<std::string>());
    GemmBlocks b{v[0], v[1], v[2], t[3].cast<bool>()};
    set_gemm_blocks_override(&b);
  }, py::arg("blocks"));

  // Test hook: the blocks and loop order of the last GEMM on this thread that took the packed
  // (blocked) path, or None before any: shows that a test's shape reaches the driver, and with
  // the blocks it meant to force.
  m.def("gemm_last_blocks", []() -> py::object {
    const GemmBlocks* b = gemm_last_blocks();
    if (!b) return py::none();
    return py::make_tuple(b->mc, b->kc, b->nc, b->b_in_l2);
  });
  m.def("gemm_reset_last_blocks", [] { gemm_reset_last_blocks(); });
  // Test hook: how the small-shape path (A unpacked) last read B on this thread: "packed"
  // (from NR-wide panels, packed by the call or pre-packed), "in place", or None when it has
  // not run since gemm_reset_last_blocks (the C = A·Bᵀ path that packs A does not set it).
  m.def("gemm_last_small_b", []() -> py::object {
    const int v = gemm_last_small_b();
    if (v < 0) return py::none();
    return py::str(v ? "packed" : "in place");
  });

  m.def("gemm_tile", [] {
    const GemmKernelInfo& k = gemm_kernel();
    return py::make_tuple(k.mr, k.nr);
  }, "(mr, nr) register tile of the active GEMM kernel.");

  // Test hook for the pre-packed GEMM: packs op(b) once, then runs op(a)·B with it `reps`
  // times into fresh copies of c (so reuse of one pack is exercised), returning the last.
  // prepack=False runs gemm_f32 (no pre-packing) with the same epilogue instead.
  m.def("gemm_packed_test", [](py::handle a, py::handle b, bool trans_a, bool trans_b,
                               py::handle c, py::handle bias, int act, bool want_z, int reps,
                               bool prepack, int64_t ldc_pad, int64_t lda_pad) {
    const char* op = "gemm_packed_test";
    ActParams p = act_params(act, 1.f, 20.f);
    Tensor ta = arg_tensor(a, op, "a", DType::f32);
    Tensor tb = arg_tensor(b, op, "b", DType::f32);
    Tensor tc = opt_tensor(c, op, "c", DType::f32);
    Tensor tbias = opt_tensor(bias, op, "bias", DType::f32);
    check_ndim(ta, 2, op, "a");
    check_ndim(tb, 2, op, "b");
    check_contiguous(ta, op, "a");
    check_contiguous(tb, op, "b");
    if (reps < 1) fail(op, "reps must be >= 1, got ", reps);
    if (ldc_pad < 0) fail(op, "ldc_pad must be >= 0, got ", ldc_pad);
    if (lda_pad < 0) fail(op, "lda_pad must be >= 0, got ", lda_pad);
    const int64_t M = trans_a ? ta.size(1) : ta.size(0), K = trans_a ? ta.size(0) : ta.size(1);
    const int64_t Kb = trans_b ? tb.size(1) : tb.size(0), N = trans_b ? tb.size(0) : tb.size(1);
    if (K != Kb) fail(op, "inner dimensions must match: op(a) has K=", K, ", op(b) has K=", Kb);
    if (tc.defined()) {
      check_contiguous(tc, op, "c");
      check_shape(tc, {M, N}, op, "c");
    }
    if (tbias.defined()) check_shape(tbias, {N}, op, "bias");
    // A with lda = its row length + lda_pad (the pad holds NaN, which no product may read).
    const int64_t lda = ta.size(1) + lda_pad;
    Tensor apad = empty({ta.size(0), lda}, DType::f32);
    std::fill_n(apad.data<float>(), ta.size(0) * lda, std::nanf(""));
    for (int64_t i = 0; i < ta.size(0); ++i)
      std::memcpy(apad.data<float>() + i * lda, ta.data<float>() + i * ta.size(1),
                  sizeof(float) * size_t(ta.size(1)));
    // C and z with ldc = N + ldc_pad: the pad columns hold 1e30 and must keep it.
    const int64_t ldc = N + ldc_pad;
    Tensor out = empty({M, ldc}, DType::f32), z;
    if (want_z) {
      z = empty({M, ldc}, DType::f32);
      std::fill_n(z.data<float>(), M * ldc, 1e30f);
    }
    {
      py::gil_scoped_release nogil;
      GemmPackedB pb;
      if (prepack) pb = gemm_pack_b_f32(trans_b, K, N, tb.data<float>(), tb.size(1));
      GemmEpilogue ep;
      ep.bias = tbias.defined() ? tbias.data<float>() : nullptr;
      ep.act = p;
      ep.z = want_z ? z.data<float>() : nullptr;
      for (int r = 0; r < reps; ++r) {
        // Garbage that an overwrite must not leave behind (and the pad's marker), then c.
        std::fill_n(out.data<float>(), M * ldc, 1e30f);
        if (tc.defined())
          for (int64_t i = 0; i < M; ++i)
            std::memcpy(out.data<float>() + i * ldc, tc.data<float>() + i * N,
                        sizeof(float) * size_t(N));
        if (prepack)
          gemm_f32_packed(trans_a, M, apad.data<float>(), lda, pb, out.data<float>(), ldc,
                          tc.defined(), &ep);
        else
          gemm_f32(trans_a, trans_b, M, N, K, apad.data<float>(), lda, tb.data<float>(),
                   tb.size(1), out.data<float>(), ldc, tc.defined(), &ep);
      }
    }
    return py::make_tuple(to_numpy(out), want_z ? opt_numpy(z) : py::object(py::none()));
  }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
     py::arg("c") = py::none(), py::arg("bias") = py::none(), py::arg("act") = 0,
     py::arg("want_z") = false, py::arg("reps") = 1, py::arg("prepack") = true,
     py::arg("ldc_pad") = 0, py::arg("lda_pad") = 0,
     "Test hook: (act(op(a)·op(b) [+ c] + bias), z) through gemm_pack_b_f32 + gemm_f32_packed "
     "(prepack=False: gemm_f32 with the same epilogue); c given means accumulate. With "
     "ldc_pad, C and z are (M, N + ldc_pad) with that row stride, the last ldc_pad columns "
     "left at 1e30; with lda_pad, a is read with a row stride of its width + lda_pad (the "
     "pad NaN).");

  m.def("gemm_kernel_name", [] { return std::string(gemm_kernel().name); },
        "Name of the GEMM micro-kernel for the active ISA.");
}

}  // namespace fastnn
