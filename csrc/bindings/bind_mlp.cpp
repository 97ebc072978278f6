#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "bindings/convert.h"
#include "bindings/shared.h"
#include "ops/mlp.h"

namespace fastnn {

namespace {

constexpr const char* kOp = "linear";

py::sequence as_list(py::handle obj, const char* name, size_t n) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    fail<TypeError>(kOp, name, " must be a list, got ",
                    py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (n != (size_t)-1 && seq.size() != n)
    fail(kOp, name, " must have one entry per layer (", n, "), got ", seq.size());
  return seq;
}

// ws, bs (None for no bias), acts, betas, thresholds: one entry per layer.
std::vector<MlpLayer> layers_from(py::handle ws, py::handle bs, py::handle acts,
                                  py::handle betas, py::handle thresholds) {
  auto w = as_list(ws, "weights", (size_t)-1);
  const size_t L = w.size();
  auto b = as_list(bs, "biases", L);
  auto a = as_list(acts, "acts", L);
  auto be = as_list(betas, "betas", L);
  auto th = as_list(thresholds, "thresholds", L);
  std::vector<MlpLayer> layers(L);
  for (size_t i = 0; i < L; ++i) {
    const int act = a[i].cast<int>();
    if (act < 0 || act > (int)Act::softplus) fail(kOp, "unknown activation code ", act);
    layers[i].w = arg_tensor(w[i], kOp, "weight", DType::f32);
    layers[i].b = opt_tensor(b[i], kOp, "bias", DType::f32);
    layers[i].p = ActParams{(Act)act, be[i].cast<float>(), th[i].cast<float>()};
  }
  return layers;
}

int64_t chain_macs(const Tensor& x, const std::vector<MlpLayer>& layers) {
  int64_t macs = 0;
  for (const auto& l : layers) macs += x.size(0) * l.w.numel();
  return macs;
}

std::vector<Tensor> tensors_from(py::handle obj, const char* name, size_t n, bool optional) {
  auto seq = as_list(obj, name, n);
  std::vector<Tensor> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = optional ? opt_tensor(seq[i], kOp, name, DType::f32)
                      : arg_tensor(seq[i], kOp, name, DType::f32);
  return out;
}

py::list numpy_list(const std::vector<Tensor>& ts) {
  py::list out(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) out[i] = opt_numpy(ts[i]);
  return out;
}

// ---- the chain as nn.Sequential runs it: a prebuilt spec, saved state kept in C++ ----------
// NOTE (speed): mlp_fwd / mlp_bwd parse five lists per call and hand every intermediate back
// as a NumPy array; for a small network that is most of their time. mlp_spec packs the
// activations once (nn.Sequential keeps it), mlp_chain_fwd keeps what backward needs (the
// layers, the input, the intermediates) in one C++ object, and mlp_chain_bwd returns the
// gradients in LinearChain's argument order. Both are plain METH_FASTCALL functions.
constexpr const char* kSpecCapsule = "fastnn.mlp_spec";
constexpr const char* kSavedCapsule = "fastnn.mlp_saved";

struct ChainSpec {
  std::vector<ActParams> acts;
};

struct ChainSaved {
  std::vector<py::object> keep;  // the arrays the views below read (input, parameters)
  Tensor x;
  std::vector<MlpLayer> layers;
  MlpSaved s;
};

template <class T>
void free_capsule(PyObject* cap, const char* name) {
  delete static_cast<T*>(PyCapsule_GetPointer(cap, name));
}

template <class T>
T& from_capsule(PyObject* obj, const char* name, const char* what) {
  if (!PyCapsule_IsValid(obj, name))
    fail<TypeError>(kOp, what, " must be the object ", what == std::string("spec")
                    ? "mlp_spec" : "mlp_chain_fwd", " returned, got ",
                    Py_TYPE(obj)->tp_name);
  return *static_cast<T*>(PyCapsule_GetPointer(obj, name));
}

// A C-contiguous ndarray: obj itself, or a C-ordered copy of a strided one (anything that is
// not an ndarray is returned as it is, for arg_tensor to refuse).
py::object c_contig(PyObject* obj) {
  const auto& api = py::detail::npy_api::get();
  if (api.PyArray_Check_(obj) &&
      !(py::detail::array_proxy(obj)->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) {
    PyObject* c = api.PyArray_NewCopy_(obj, 0 /* NPY_CORDER */);
    if (!c) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(c);
  }
  return py::reinterpret_borrow<py::object>(obj);
}

// mlp_chain_fwd(x, spec, params) -> (y, saved): params is a tuple (w0, b0, w1, b1, ...), a
// missing bias None; y is the last layer's output, saved what mlp_chain_bwd needs.
PyObject* chain_fwd(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    if (nargs != 3) fail<TypeError>(kOp, "mlp_chain_fwd takes (x, spec, params), got ", nargs,
                                    " arguments");
    const ChainSpec& spec = from_capsule<ChainSpec>(args[1], kSpecCapsule, "spec");
    PyObject* params = args[2];
    if (!PyTuple_Check(params))
      fail<TypeError>(kOp, "params must be a tuple (w0, b0, w1, b1, ...), got ",
                      Py_TYPE(params)->tp_name);
    const size_t L = spec.acts.size();
    if ((size_t)PyTuple_GET_SIZE(params) != 2 * L)
      fail(kOp, "params must hold a weight and a bias (or None) per layer (", 2 * L,
           " entries for ", L, " layers), got ", PyTuple_GET_SIZE(params));
    auto saved = std::make_unique<ChainSaved>();
    saved->keep.reserve(2 * L + 1);
    saved->keep.push_back(c_contig(args[0]));
    saved->x = arg_tensor(saved->keep.back(), kOp, "input", DType::f32);
    saved->layers.resize(L);
    for (size_t i = 0; i < L; ++i) {
      PyObject* w = PyTuple_GET_ITEM(params, 2 * i);
      PyObject* b = PyTuple_GET_ITEM(params, 2 * i + 1);
      saved->layers[i].w = arg_tensor(w, kOp, "weight", DType::f32);
      saved->layers[i].b = opt_tensor(b, kOp, "bias", DType::f32);
      saved->layers[i].p = spec.acts[i];
      saved->keep.push_back(py::reinterpret_borrow<py::object>(w));
      saved->keep.push_back(py::reinterpret_borrow<py::object>(b));
    }
    {
      const Tensor& tx = saved->x;
      ReleaseGilFor nogil(tx.ndim() == 2 ? chain_macs(tx, saved->layers) / 2 : 0);
      saved->s = mlp_forward(tx, saved->layers);
    }
    py::object y = opt_numpy(saved->s.ys.back());
    PyObject* cap = PyCapsule_New(saved.get(), kSavedCapsule, [](PyObject* c) {
      free_capsule<ChainSaved>(c, kSavedCapsule);
    });
    if (!cap) throw py::error_already_set();
    saved.release();
    return PyTuple_Pack(2, y.ptr(), py::reinterpret_steal<py::object>(cap).ptr());
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// mlp_chain_bwd(dy, saved, needs) -> (dx, None, dw0, db0, dw1, db1, ...): needs is
// LinearChain's needs_input_grad (x, spec, w0, b0, ...); None where not requested.
PyObject* chain_bwd(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    if (nargs != 3) fail<TypeError>(kOp, "mlp_chain_bwd takes (dy, saved, needs), got ",
                                    nargs, " arguments");
    py::object dy = c_contig(args[0]);
    Tensor tdy = arg_tensor(dy, kOp, "grad_output", DType::f32);
    const ChainSaved& sv = from_capsule<ChainSaved>(args[1], kSavedCapsule, "saved");
    const size_t L = sv.layers.size();
    PyObject* needs = args[2];
    if (!PyTuple_Check(needs) || (size_t)PyTuple_GET_SIZE(needs) != 2 * L + 2)
      fail<TypeError>(kOp, "needs must be a tuple of ", 2 * L + 2, " bools");
    auto flag = [&](size_t i) {
      const int r = PyObject_IsTrue(PyTuple_GET_ITEM(needs, i));
      if (r < 0) throw py::error_already_set();
      return r == 1;
    };
    const bool need_dx = flag(0);
    std::vector<bool> need_dw(L), need_db(L);
    for (size_t i = 0; i < L; ++i) {
      need_dw[i] = flag(2 + 2 * i);
      need_db[i] = flag(3 + 2 * i);
    }
    MlpGrads g;
    {
      ReleaseGilFor nogil(sv.x.ndim() == 2 ? chain_macs(sv.x, sv.layers) : 0);
      g = mlp_backward(tdy, sv.x, sv.layers, sv.s, need_dx, need_dw, need_db);
    }
    py::tuple out(2 * L + 2);
    PyTuple_SET_ITEM(out.ptr(), 0, opt_numpy(g.dx).release().ptr());
    PyTuple_SET_ITEM(out.ptr(), 1, py::none().release().ptr());
    for (size_t i = 0; i < L; ++i) {
      PyTuple_SET_ITEM(out.ptr(), 2 + 2 * i, opt_numpy(g.dw[i]).release().ptr());
      PyTuple_SET_ITEM(out.ptr(), 3 + 2 * i, opt_numpy(g.db[i]).release().ptr());
    }
    return out.release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

}  // namespace

void bind_mlp(py::module_& m) {
  m.def("mlp_spec", [](py::handle acts, py::handle betas, py::handle thresholds) {
    auto a = as_list(acts, "acts", (size_t)-1);
    const size_t L = a.size();
    if (L == 0) fail(kOp, "a chain needs at least one layer, got none");
    auto be = as_list(betas, "betas", L);
    auto th = as_list(thresholds, "thresholds", L);
    auto spec = std::make_unique<ChainSpec>();
    spec->acts.resize(L);
    for (size_t i = 0; i < L; ++i) {
      const int act = a[i].cast<int>();
      if (act < 0 || act > (int)Act::softplus) fail(kOp, "unknown activation code ", act);
      spec->acts[i] = ActParams{(Act)act, be[i].cast<float>(), th[i].cast<float>()};
    }
    py::capsule cap(spec.get(), kSpecCapsule, [](PyObject* c) {
      free_capsule<ChainSpec>(c, kSpecCapsule);
    });
    spec.release();
    return cap;
  }, py::arg("acts"), py::arg("betas"), py::arg("thresholds"),
     "The activations of a chain (codes, softplus betas and thresholds, one per layer), "
     "checked and packed once for mlp_chain_fwd.");
  static PyMethodDef fwd_def = {
      "mlp_chain_fwd", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&chain_fwd)),
      METH_FASTCALL,
      "mlp_chain_fwd(x, spec, params) -> (y, saved): mlp_fwd's chain with the activations of "
      "spec (mlp_spec) and params = (w0, b0, w1, b1, ...) (None for no bias); y is the last "
      "layer's output, saved what mlp_chain_bwd needs."};
  static PyMethodDef bwd_def = {
      "mlp_chain_bwd", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&chain_bwd)),
      METH_FASTCALL,
      "mlp_chain_bwd(dy, saved, needs) -> (dx, None, dw0, db0, ...): the gradients of "
      "mlp_chain_fwd's inputs, in (x, spec, *params) order, None where needs (one bool per "
      "such argument) is False."};
  add_fastcall(m, &fwd_def);
  add_fastcall(m, &bwd_def);

