#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bindings/convert.h"
#include "core/parallel.h"
#include "cpu/isa.h"

#ifndef FASTNN_VERSION
#define FASTNN_VERSION "dev"
#endif

namespace fastnn {

static DType parse_dtype(const std::string& s, const char* op) {
  if (s == "float32") return DType::f32;
  if (s == "int64") return DType::i64;
  fail<TypeError>(op, "dtype must be float32 or int64, got ", s);
}

// The C-contiguous pieces of a concatenation, in order, each held (a sequence may build its
// items on access) with its data pointer and size in bytes.
struct Pieces {
  std::vector<py::object> held;
  std::vector<std::pair<const char*, int64_t>> parts;
  int64_t bytes = 0;
};

// Every item of `arrays` an array (TypeError naming op otherwise); false if one is strided
// or of a dtype other than dt (descr: dt's descriptor, the usual identical object).
static bool collect_pieces(const py::sequence& arrays, const py::dtype& dt, const void* descr,
                           const char* op, Pieces& pc) {
  const auto& api = py::detail::npy_api::get();
  constexpr int kContig = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
  const Py_ssize_t n = py::len(arrays);
  const int64_t item = (int64_t)dt.itemsize();
  pc.held.reserve(size_t(n));
  pc.parts.reserve(size_t(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    pc.held.push_back(arrays[i]);
    const py::handle h = pc.held.back();
    if (!api.PyArray_Check_(h.ptr()))
      fail<TypeError>(op, "element ", i, " must be an array, got ", py_type_name(h));
    const auto* a = py::detail::array_proxy(h.ptr());
    if ((const void*)a->descr != descr &&  // (the same dtype is almost always the same object)
        !py::reinterpret_borrow<py::array>(h).dtype().equal(dt))
      return false;
    if (!(a->flags & kContig)) return false;
    int64_t nb = item;
    for (int d = 0; d < a->nd; ++d) nb *= a->dimensions[d];  // (an existing array's size)
    pc.parts.emplace_back(a->data, nb);
    // (Views of one buffer can add up to more than 2^63 bytes.)
    if (__builtin_add_overflow(pc.bytes, nb, &pc.bytes))
      fail(op, "the pieces hold more than 2^63 bytes");
  }
  return true;
}

static void copy_pieces(const Pieces& pc, char* dst) {
  for (const auto& [src, nb] : pc.parts) {
    if (nb) std::memcpy(dst, src, size_t(nb));
    dst += nb;
  }
}

// cat(dim=0) / stack(dim=0) of host arrays without autograd, in one call: the shape checks
// (with shape.py's messages), a new 64-byte-aligned result, the copy. None where the general
// path must take over: a strided piece, or a dtype other than float32/int64 (native byte
// order). Used by _C.cat0 and by the cat/stack fast routes (bind_autograd.cpp).
// NOTE (speed): Zen 4, no_grad, best of 7: fastnn.cat of two 32x32 float32 3.47 -> 1.91 us,
// fastnn.stack of 64 x 784 floats 16.9 -> 10.8 us, when shape.py called it after its own
// checks (before: those checks, _C.empty, _C.concat0); the C routes (bind_autograd.cpp,
// tensor_cat) now call it directly.
py::object cat0_arrays(const py::tuple& items, bool stack) {
  const char* op = stack ? "stack" : "cat";
  const Py_ssize_t n = PyTuple_GET_SIZE(items.ptr());
  if (n == 0) fail(op, "expected a non-empty sequence of tensors");
  const auto& api = py::detail::npy_api::get();
  const py::handle h0 = items[0];
  if (!api.PyArray_Check_(h0.ptr())) return py::none();
  const py::dtype dt0 = py::reinterpret_borrow<py::array>(h0).dtype();
  DType dt;
  if (dt0.equal(py::dtype::of<float>())) dt = DType::f32;
  else if (dt0.equal(py::dtype::of<int64_t>())) dt = DType::i64;
  else return py::none();
  Pieces pc;  // every item an array of dt0's dtype, C-contiguous; else None
  const auto* p0 = py::detail::array_proxy(h0.ptr());
  if (!collect_pieces(items, dt0, p0->descr, op, pc)) return py::none();
  const int nd0 = p0->nd;
  const Py_intptr_t* d0 = p0->dimensions;
  auto dims = [](const Py_intptr_t* d, int nd) { return std::vector<int64_t>(d, d + nd); };
  int64_t rows = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    const auto* a = py::detail::array_proxy(pc.held[size_t(i)].ptr());
    if (stack) {
      if (a->nd != nd0 || !std::equal(d0, d0 + nd0, a->dimensions))
        fail(op, "all tensors must have the same shape: element 0 is ",
             shape_str(dims(d0, nd0)), ", element ", i, " is ",
             shape_str(dims(a->dimensions, a->nd)));
    } else {
      if (a->nd == 0) fail(op, "zero-dimensional tensor (element ", i,
                           ") cannot be concatenated; use stack");
      if (a->nd != nd0 || !std::equal(d0 + 1, d0 + nd0, a->dimensions + 1))
        fail(op, "sizes must match except in dim 0: element 0 has shape ",
             shape_str(dims(d0, nd0)), ", element ", i, " has ",
             shape_str(dims(a->dimensions, a->nd)));
      // (Pieces with no elements can hold any number of rows: the byte count says nothing.)
      if (__builtin_add_overflow(rows, int64_t(a->dimensions[0]), &rows))
        fail(op, "the result has more than 2^63 rows");
    }
  }
  Shape shape;
  if (stack) shape.push_back(int64_t(n));
  for (int d = 0; d < nd0; ++d) shape.push_back(d == 0 && !stack ? rows : int64_t(d0[d]));
  Tensor out = empty(shape, dt);  // (raises if the size overflows)
  if (pc.bytes != out.numel() * int64_t(dtype_size(dt)))
    fail(op, "the pieces hold ", pc.bytes, " bytes, the result ",
         out.numel() * int64_t(dtype_size(dt)));
  copy_pieces(pc, static_cast<char*>(out.raw()));
  return to_numpy(out);
}

void bind_core(py::module_& m) {
  m.attr("__version__") = FASTNN_VERSION;
  m.def("empty", [](py::handle shape, const std::string& dtype) {
    return to_numpy(empty(shape_arg(shape, "empty"), parse_dtype(dtype, "empty")));
  }, py::arg("shape"), py::arg("dtype") = "float32",
     "A new 64-byte-aligned, C-contiguous array (uninitialised).");
  m.def("clone", [](py::handle a) {
    // NOTE: one call instead of empty() + np.copyto (~1.1 us -> ~0.3 us for a small array):
    // autograd copies every leaf's first gradient, several per training step.
    Tensor src = arg_tensor(a, "clone", "input", std::nullopt);
    Tensor out = empty(src.shape(), src.dtype());
    if (out.numel()) std::memcpy(out.raw(), src.raw(), size_t(out.numel()) * dtype_size(out.dtype()));
    return to_numpy(out);
  }, py::arg("a"), "A new 64-byte-aligned copy of a C-contiguous float32/int64 array.");
  m.def("concat0", [](py::sequence arrays, py::handle out) {
    // NOTE (speed): a DataLoader batch stacks 64+ samples; np.concatenate spent ~0.25 us per
    // array on them (64 x 784 floats: 16 us), this loop ~0.03 plus the copy.
    const char* op = "concat0";
    const auto& api = py::detail::npy_api::get();
    if (!api.PyArray_Check_(out.ptr())) fail<TypeError>(op, "out must be an array, got ", py_type_name(out));
    const auto* o = py::detail::array_proxy(out.ptr());
    constexpr int kContig = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
    if (!(o->flags & kContig) || !(o->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_))
      fail(op, "out must be a writable C-contiguous array");
    const auto out_arr = py::reinterpret_borrow<py::array>(out);
    const int64_t item = (int64_t)out_arr.itemsize();
    int64_t total = item;
    for (int d = 0; d < o->nd; ++d) total *= o->dimensions[d];
    // First pass: every piece an array; one that is strided or of another dtype (byte order
    // included): False, and the caller concatenates with NumPy instead. Then the copy, which
    // cannot fail. The pieces are held until then (a sequence may build them on access).
    Pieces pc;
    if (!collect_pieces(arrays, out_arr.dtype(), o->descr, op, pc)) return false;
    if (pc.bytes != total) fail(op, "the pieces hold ", pc.bytes, " bytes, out ", total);
    copy_pieces(pc, o->data);
    return true;
  }, py::arg("arrays"), py::arg("out"),
     "Copy C-contiguous arrays of out's dtype one after another into out (a concatenation "
     "along the first dim); False, with nothing promised about out, if one of them is "
     "strided or of another dtype.");
  m.def("cat0", [](py::list arrays, bool stack) -> py::object {
    // The items, read once into a tuple: nothing a list subclass does can change them between
    // the checks, the allocation and the copy.
    const auto items = py::reinterpret_steal<py::tuple>(PySequence_Tuple(arrays.ptr()));
    if (!items) throw py::error_already_set();
    return cat0_arrays(items, stack);
  }, py::arg("arrays"), py::arg("stack"),
     "cat (stack False) or stack (True) along dim 0 of host arrays into a new aligned array; "
     "None if a piece is strided or the dtype is not float32/int64.");
  m.def("sole_owner", &sole_owner, py::arg("a"),
        "Whether a is a library-allocated array whose storage nothing else shares (autograd "
        "then adopts it as a gradient instead of copying it).");
  m.def("zeros", [](py::handle shape, const std::string& dtype) {
    return to_numpy(zeros(shape_arg(shape, "zeros"), parse_dtype(dtype, "zeros")));
  }, py::arg("shape"), py::arg("dtype") = "float32");
  m.def("set_num_threads", [](int n) {
    if (n < 1) fail("set_num_threads", "n must be >= 1, got ", n);
    set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  // Balanced regions (core/parallel.h, parallel_run_balanced): test and tuning hooks.
  m.def("_set_balance_weights", [](const std::vector<double>& w) {
    for (double v : w)
      if (!(v > 0.0)) fail("_set_balance_weights", "weights must be positive, got ", v);
    if (!w.empty() && (int)w.size() != get_num_threads())
      fail("_set_balance_weights", "expected one weight per thread (", get_num_threads(),
           "), got ", w.size());
    set_balance_weights(w);
  }, py::arg("weights"),
     "Pin the balanced regions' per-thread weights (normalised), or [] to learn them again.");
  m.def("_balance_weights", &balance_weights,
        "The balanced regions' per-thread weights (summing to 1).");
  m.def("_balanced_split_test", [](int64_t n, int64_t unit) {
    const int T = get_num_threads();
    std::vector<std::pair<int64_t, int64_t>> out(size_t(T), {-1, -1});
    {
      py::gil_scoped_release nogil;
      parallel_run_balanced(T, [&](int t, int nt) {
        if (nt == T) out[size_t(t)] = split_range(n, t, nt, unit);
      });
    }
    return out;
  }, py::arg("n"), py::arg("unit"),
     "Each thread's split_range(n, t, T, unit) inside a balanced region ((-1, -1) for a thread "
     "that did not run, when the pool was busy).");
  m.def("available_cpus", &available_cpus);
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });
  m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name)); }, py::arg("name"));
  m.def("supported_isas", [] {
    std::vector<std::string> v;
    for (Isa i : supported_isas()) v.push_back(isa_name(i));
    return v;
  });
  m.def("cpu_features", &cpu_features);
  m.def("cpu_name", &cpu_name);
  // FASTNN_CUDA_BUILT: set by CMake when fastnn._C_cuda was built alongside this module.
#ifdef FASTNN_CUDA_BUILT
  m.def("cuda_built", [] { return true; });
#else
  m.def("cuda_built", [] { return false; });
#endif
}

}  // namespace fastnn