  m.def("mlp_fwd", [](py::handle x, py::handle ws, py::handle bs, py::handle acts,
                      py::handle betas, py::handle thresholds) {
    Tensor tx = arg_tensor(x, kOp, "input", DType::f32);
    std::vector<MlpLayer> layers = layers_from(ws, bs, acts, betas, thresholds);
    MlpSaved s;
    {
      // Work counted in multiply-adds, as bind_dense.cpp's GEMMs (against 2x the threshold).
      ReleaseGilFor nogil(tx.ndim() == 2 ? chain_macs(tx, layers) / 2 : 0);
      s = mlp_forward(tx, layers);
    }
    return py::make_tuple(numpy_list(s.ys), numpy_list(s.zs));
  }, py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("acts"), py::arg("betas"),
     py::arg("thresholds"),
     "Linear layers in a chain, each y = act(x·wᵀ + b) feeding the next. Returns (ys, zs): "
     "every layer's output (the last is the chain's) and, for gelu/softplus layers, its "
     "pre-activation (None for the others).");

  m.def("mlp_bwd", [](py::handle dy, py::handle x, py::handle ws, py::handle bs, py::handle acts,
                      py::handle betas, py::handle thresholds, py::handle ys, py::handle zs,
                      bool need_dx, const std::vector<bool>& need_dw,
                      const std::vector<bool>& need_db) {
    Tensor tdy = arg_tensor(dy, kOp, "grad_output", DType::f32);
    Tensor tx = arg_tensor(x, kOp, "input", DType::f32);
    std::vector<MlpLayer> layers = layers_from(ws, bs, acts, betas, thresholds);
    MlpSaved s;
    s.ys = tensors_from(ys, "saved outputs", layers.size(), false);
    s.zs = tensors_from(zs, "saved pre-activations", layers.size(), true);
    MlpGrads g;
    {
      ReleaseGilFor nogil(tx.ndim() == 2 ? chain_macs(tx, layers) : 0);  // 2 GEMMs per layer
      g = mlp_backward(tdy, tx, layers, s, need_dx, need_dw, need_db);
    }
    return py::make_tuple(opt_numpy(g.dx), numpy_list(g.dw), numpy_list(g.db));
  }, py::arg("dy"), py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("acts"),
     py::arg("betas"), py::arg("thresholds"), py::arg("ys"), py::arg("zs"), py::arg("need_dx"),
     py::arg("need_dw"), py::arg("need_db"),
     "(dx, dws, dbs) of mlp_fwd's chain given the gradient of its output; None where not "
     "requested (dx unless need_dx, a layer's dw / db unless need_dw[i] / need_db[i]).");
}

}  // namespace fastnn
