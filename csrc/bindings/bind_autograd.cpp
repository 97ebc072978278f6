// The autograd engine's two per-call paths, in C++ for per-call overhead: _C.run_backward,
// the loop of the backward pass (python/fastnn/autograd.py, run_backward), and
// _C.function_apply, Function.apply (recording one op call; see its comment below). Also the
// common calls of small, frequent ops (_C.tensor_matmul, _C.tensor_add, _C.tensor_relu,
// _C.tensor_sum, _C.tensor_zeros, ...: "fast routes" below), which build their Tensors the
// same way. A small
// network's training step is a few microseconds of this bookkeeping around the kernels; in
// Python it cost ~7 us of the ~24 us step of the StatQuest 1-2-1 net.
//
// The graph stays Python objects (Node, Tensor) and every Function's backward is Python; this
// only walks them. The rare paths (error messages, zero gradients for unused outputs of a
// multi-output node, summing two gradients of one non-leaf, device arrays) call the Python
// helpers in fastnn.autograd, so they are written once.
#include <Python.h>
#include <structmember.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "bindings/changes.h"
#include "bindings/convert.h"
#include "bindings/shared.h"

namespace fastnn {

namespace {

// ---- in-place changes ------------------------------------------------------------------------
// PyTorch keeps a version counter per tensor, shared by its views, and a saved tensor whose
// version moved since it was saved makes backward raise. fastnn records changes by memory
// instead: every in-place change (Tensor's in-place methods and __setitem__, the optimizers'
// steps, load_state_dict) bumps a global epoch and stamps the array owning the changed
// memory (an ndarray's view chain ends at its owner, so every view of one buffer has the same
// key) with it; every recorded op notes the epoch it was recorded at. Backward checks the
// arrays a node holds for its backward (saved_tensors and the ctx attributes) only when some
// change happened after the node was recorded, so an ordinary training step pays one integer
// per recorded op.
// NOTE: keys are object addresses and are never removed when an array dies. A stale stamp
// cannot raise wrongly: an array at that address now was created after the stamp, so every
// node holding it was recorded at a later epoch than the stamp. Past kMaxChanged keys the
// table is emptied (changes before that point are then no longer seen: a missed error, never
// a false one).
uint64_t g_epoch = 0;
std::unordered_map<const void*, uint64_t> g_changed;
constexpr size_t kMaxChanged = size_t(1) << 16;

// The address that stands for a's memory: an ndarray's owner (the end of its chain of bases
// that are ndarrays); for an object whose class defines _memory_key (a CUDA array: the address
// of its device block, shared by its reshapes), that; else a itself.
const void* memory_key(PyObject* a) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(a)) {
    static PyObject* name = PyUnicode_InternFromString("_memory_key");
    // Looked up in the class's own dict first: no AttributeError raised (and cleared) for
    // the ints, shapes and None a node holds. (Static built-in types may have no dict.)
    PyObject* d = Py_TYPE(a)->tp_dict;
    if (name && d && PyDict_GetItemWithError(d, name)) {
      PyObject* k = PyObject_GetAttr(a, name);
      if (k) {
        void* p = PyLong_AsVoidPtr(k);
        Py_DECREF(k);
        if (p || !PyErr_Occurred()) return p;
      }
    }
    PyErr_Clear();
    return a;
  }
  while (true) {
    PyObject* base = py::detail::array_proxy(a)->base;
    if (!base || !api.PyArray_Check_(base)) break;
    a = base;
  }
  return a;
}

// Whether the memory of a was changed after epoch.
bool changed_after(PyObject* a, uint64_t epoch) {
  if (g_changed.empty()) return false;
  auto it = g_changed.find(memory_key(a));
  return it != g_changed.end() && it->second > epoch;
}

// Everything both paths use, set once by _C.autograd_setup when fastnn.tensor is imported
// (before any op can be recorded): interned attribute names, the Tensor and Node classes,
// the grad-mode object and fastnn.autograd's helpers for the rare paths. Never freed: they
// live as long as the interpreter.
struct Env {
  PyObject* tensor = nullptr;  // set last: function_apply checks it
  PyObject *make, *node_type, *grad_mode, *f32, *empty_tuple;
  PyObject *check_node, *fill_outputs, *accumulate, *device_sole_owner, *check_devices,
      *out_meta_fn;
  PyObject *node, *inputs, *epoch, *freed, *fn, *backward, *n_outputs, *index, *data,
      *shape, *retains_grad, *accumulate_grad, *saved_tensors, *dict, *dtype, *name,
      *grad, *requires_grad, *forward, *enabled, *needs_input_grad, *out_meta;
  bool adopt_ok = false;
  // Byte offsets of Tensor's __slots__ (_data, _requires_grad, grad, _node, _index,
  // _retains_grad, _version), read from its member descriptors; 0 when Tensor's layout is
  // not the expected one, and make_tensor then calls Tensor._make.
  Py_ssize_t off[7] = {0, 0, 0, 0, 0, 0, 0};
};
Env env;

// Tensor's slot offsets (see Env::off), or all zero.
void find_slots(py::handle tensor) {
  static const char* names[7] = {"_data", "_requires_grad", "grad", "_node", "_index",
                                 "_retains_grad", "_version"};
  PyObject* dict = ((PyTypeObject*)tensor.ptr())->tp_dict;
  Py_ssize_t off[7];
  for (int i = 0; i < 7; ++i) {
    PyObject* d = PyDict_GetItemString(dict, names[i]);  // borrowed
    if (!d || Py_TYPE(d) != &PyMemberDescr_Type) return;
    PyMemberDef* m = ((PyMemberDescrObject*)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0) return;
    off[i] = m->offset;
  }
  for (int i = 0; i < 7; ++i) env.off[i] = off[i];
}

void setup(py::module_ ag, py::handle tensor) {
  auto s = [](const char* v) { return PyUnicode_InternFromString(v); };
  auto keep = [&](const char* attr) { return py::object(ag.attr(attr)).release().ptr(); };
  env.node = s("_node");
  env.inputs = s("inputs");
  env.epoch = s("epoch");
  env.freed = s("freed");
  env.fn = s("fn");
  env.backward = s("backward");
  env.n_outputs = s("n_outputs");
  env.index = s("_index");
  env.data = s("_data");
  env.shape = s("shape");
  env.retains_grad = s("_retains_grad");
  env.accumulate_grad = s("_accumulate_grad");
  env.saved_tensors = s("saved_tensors");
  env.dict = s("__dict__");
  env.dtype = s("dtype");
  env.name = s("name");
  env.grad = s("grad");
  env.requires_grad = s("_requires_grad");
  env.forward = s("forward");
  env.enabled = s("enabled");
  env.needs_input_grad = s("needs_input_grad");
  env.out_meta = s("out_meta");
  env.node_type = keep("Node");
  env.grad_mode = keep("grad_mode");
  env.f32 = keep("_F32");
  env.check_node = keep("_check_node");
  env.fill_outputs = keep("_fill_outputs");
  env.accumulate = keep("_accumulate");
  env.device_sole_owner = keep("_device_sole_owner");
  env.check_devices = keep("_check_devices");
  env.out_meta_fn = keep("_out_meta");
  env.adopt_ok = ag.attr("_ADOPT").cast<bool>();
  env.empty_tuple = PyTuple_New(0);
  env.make = py::object(tensor.attr("_make")).release().ptr();
  find_slots(tensor);
  env.tensor = tensor.inc_ref().ptr();
}

py::object get(py::handle o, PyObject* name) {
  PyObject* r = PyObject_GetAttr(o.ptr(), name);
  if (!r) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}

void set(py::handle o, PyObject* name, py::handle v) {
  if (PyObject_SetAttr(o.ptr(), name, v.ptr()) < 0) throw py::error_already_set();
}

py::object call(PyObject* f, std::initializer_list<PyObject*> args) {
  PyObject* r = PyObject_Vectorcall(f, const_cast<PyObject**>(args.begin()), args.size(), nullptr);
  if (!r) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}

bool truthy(py::handle o) {
  const int r = PyObject_IsTrue(o.ptr());
  if (r < 0) throw py::error_already_set();
  return r == 1;
}

int64_t as_int(py::handle o) {
  const long long v = PyLong_AsLongLong(o.ptr());
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// Whether g, held only by the gradient tuple, may become a leaf's .grad without a copy (see
// autograd.py's NOTE on adopting gradients). In C++ the count is exact: the backward's frame
// has returned, so every other holder owns a reference.
bool may_adopt(PyObject* g) {
  if (!env.adopt_ok || Py_REFCNT(g) != 1) return false;
  if (Py_TYPE(g) == py::detail::npy_api::get().PyArray_Type_) {
    py::object dt = get(g, env.dtype);
    return dt.ptr() == env.f32 && sole_owner(g);
  }
  return truthy(call(env.device_sole_owner, {g}));
}

bool is_f32(PyObject* arr) {
  PyObject* dt = PyObject_GetAttr(arr, env.dtype);
  if (!dt) throw py::error_already_set();
  const int eq = dt == env.f32 ? 1 : PyObject_RichCompareBool(dt, env.f32, Py_EQ);
  Py_DECREF(dt);
  if (eq < 0) throw py::error_already_set();
  return eq == 1;
}

// Tensor._make(data, node, index). NOTE (speed): built here, slot by slot, as _make does
// (~0.1 us less than calling it; six tensors per step of the 1-2-1 net).
py::object make_tensor(PyObject* data, PyObject* node, Py_ssize_t index) {
  if (env.off[0] && Py_IS_TYPE(env.tensor, &PyType_Type)) {
    PyTypeObject* tp = (PyTypeObject*)env.tensor;
    PyObject* idx = PyLong_FromSsize_t(index);
    if (!idx) throw py::error_already_set();
    PyObject* t = tp->tp_alloc(tp, 0);
    if (!t) {
      Py_DECREF(idx);
      throw py::error_already_set();
    }
    PyObject* vals[7] = {data, node != Py_None ? Py_True : Py_False, Py_None, node, idx,
                         Py_False, nullptr};
    PyObject* zero = PyLong_FromLong(0);
    if (!zero) {
      Py_DECREF(idx);
      Py_DECREF(t);
      throw py::error_already_set();
    }
    vals[6] = zero;
    for (int i = 0; i < 7; ++i) {
      if (i != 4 && i != 6) Py_INCREF(vals[i]);  // idx and zero: new references, moved in
      *(PyObject**)((char*)t + env.off[i]) = vals[i];
    }
    return py::reinterpret_steal<py::object>(t);
  }
  py::object idx = py::reinterpret_steal<py::object>(PyLong_FromSsize_t(index));
  PyObject* args[] = {data, node, idx.ptr()};
  PyObject* r = PyObject_Vectorcall(env.make, args, 3, nullptr);
  if (!r) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}

// The first value in o (a Tensor standing for its array; tuples and lists searched, a few
// levels deep) whose memory was changed in place after epoch, or null. Borrowed: o holds it.
PyObject* first_changed(PyObject* o, uint64_t epoch, int depth = 0) {
  if (PyTuple_Check(o) || PyList_Check(o)) {
    if (depth >= 4) return nullptr;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(o); ++i)
      if (PyObject* r = first_changed(PySequence_Fast_GET_ITEM(o, i), epoch, depth + 1))
        return r;
    return nullptr;
  }
  if (PyObject_TypeCheck(o, (PyTypeObject*)env.tensor))
    return changed_after(get(o, env.data).ptr(), epoch) ? o : nullptr;
  return changed_after(o, epoch) ? o : nullptr;
}

// The engine. root_node's output root_index gets grad; nodes run once every consumer of
// their outputs has run (dependency counts, as PyTorch's engine).
// Freed (a second backward without retain_graph), or a value the node holds for its backward
// (saved_tensors, its ctx attributes) changed in place since the node was recorded:
// autograd._check_node raises with the message.
void check_fresh(PyObject* node) {
  if (truthy(get(node, env.freed))) {
    call(env.check_node, {node, Py_None});
    return;
  }
  const unsigned long long epoch = PyLong_AsUnsignedLongLong(get(node, env.epoch).ptr());
  if (epoch == (unsigned long long)-1 && PyErr_Occurred()) throw py::error_already_set();
  if (epoch >= g_epoch) return;  // nothing was changed in place since it was recorded
  py::object saved = get(node, env.saved_tensors);
  PyObject* hit = first_changed(saved.ptr(), epoch);
  if (hit) {
    call(env.check_node, {node, hit});
    return;
  }
  py::object attrs = get(node, env.dict);
  if (!PyDict_Check(attrs.ptr())) return;
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(attrs.ptr(), &pos, &key, &value)) {
    if ((hit = first_changed(value, epoch))) {
      call(env.check_node, {node, hit});
      return;
    }
  }
}

void run_backward(py::handle root_node, int64_t root_index, py::handle grad, bool retain) {
  if (!env.tensor) throw std::runtime_error("[backward] autograd_setup was not called");
  // Strong references to every node met, so pointer keys stay valid whatever the
  // backwards do to the graph.
  std::vector<py::object> keep;
  std::unordered_map<PyObject*, int> deps;
  {
    // Every node is checked here, before any backward runs: a tensor modified in place
    // after its use raises before a single gradient is written (checked at each node's own
    // turn, the nodes between the root and that use had already added into leaves' .grad,
    // e.g. x's in x @ w.T when w was modified, since w.T is a view).
    check_fresh(root_node.ptr());
    std::vector<PyObject*> stack{root_node.ptr()};
    while (!stack.empty()) {
      py::object inputs = get(stack.back(), env.inputs);
      stack.pop_back();
      PyObject* seq = PySequence_Fast(inputs.ptr(), "node inputs must be a list");
      if (!seq) throw py::error_already_set();
      py::object hold = py::reinterpret_steal<py::object>(seq);
      const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* t = PySequence_Fast_GET_ITEM(seq, i);
        if (t == Py_None) continue;
        py::object nd = get(t, env.node);
        if (nd.is_none()) continue;
        auto it = deps.find(nd.ptr());
        if (it != deps.end()) {
          ++it->second;
        } else {
          check_fresh(nd.ptr());
          deps.emplace(nd.ptr(), 1);
          stack.push_back(nd.ptr());
          keep.push_back(std::move(nd));
        }
      }
    }
  }
  // Per node still to run: its output gradients so far (None where nothing arrived).
  std::unordered_map<PyObject*, py::list> pending;
  {
    const int64_t n_out = as_int(get(root_node, env.n_outputs));
    py::list slots(n_out);
    for (int64_t k = 0; k < n_out; ++k) slots[k] = py::none();
    slots[root_index] = grad;
    pending.emplace(root_node.ptr(), std::move(slots));
  }
  // Changes during the pass (a leaf's existing .grad accumulated in place, which a node may
  // have saved: Tensor._accumulate_grad notes it): the nodes still to run are checked again.
  const uint64_t start_epoch = g_epoch;
  std::vector<py::object> ready{py::reinterpret_borrow<py::object>(root_node)};
  while (!ready.empty()) {
    py::object node = std::move(ready.back());
    ready.pop_back();
    py::object gouts;
    if (auto it = pending.find(node.ptr()); it != pending.end()) {
      gouts = std::move(it->second);
      pending.erase(it);
    }
    py::object inputs = get(node, env.inputs);
    PyObject* in_seq = PySequence_Fast(inputs.ptr(), "node inputs must be a list");
    if (!in_seq) throw py::error_already_set();
    py::object in_hold = py::reinterpret_steal<py::object>(in_seq);
    const Py_ssize_t n_in = PySequence_Fast_GET_SIZE(in_seq);
    py::tuple gins;
    const bool ran = static_cast<bool>(gouts);  // the node's backward runs (gouts is dropped)
    if (ran) {
      // (Freed and modified inputs were checked before anything ran; see check_fresh.)
      if (g_epoch != start_epoch) check_fresh(node.ptr());
      py::list gl = py::reinterpret_borrow<py::list>(gouts);
      if (gl.size() > 1) call(env.fill_outputs, {node.ptr(), gl.ptr()});  // zeros for None
      // node.fn.backward(node, *gouts)
      py::object bw = get(get(node, env.fn), env.backward);
      std::vector<PyObject*> args{node.ptr()};
      for (py::handle g : gl) args.push_back(g.ptr());
      PyObject* r = PyObject_Vectorcall(bw.ptr(), args.data(), args.size(), nullptr);
      if (!r) throw py::error_already_set();
      py::object ret = py::reinterpret_steal<py::object>(r);
      // The output gradients are done with: dropped now, so an input gradient that is a view
      // of one (Permute's backward returns g transposed) can be adopted below (may_adopt).
      args.clear();
      gl.release().dec_ref();
      gouts = py::object();
      if (PyTuple_Check(ret.ptr())) {
        gins = py::reinterpret_steal<py::tuple>(ret.release());
      } else {
        gins = py::tuple(1);
        PyTuple_SET_ITEM(gins.ptr(), 0, ret.release().ptr());
      }
    }
    const Py_ssize_t n_g = gins ? PyTuple_GET_SIZE(gins.ptr()) : 0;
    for (Py_ssize_t i = 0; i < n_in; ++i) {
      PyObject* t = PySequence_Fast_GET_ITEM(in_seq, i);
      if (t == Py_None) continue;
      PyObject* g = i < n_g ? PyTuple_GET_ITEM(gins.ptr(), i) : Py_None;
      py::object n = get(t, env.node);
      if (g != Py_None) {
        py::object gshape = get(g, env.shape), tshape = get(get(t, env.data), env.shape);
        const int same = PyObject_RichCompareBool(gshape.ptr(), tshape.ptr(), Py_EQ);
        if (same < 0) throw py::error_already_set();
        if (!same) {
          py::object name = get(node, env.name);
          throw std::runtime_error(str("[backward] ", py::str(name).cast<std::string>(),
                                       " returned a gradient of shape ",
                                       py::str(gshape).cast<std::string>(),
                                       " for an input of shape ",
                                       py::str(tshape).cast<std::string>()));
        }
        if (n.is_none()) {
          const bool adopt = may_adopt(g);
          if (adopt) {  // the common case, without Tensor._accumulate_grad's frame
            py::object cur = get(t, env.grad);
            if (cur.is_none()) {
              set(t, env.grad, make_tensor(g, Py_None, 0));
              goto next_dep;
            }
          }
          PyObject* args[] = {t, g, adopt ? Py_True : Py_False};
          PyObject* r = PyObject_VectorcallMethod(env.accumulate_grad, args,
                                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
          if (!r) throw py::error_already_set();
          Py_DECREF(r);
        } else {
          if (truthy(get(t, env.retains_grad))) {
            PyObject* args[] = {t, g};
            PyObject* r = PyObject_VectorcallMethod(env.accumulate_grad, args,
                                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
            if (!r) throw py::error_already_set();
            Py_DECREF(r);
          }
          auto it = pending.find(n.ptr());
          if (it == pending.end()) {
            const int64_t n_out = as_int(get(n, env.n_outputs));
            py::list slots(n_out);
            for (int64_t k = 0; k < n_out; ++k) slots[k] = py::none();
            it = pending.emplace(n.ptr(), std::move(slots)).first;
          }
          const int64_t idx = as_int(get(t, env.index));
          py::handle prev = PyList_GET_ITEM(it->second.ptr(), idx);
          if (prev.is_none())
            it->second[idx] = py::handle(g);
          else
            it->second[idx] = call(env.accumulate, {prev.ptr(), g});
        }
      }
    next_dep:
      if (!n.is_none()) {
        auto it = deps.find(n.ptr());
        if (it != deps.end() && --it->second == 0) ready.push_back(std::move(n));
      }
    }
    if (!retain && ran) {
      // Free what the node saved: the saved tensors and whatever forward stored on ctx.
      set(node, env.saved_tensors, py::tuple());
      PyDict_Clear(get(node, env.dict).ptr());
      set(node, env.freed, py::handle(Py_True));
    }
  }
}

// ---- Function.apply ----------------------------------------------------------------------
// Function.apply(cls, *args), as a classmethod: args[0] is the Function subclass.
// 1. Tensor arguments reach forward as their arrays; ctx (a new Node) gets saved_tensors = ()
//    and needs_input_grad (one bool per argument: a Tensor that requires grad).
// 2. forward(ctx, *raw). A TypeError from it first goes through autograd._check_devices,
//    which names mixed devices (kernels of one backend refuse the other's arrays).
// 3. Nothing needs a gradient, or grad mode is off: the outputs become plain Tensors.
// 4. Else ctx records fn, freed = False, inputs (the Tensors that need a gradient, None for
//    the other arguments), epoch (the in-place change count now: backward checks the values
//    ctx holds only if something changed since; see changed_after), n_outputs and out_meta
//    (multi-output: (shape, dtype, device) per output), and the float32 outputs point at it.
PyObject* function_apply(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    if (!env.tensor) throw std::runtime_error("[apply] autograd_setup was not called");
    if (nargs < 1) throw std::runtime_error("[apply] needs the Function class");
    PyObject* cls = args[0];
    const Py_ssize_t n = nargs - 1;
    PyObject* const* a = args + 1;
    std::vector<PyObject*> fargs(n + 1);  // ctx, then the arguments with Tensors as arrays
    std::vector<py::object> raw_hold;
    raw_hold.reserve(n);
    py::tuple needs(n);
    bool track = false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      bool need = false;
      if (PyObject_TypeCheck(a[i], (PyTypeObject*)env.tensor)) {
        raw_hold.push_back(get(a[i], env.data));
        fargs[i + 1] = raw_hold.back().ptr();
        need = truthy(get(a[i], env.requires_grad));
      } else {
        fargs[i + 1] = a[i];
      }
      track |= need;
      PyTuple_SET_ITEM(needs.ptr(), i, py::bool_(need).release().ptr());
    }
    PyObject* node_raw = PyBaseObject_Type.tp_new((PyTypeObject*)env.node_type,
                                                  env.empty_tuple, nullptr);
    if (!node_raw) throw py::error_already_set();
    py::object ctx = py::reinterpret_steal<py::object>(node_raw);
    set(ctx, env.saved_tensors, env.empty_tuple);
    set(ctx, env.needs_input_grad, needs);
    fargs[0] = ctx.ptr();
    py::object fwd = get(cls, env.forward);
    PyObject* out_raw = PyObject_Vectorcall(fwd.ptr(), fargs.data(), fargs.size(), nullptr);
    if (!out_raw) {
      if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        py::tuple targs(n);
        for (Py_ssize_t i = 0; i < n; ++i) {
          Py_INCREF(a[i]);
          PyTuple_SET_ITEM(targs.ptr(), i, a[i]);
        }
        PyObject* cargs[] = {cls, targs.ptr(), env.tensor};
        PyObject* r = PyObject_Vectorcall(env.check_devices, cargs, 3, nullptr);
        if (!r) {  // mixed devices: that error, with the TypeError as its context
          Py_XDECREF(t);
          Py_XDECREF(v);
          Py_XDECREF(tb);
          throw py::error_already_set();
        }
        Py_DECREF(r);
        PyErr_Restore(t, v, tb);
      }
      throw py::error_already_set();
    }
    py::object out = py::reinterpret_steal<py::object>(out_raw);
    const bool multi = PyTuple_Check(out.ptr());
    const bool record = track && truthy(get(env.grad_mode, env.enabled));
    if (!record) {
      if (!multi) return make_tensor(out.ptr(), Py_None, 0).release().ptr();
      const Py_ssize_t k = PyTuple_GET_SIZE(out.ptr());
      py::tuple res(k);
      for (Py_ssize_t i = 0; i < k; ++i)
        PyTuple_SET_ITEM(res.ptr(), i,
                         make_tensor(PyTuple_GET_ITEM(out.ptr(), i), Py_None, 0).release().ptr());
      return res.release().ptr();
    }
    set(ctx, env.fn, cls);
    set(ctx, env.freed, Py_False);
    py::list inputs(n);
    for (Py_ssize_t i = 0; i < n; ++i) {
      const bool need = PyTuple_GET_ITEM(needs.ptr(), i) == Py_True;
      PyObject* item = need ? a[i] : Py_None;
      Py_INCREF(item);
      PyList_SET_ITEM(inputs.ptr(), i, item);
    }
    set(ctx, env.inputs, inputs);
    {
      PyObject* e = PyLong_FromUnsignedLongLong(g_epoch);
      if (!e) throw py::error_already_set();
      set(ctx, env.epoch, py::reinterpret_steal<py::object>(e));
    }
    if (!multi) {
      set(ctx, env.n_outputs, py::int_(1));
      set(ctx, env.out_meta, Py_None);
      return make_tensor(out.ptr(), is_f32(out.ptr()) ? ctx.ptr() : Py_None, 0).release().ptr();
    }
    const Py_ssize_t k = PyTuple_GET_SIZE(out.ptr());
    set(ctx, env.n_outputs, py::int_(k));
    {
      PyObject* margs[] = {out.ptr()};
      PyObject* meta = PyObject_Vectorcall(env.out_meta_fn, margs, 1, nullptr);
      if (!meta) throw py::error_already_set();
      set(ctx, env.out_meta, py::reinterpret_steal<py::object>(meta));
    }
    py::tuple res(k);
    for (Py_ssize_t i = 0; i < k; ++i) {
      PyObject* o = PyTuple_GET_ITEM(out.ptr(), i);
      PyTuple_SET_ITEM(res.ptr(), i,
                       make_tensor(o, is_f32(o) ? ctx.ptr() : Py_None, i).release().ptr());
    }
    return res.release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

PyObject* run_backward_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  try {
    if (nargs != 4)
      throw std::runtime_error(str("[backward] run_backward takes 4 arguments (root_node, "
                                   "root_index, grad, retain_graph), got ", nargs));
    const int64_t index = as_int(args[1]);
    run_backward(args[0], index, args[2], truthy(args[3]));
    Py_RETURN_NONE;
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

// ---- fast routes: fastnn.matmul, relu, softmax, sum, cat, zeros, ... --------------------
// The common call of small, frequent ops is done here: every operand a Tensor (or a subclass
// such as Parameter) with nothing to record (none requires grad, or grad mode is off) whose
// array the op's plain kernel entry takes (mm_plain: two 2-D float32 host arrays the GEMM
// reads in place, such as C-contiguous arrays and transposed views, with matching inner
// dimensions; binary_plain: float32 host arrays that broadcast, or one and a Python number;
// compare_plain / where_plain: float32 host arrays of one shape, or numbers; act_plain /
// unary_plain / clamp_plain: a C-contiguous float32 host array; softmax_plain / sum_plain:
// one and an int dim; cat0_arrays: a list or tuple of host arrays, dim 0; getitem and T:
// NumPy's own views), or a factory's sizes as ints (tensor_new). It reads the Tensors'
// slots, runs the kernel and wraps the result (make_tensor). Every other call goes to the
// op's Python route: autograd, broadcasting, other strided views, CUDA arrays, other keyword
// arguments, and the error messages (except cat0_arrays' shape errors, raised with cat's and
// stack's own messages). The arguments reach it as given, except that softmax's dim= comes
// as a second positional argument. Results are the same tensors either way.
// NOTE (speed): 16x16x16 matmul, 1 thread, Intel Xeon (AVX-512), best of 7 x 100k calls: the
// Python fast path took 0.74 us, of which _C.mm was 0.27 us and Tensor._make 0.25 us; this
// route takes 0.34 us.
struct FastRoute {
  const char* module;  // where the Python route lives
  const char* name;
  PyObject* general = nullptr;  // looked up on the first call that needs it, then kept
};

PyObject* call_general(FastRoute& r, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  if (!r.general) {
    PyObject* mod = PyImport_ImportModule(r.module);
    if (!mod) return nullptr;
    PyObject* f = PyObject_GetAttrString(mod, r.name);
    Py_DECREF(mod);
    if (!f) return nullptr;
    r.general = f;  // kept for the life of the process, as the module is
  }
  return PyObject_Vectorcall(r.general, args, nargsf, kwnames);
}

// Slot i of a Tensor (see Env::off): a borrowed reference, or null when it is unset.
PyObject* slot(PyObject* t, int i) { return *(PyObject**)((char*)t + env.off[i]); }

// The operand's array when it is a Tensor with its slots set, else null. *rg: whether it
// requires grad.
PyObject* tensor_array(PyObject* t, bool* rg) {
  if (!PyObject_TypeCheck(t, (PyTypeObject*)env.tensor)) return nullptr;
  PyObject* data = slot(t, 0);
  PyObject* req = slot(t, 1);
  if (!data || !req) return nullptr;
  *rg = req != Py_False;
  return data;
}

// Whether the routes can read Tensors' slots (fastnn.tensor has called autograd_setup, and
// Tensor is a plain class).
bool routes_ready() { return env.tensor && env.off[0] && Py_IS_TYPE(env.tensor, &PyType_Type); }

// A plain entry's result as a new Tensor with nothing recorded (out is stolen; null, an error
// set, passes through).
PyObject* wrap_result(PyObject* out) {
  if (!out) return nullptr;
  try {
    py::object t = make_tensor(out, Py_None, 0);
    Py_DECREF(out);
    return t.release().ptr();
  } catch (...) {
    Py_DECREF(out);
    set_python_error();
    return nullptr;
  }
}

// Strong references to a route's operands (the first n of an array, taken one by one with
// hold), released when the route returns.
struct Held {
  explicit Held(PyObject** a) : a_(a) {}
  void hold(int i) {
    Py_INCREF(a_[i]);
    n_ = i + 1;
  }
  ~Held() {
    for (int i = 0; i < n_; ++i) Py_DECREF(a_[i]);
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  PyObject** a_;
  int n_ = 0;
};

// Whether a call whose Tensor operands have requires_grad `rg` (any of them) records
// nothing: 1 when none requires grad or grad mode is off, 0 when it records, -1 with a Python
// error set.
int records_nothing(bool rg) {
  if (!rg) return 1;
  PyObject* en = PyObject_GetAttr(env.grad_mode, env.enabled);
  if (!en) return -1;
  const int on = PyObject_IsTrue(en);
  Py_DECREF(en);
  return on < 0 ? -1 : on == 0;
}

// A call's arguments in slots: those given by position first, then each keyword into the slot
// whose name it is (names[i]: slot i's keyword; null for a positional-only slot). False for
// more positional arguments than slots, a keyword not in names or a slot given twice (the
// general route takes those calls, and reports what is wrong). Slots not given keep their
// values (the defaults).
template <int K>
bool bind_args(PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames,
               const char* const (&names)[K], PyObject* (&slots)[K]) {
  const Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  if (n > K) return false;
  for (Py_ssize_t i = 0; i < n; ++i) slots[i] = args[i];
  const Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t j = 0; j < nk; ++j) {
    int i = int(n);  // (keywords may only name slots after the positional ones)
    while (i < K && !(names[i] && PyUnicode_CompareWithASCIIString(
                                      PyTuple_GET_ITEM(kwnames, j), names[i]) == 0))
      ++i;
    if (i == K) return false;
    slots[i] = args[n + j];
  }
  return true;
}

// op(args) through plain(arrays, &handled) when every one of the N operands qualifies (see
// above), else through the Python route. kNumbers: a bit mask of the operands that may also
// be a Python float or int (exactly, not bool), handed to plain as they are (a scalar operand,
// or softmax's dim; plain declines what it cannot take).
constexpr unsigned kSecond = 0b10;  // (the second operand)

template <int N, unsigned kNumbers = 0, class Plain>
PyObject* fast_route(FastRoute& route, PyObject* const* args, Py_ssize_t nargsf,
                     PyObject* kwnames, Plain plain) {
  if (PyVectorcall_NARGS(nargsf) == N && !kwnames && routes_ready()) {
    // Strong references to the operands from the start: records_nothing may allocate (and so
    // run a garbage collector callback), and a large kernel runs with the GIL released; either
    // could let other code replace a Tensor's array (t._data) and free it.
    PyObject* arr[N];
    Held held(arr);
    bool ok = true, rg = false;
    for (int i = 0; i < N && ok; ++i) {
      bool r = false;
      arr[i] = tensor_array(args[i], &r);
      if (!arr[i] && ((kNumbers >> i) & 1) &&
          (PyFloat_CheckExact(args[i]) || PyLong_CheckExact(args[i])))
        arr[i] = args[i];
      ok = arr[i] != nullptr;
      if (ok) held.hold(i);
      rg |= r;
    }
    if (ok) {
      const int quiet = records_nothing(rg);
      if (quiet < 0) return nullptr;
      ok = quiet == 1;
    }
    if (ok) {
      bool handled = false;
      PyObject* out = plain(arr, &handled);
      if (handled) return wrap_result(out);
    }
  }
  return call_general(route, args, size_t(nargsf), kwnames);
}

FastRoute g_matmul_route{"fastnn._functions.dense", "_matmul_py"};

PyObject* tensor_matmul(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<2>(g_matmul_route, args, nargsf, kwnames,
                       [](PyObject** a, bool* handled) { return mm_plain(a[0], a[1], handled); });
}

// One-operand ops: activations (Act's codes: relu 1, sigmoid 2, tanh 3) and unary arithmetic
// (UnOp's codes: neg 0, abs 1, exp 2, log 3, sqrt 4), each with its Python general route.
FastRoute g_act_routes[4] = {{nullptr, nullptr},
                             {"fastnn._functions.activation", "_relu_py"},
                             {"fastnn._functions.activation", "_sigmoid_py"},
                             {"fastnn._functions.activation", "_tanh_py"}};
FastRoute g_unary_routes[5] = {{"fastnn._functions.elementwise", "_neg_py"},
                               {"fastnn._functions.elementwise", "_abs_py"},
                               {"fastnn._functions.elementwise", "_exp_py"},
                               {"fastnn._functions.elementwise", "_log_py"},
                               {"fastnn._functions.elementwise", "_sqrt_py"}};

template <int A>
PyObject* tensor_act(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<1>(g_act_routes[A], args, nargsf, kwnames,
                       [](PyObject** a, bool* handled) { return act_plain(A, a[0], handled); });
}

template <int Op>
PyObject* tensor_unary(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<1>(g_unary_routes[Op], args, nargsf, kwnames,
                       [](PyObject** a, bool* handled) { return unary_plain(Op, a[0], handled); });
}

// softmax(x, dim) and log_softmax(x, dim), dim given by position or as dim=: the general
// routes are softmax.py's _softmax_py and _log_softmax_py (called as (x, dim)).
FastRoute g_softmax_routes[2] = {{"fastnn._functions.softmax", "_softmax_py"},
                                 {"fastnn._functions.softmax", "_log_softmax_py"}};

template <bool kLog>
PyObject* tensor_softmax(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  static const char* const names[2] = {nullptr, "dim"};
  PyObject* pos[2] = {nullptr, nullptr};  // softmax(x, dim=d) as softmax(x, d)
  if (kwnames && bind_args(args, nargsf, kwnames, names, pos) && pos[0] && pos[1]) {
    args = pos;
    nargsf = 2;
    kwnames = nullptr;
  }
  return fast_route<2, kSecond>(g_softmax_routes[kLog], args, nargsf, kwnames,
                             [](PyObject** a, bool* handled) {
                               return softmax_plain(a[0], a[1], kLog, handled);
                             });
}

// sum(x, dim=None, keepdim=False) and mean(...), by position or keyword: dim None or an int,
// keepdim a bool, x a Tensor with nothing to record on a plain float32 array (sum_plain).
// Every other call (dtype=, a tuple of dims, int64 or bool tensors, ...) goes to reduce.py's
// _sum_py / _mean_py with the arguments as given.
FastRoute g_sum_routes[2] = {{"fastnn._functions.reduce", "_sum_py"},
                             {"fastnn._functions.reduce", "_mean_py"}};

// plain(array, &handled) for x a Tensor with nothing to record (the one-tensor routes whose
// other arguments are not tensors). *done: whether it was handled, and then the result (a new
// Tensor, or null with an error set); otherwise the caller takes its general route.
template <class Plain>
PyObject* route_one(PyObject* x, bool* done, Plain plain) {
  *done = false;
  bool rg = false;
  PyObject* arr = x && routes_ready() ? tensor_array(x, &rg) : nullptr;
  if (!arr) return nullptr;
  Held held(&arr);  // (held from the start, as fast_route's operands)
  held.hold(0);
  const int quiet = records_nothing(rg);
  if (quiet <= 0) {
    *done = quiet < 0;
    return nullptr;
  }
  bool handled = false;
  PyObject* out = plain(arr, &handled);
  if (!handled) return nullptr;
  *done = true;
  return wrap_result(out);
}

template <bool kMean>
PyObject* tensor_sum(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  static const char* const names[3] = {nullptr, "dim", "keepdim"};
  PyObject* a[3] = {nullptr, Py_None, Py_False};
  if (bind_args(args, nargsf, kwnames, names, a) && (a[2] == Py_True || a[2] == Py_False)) {
    bool done = false;
    PyObject* r = route_one(a[0], &done, [&](PyObject* arr, bool* handled) {
      return sum_plain(arr, a[1], a[2] == Py_True, kMean, handled);
    });
    if (done) return r;
  }
  return call_general(g_sum_routes[kMean], args, size_t(nargsf), kwnames);
}

// t[idx] with idx an int, a slice or a tuple of them (exactly), on a host tensor with nothing
// to record: its array's NumPy view t._data[idx + (...,)] (the trailing ... keeps t[i] of a
// 1-D tensor a 0-d array, not a NumPy scalar). Anything else, and an index NumPy refuses, goes
// to shape.py's getitem (self, idx), which also reports the errors.
// NOTE (speed): Zen 4, 1 thread: x[0] on 32x32 ~0.5 us as Python's shortcut, 0.18 us here.
FastRoute g_getitem_route{"fastnn._functions.shape", "getitem"};

bool basic_index(PyObject* i) { return PyLong_CheckExact(i) || PySlice_Check(i); }

PyObject* tensor_getitem(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  if (PyVectorcall_NARGS(nargsf) == 2 && !kwnames) {
    PyObject* idx = args[1];
    bool simple = basic_index(idx);
    if (!simple && PyTuple_CheckExact(idx)) {
      simple = true;
      for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(idx) && simple; ++i)
        simple = basic_index(PyTuple_GET_ITEM(idx, i));
    }
    if (simple) {
      bool done = false;
      PyObject* r = route_one(args[0], &done, [&](PyObject* arr, bool* handled) -> PyObject* {
        const auto& api = py::detail::npy_api::get();
        if (!Py_IS_TYPE(arr, reinterpret_cast<PyTypeObject*>(api.PyArray_Type_)))
          return nullptr;  // (a device array: the general route, which says getitem is host-only)
        const bool tup = PyTuple_CheckExact(idx);
        const Py_ssize_t n = tup ? PyTuple_GET_SIZE(idx) : 1;
        PyObject* key = PyTuple_New(n + 1);
        if (!key) {
          *handled = true;
          return nullptr;
        }
        for (Py_ssize_t i = 0; i < n; ++i) {
          PyObject* item = tup ? PyTuple_GET_ITEM(idx, i) : idx;
          Py_INCREF(item);
          PyTuple_SET_ITEM(key, i, item);
        }
        Py_INCREF(Py_Ellipsis);
        PyTuple_SET_ITEM(key, n, Py_Ellipsis);
        PyObject* v = PyObject_GetItem(arr, key);
        Py_DECREF(key);
        if (!v && (PyErr_ExceptionMatches(PyExc_IndexError) ||
                   PyErr_ExceptionMatches(PyExc_TypeError))) {
          // (out of range, too many indices, a slice of other objects: the general route's
          // message; any other error, such as a KeyboardInterrupt in a slice's __index__,
          // propagates)
          PyErr_Clear();
          return nullptr;
        }
        *handled = true;
        return v;
      });
      if (done) return r;
    }
  }
  return call_general(g_getitem_route, args, size_t(nargsf), kwnames);
}

// t.reshape(*shape) and t.view(*shape) with the sizes as exact ints (-1 for one inferred
// size), by position or as one tuple or list, on a host tensor with nothing to record: its
// array's NumPy reshape (a view where the layout allows, else a copy, as torch.reshape). The
// rest, and shapes NumPy refuses, go to tensor.py's _reshape_py (self, *shape), which also
// reports the errors.
// NOTE (speed): Zen 4, 1 thread: x.reshape(16, 64) on 32x32 ~0.6 us as Python's shortcut.
// view: the same, but only where NumPy's reshape is a view (the same data, not a copy); the
// rest goes to _view_py, which raises PyTorch's error for a layout a view cannot take.
FastRoute g_reshape_routes[2] = {{"fastnn.tensor", "_reshape_py"}, {"fastnn.tensor", "_view_py"}};

template <bool kView>
PyObject* tensor_reshape(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  const Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  if (!kwnames && n >= 2) {
    PyObject* const* sizes = args + 1;
    Py_ssize_t k = n - 1;
    // (A tuple subclass, such as Size, only when it iterates as a tuple: the general route
    // reads the sizes by iterating.)
    if (k == 1 && ((PyTuple_Check(sizes[0]) && Py_TYPE(sizes[0])->tp_iter == PyTuple_Type.tp_iter) ||
                   PyList_CheckExact(sizes[0]))) {
      k = PySequence_Fast_GET_SIZE(sizes[0]);
      sizes = PySequence_Fast_ITEMS(sizes[0]);
    }
    Py_intptr_t dims[kNumpyMaxDims];
    bool ok = k >= 1 && k <= kNumpyMaxDims;
    for (Py_ssize_t i = 0; i < k && ok; ++i) {
      // (Nothing here runs Python code, so a list cannot change under the loop.)
      ok = PyLong_CheckExact(sizes[i]);
      const long long v = ok ? PyLong_AsLongLong(sizes[i]) : 0;
      if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        ok = false;
      }
      ok = ok && v >= -1;  // (NumPy takes any negative size as -1; PyTorch refuses them)
      dims[i] = Py_intptr_t(v);
    }
    if (ok) {
      bool done = false;
      PyObject* r = route_one(args[0], &done, [&](PyObject* arr, bool* handled) -> PyObject* {
        const auto& api = py::detail::npy_api::get();
        if (!Py_IS_TYPE(arr, reinterpret_cast<PyTypeObject*>(api.PyArray_Type_)))
          return nullptr;  // (a device array: the general route)
        py::detail::npy_api::PyArray_Dims shape{dims, int(k)};
        PyObject* v = api.PyArray_Newshape_(arr, &shape, /*NPY_CORDER*/ 0);
        if (!v && (PyErr_ExceptionMatches(PyExc_ValueError) ||
                   PyErr_ExceptionMatches(PyExc_TypeError))) {
          PyErr_Clear();  // (sizes that do not fit: the general route's message)
          return nullptr;
        }
        if (kView && v && py::detail::array_proxy(v)->data != py::detail::array_proxy(arr)->data) {
          const auto* pv = py::detail::array_proxy(v);
          int64_t count = 1;
          for (int d = 0; d < pv->nd; ++d) count *= pv->dimensions[d];
          if (count > 0) {
            Py_DECREF(v);  // (a copy: view's general route raises)
            return nullptr;
          }
        }
        *handled = true;
        return v;
      });
      if (done) return r;
    }
  }
  return call_general(g_reshape_routes[kView], args, size_t(nargsf), kwnames);
}

// clamp(input, min=None, max=None) (Tensor.clamp and clip too), by position or keyword: number
// bounds in float32's finite range, at least one given, on a float32 host tensor with nothing
// to record (clamp_plain). The rest goes to elementwise.py's _clamp_py as given.
FastRoute g_clamp_route{"fastnn._functions.elementwise", "_clamp_py"};

PyObject* tensor_clamp(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  static const char* const names[3] = {nullptr, "min", "max"};
  PyObject* a[3] = {nullptr, Py_None, Py_None};
  if (bind_args(args, nargsf, kwnames, names, a)) {
    bool done = false;
    PyObject* r = route_one(a[0], &done, [&](PyObject* arr, bool* handled) {
      return clamp_plain(arr, a[1], a[2], handled);
    });
    if (done) return r;
  }
  return call_general(g_clamp_route, args, size_t(nargsf), kwnames);
}

// empty(*size), zeros(*size) and ones(*size) with the sizes as exact non-negative ints, by
// position or as one tuple (a Size too) or list, and no keyword: a new float32 host tensor
// (64-byte aligned, as every factory's) filled here. Every other call (no size at all,
// dtype=, device=, requires_grad=, other size types, negative sizes, 2**60 elements or more)
// goes to tensor.py's _empty_py / _zeros_py / _ones_py with the arguments as given.
// NOTE (speed): Zen 4, 1 thread: zeros(32, 32) 1.18 us through the Python shortcut, 0.30 us
// here (PyTorch 1.1 us).
FastRoute g_new_routes[3] = {{"fastnn.tensor", "_empty_py"},
                             {"fastnn.tensor", "_zeros_py"},
                             {"fastnn.tensor", "_ones_py"}};

template <int kFill>  // -1: uninitialised (empty), else the value
PyObject* tensor_new(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  PyObject* const* sizes = args;
  if (n == 1 && (PyTuple_Check(args[0]) || PyList_CheckExact(args[0]))) {
    n = PySequence_Fast_GET_SIZE(args[0]);
    sizes = PySequence_Fast_ITEMS(args[0]);
    if (n == 0) n = -1;  // zeros(()): the general route (as zeros() is)
  }
  if (!kwnames && n > 0 && n <= kNumpyMaxDims && routes_ready()) {
    Py_intptr_t dims[kNumpyMaxDims];
    int64_t count = 1;
    bool ok = true;
    for (Py_ssize_t i = 0; i < n && ok; ++i) {
      // (Nothing here runs Python code, so a list cannot change under the loop.)
      ok = PyLong_CheckExact(sizes[i]);
      const long long v = ok ? PyLong_AsLongLong(sizes[i]) : -1;
      if (v == -1 && PyErr_Occurred()) PyErr_Clear();
      ok = ok && v >= 0 && !__builtin_mul_overflow(count, int64_t(v), &count);
      dims[i] = Py_intptr_t(v);
    }
    if (ok && count < (int64_t(1) << 60)) {  // (_size_args' limit, which it reports)
      PyObject* out = new_aligned_f32_array(int(n), dims);
      if (!out) return nullptr;
      float* p = reinterpret_cast<float*>(py::detail::array_proxy(out)->data);
      if constexpr (kFill >= 0)
        out = fill_plain(out, count, [&] { std::fill_n(p, size_t(count), float(kFill)); });
      return wrap_result(out);
    }
  }
  return call_general(g_new_routes[kFill + 1], args, size_t(nargsf), kwnames);
}

// cat(tensors, dim=0) and stack(tensors, dim=0): tensors a list or tuple of Tensors on host
// arrays with nothing to record, dim left out or 0 (by position or as dim=), is cat0_arrays
// (bind_core.cpp, which raises cat's/stack's shape errors itself); anything else, or what
// cat0_arrays declines (strided pieces, other dtypes), goes to shape.py's _cat_py /
// _stack_py with the arguments as given.
// NOTE (speed): Zen 4, no_grad, best of 7: cat of two 32x32 1.91 us through _cat_py's own
// _C.cat0 call, 0.60 us here; stack of 64 x 784 floats 10.8 -> 5.1 us.
FastRoute g_cat_routes[2] = {{"fastnn._functions.shape", "_cat_py"},
                             {"fastnn._functions.shape", "_stack_py"}};

template <bool kStack>
PyObject* tensor_cat(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  FastRoute& route = g_cat_routes[kStack];
  try {
    static const char* const names[2] = {nullptr, "dim"};
    PyObject* a[2] = {nullptr, nullptr};  // (dim left out: 0)
    bool ok = bind_args(args, nargsf, kwnames, names, a) && a[0];
    PyObject* dim = a[1];
    if (ok && dim) {
      ok = PyLong_CheckExact(dim);
      if (ok) {
        const long v = PyLong_AsLong(dim);
        if (v == -1 && PyErr_Occurred()) PyErr_Clear();
        ok = v == 0;
      }
    }
    PyObject* seq = a[0];
    ok = ok && routes_ready() && (PyList_CheckExact(seq) || PyTuple_CheckExact(seq));
    const Py_ssize_t m = ok ? PySequence_Fast_GET_SIZE(seq) : 0;
    if (ok && m > 0) {
      // The items first, each held, with nothing in between that allocates a Python object:
      // an allocation can run the garbage collector, whose finalizers could change a list
      // under us (then its length and item pointers are stale).
      std::vector<py::object> held;
      held.reserve(size_t(m));
      PyObject** items = PySequence_Fast_ITEMS(seq);
      for (Py_ssize_t i = 0; i < m; ++i) held.push_back(py::reinterpret_borrow<py::object>(items[i]));
      py::tuple arrays(m);
      bool rg = false;
      for (Py_ssize_t i = 0; i < m && ok; ++i) {
        bool r = false;
        PyObject* a = tensor_array(held[size_t(i)].ptr(), &r);
        // (A device array anywhere: the general route, which says the op is host-only.)
        ok = a && py::detail::npy_api::get().PyArray_Check_(a);
        if (!ok) break;
        Py_INCREF(a);
        PyTuple_SET_ITEM(arrays.ptr(), i, a);
        rg |= r;
      }
      if (ok) {
        const int quiet = records_nothing(rg);
        if (quiet < 0) return nullptr;
        ok = quiet == 1;
      }
      if (ok) {
        py::object out = cat0_arrays(arrays, kStack);
        if (!out.is_none()) return make_tensor(out.ptr(), Py_None, 0).release().ptr();
      }
    }
  } catch (...) {
    set_python_error();
    return nullptr;
  }
  return call_general(route, args, size_t(nargsf), kwnames);
}

// Tensor arithmetic: t + o, t - o, t * o, t / o, t ** o and the reflected o + t, o - t,
// o * t, o / t, with o a Tensor or a Python number (binary_plain; BinOp's order). Their
// general routes are elementwise.py's _add_py, _radd_py, ... (self, other) as Python calls the
// operator methods.
FastRoute g_binary_routes[2][5] = {
    {{"fastnn._functions.elementwise", "_add_py"},
     {"fastnn._functions.elementwise", "_sub_py"},
     {"fastnn._functions.elementwise", "_mul_py"},
     {"fastnn._functions.elementwise", "_div_py"},
     {"fastnn._functions.elementwise", "_pow_py"}},
    {{"fastnn._functions.elementwise", "_radd_py"},
     {"fastnn._functions.elementwise", "_rsub_py"},
     {"fastnn._functions.elementwise", "_rmul_py"},
     {"fastnn._functions.elementwise", "_rdiv_py"},
     {nullptr, nullptr}}};

template <int Op, bool kReflected>
PyObject* tensor_binary(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<2, kSecond>(g_binary_routes[kReflected][Op], args, nargsf, kwnames,
                             [](PyObject** a, bool* handled) {
                               return binary_plain(Op, a[0], a[1], kReflected, handled);
                             });
}

// Comparisons t == o, t != o, t < o, t <= o, t > o, t >= o (compare_plain's order), o a Tensor
// of t's shape or a Python number: a bool tensor. Their general routes are elementwise.py's
// _eq_py, ... (self, other), which also answer NotImplemented for operands they do not take.
FastRoute g_compare_routes[6] = {{"fastnn._functions.elementwise", "_eq_py"},
                                 {"fastnn._functions.elementwise", "_ne_py"},
                                 {"fastnn._functions.elementwise", "_lt_py"},
                                 {"fastnn._functions.elementwise", "_le_py"},
                                 {"fastnn._functions.elementwise", "_gt_py"},
                                 {"fastnn._functions.elementwise", "_ge_py"}};

template <int Op>
PyObject* tensor_compare(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<2, kSecond>(g_compare_routes[Op], args, nargsf, kwnames,
                             [](PyObject** a, bool* handled) {
                               return compare_plain(Op, a[0], a[1], handled);
                             });
}

// where(condition, input, other): a bool condition, input and other float32 tensors of its
// shape or Python numbers (at least one a tensor), nothing to record (where_plain). Every other
// call (broadcasting, keywords, other dtypes) goes to shape.py's _where_py as given.
FastRoute g_where_route{"fastnn._functions.shape", "_where_py"};

PyObject* tensor_where(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  return fast_route<3, 0b110>(g_where_route, args, nargsf, kwnames,
                              [](PyObject** a, bool* handled) {
                                return where_plain(a[0], a[1], a[2], handled);
                              });
}

// Tensor.T's getter: with nothing to record, a host tensor of 2 or more dims as its array's
// NumPy transpose (every dim reversed, a view), one of fewer dims as itself; anything else
// (a recorded tensor, a device array) through tensor.py's _T_py.
// NOTE (speed): Zen 4, 1 thread: w.T 0.55 us as a Python property with the same shortcut,
// ~0.2 us here; x @ w.T is every hand-written layer's forward.
FastRoute g_T_route{"fastnn.tensor", "_T_py"};
// Tensor.t(), the same for at most 2 dims; more go to _t_py, which raises (as PyTorch).
FastRoute g_t_route{"fastnn.tensor", "_t_py"};

// T and t(): self's array transposed when it has 2..max_nd dims and nothing is recorded.
PyObject* transposed(PyObject* self, int max_nd, FastRoute& general) {
  bool rg = false;
  PyObject* arr = routes_ready() ? tensor_array(self, &rg) : nullptr;
  if (arr && py::detail::npy_api::get().PyArray_Check_(arr)) {
    const int nd = py::detail::array_proxy(arr)->nd;
    if (nd < 2) return Py_NewRef(self);
    if (nd <= max_nd) {
      Held held(&arr);  // (held from the start, as fast_route's operands)
      held.hold(0);
      const int quiet = records_nothing(rg);
      if (quiet < 0) return nullptr;
      if (quiet) {
        static PyObject* name = PyUnicode_InternFromString("T");
        if (!name) return nullptr;
        return wrap_result(PyObject_GetAttr(arr, name));
      }
    }
  }
  return call_general(general, &self, 1, nullptr);
}

PyObject* tensor_T(PyObject*, PyObject* self) { return transposed(self, INT_MAX, g_T_route); }

PyObject* tensor_t(PyObject*, PyObject* self) { return transposed(self, 2, g_t_route); }

// m.<attr> = def's METH_FASTCALL | METH_KEYWORDS function, and m.<attr>_method the same bound
// like a Python function when set as a class attribute (an instancemethod): Tensor.__matmul__ =
// _C.tensor_matmul_method makes t @ o call matmul(t, o).
void add_route(py::module_& m, const char* attr, PyMethodDef* def) {
  PyObject* f = PyCFunction_NewEx(def, nullptr, m.attr("__name__").ptr());
  if (!f) throw py::error_already_set();
  py::object fo = py::reinterpret_steal<py::object>(f);
  PyObject* meth = PyInstanceMethod_New(f);
  if (!meth) throw py::error_already_set();
  m.attr(attr) = fo;
  m.attr((std::string(attr) + "_method").c_str()) = py::reinterpret_steal<py::object>(meth);
}

}  // namespace

void note_inplace_change(PyObject* array) {
  if (g_changed.size() >= kMaxChanged) g_changed.clear();  // (see the NOTE on g_changed)
  g_changed[memory_key(array)] = ++g_epoch;
}

namespace {

// _C.note_inplace(x): note_inplace_change for an array, or each array of a list or tuple.
PyObject* note_inplace(PyObject*, PyObject* x) {
  if (PyList_Check(x) || PyTuple_Check(x)) {
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(x); ++i)
      note_inplace_change(PySequence_Fast_GET_ITEM(x, i));
  } else {
    note_inplace_change(x);
  }
  Py_RETURN_NONE;
}

}  // namespace

void bind_autograd(py::module_& m) {
  static PyMethodDef note_def = {
      "note_inplace", &note_inplace, METH_O,
      "note_inplace(array or list of arrays): records that their memory is changed in place "
      "(see Tensor._changed), for backward's check of the values recorded ops saved."};
  add_fastcall(m, &note_def);

  // run_backward and function_apply are plain METH_FASTCALL functions (no pybind11
  // dispatch, ~0.2 us a call): each runs once per recorded op or backward.
  static PyMethodDef backward_def = {
      "run_backward",
      reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&run_backward_fast)),
      METH_FASTCALL,
      "run_backward(root_node, root_index, grad, retain_graph): the backward pass from "
      "root_node's output root_index with gradient grad (fastnn.autograd.run_backward's "
      "loop); retain_graph is taken for its truth value."};
  add_fastcall(m, &backward_def);

  m.def("autograd_setup", &setup, py::arg("autograd"), py::arg("tensor_cls"),
        "Hands the C++ side of autograd (run_backward, function_apply) the fastnn.autograd "
        "module's classes and helpers and the Tensor class; called once by fastnn.tensor.");

  // autograd makes function_apply Function.apply with classmethod().
  static PyMethodDef apply_def = {
      "function_apply",
      reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&function_apply)),
      METH_FASTCALL, "Function.apply(cls, *args): runs cls.forward and records the call."};
  add_fastcall(m, &apply_def);

  static PyMethodDef T_def = {"tensor_T", &tensor_T, METH_O,
                              "Tensor.T's getter: the tensor with its dims reversed (a view)."};
  add_fastcall(m, &T_def);
  static PyMethodDef t_def = {"tensor_t", &tensor_t, METH_O,
                              "Tensor.t(): a tensor of at most 2 dims transposed (a view)."};
  add_route(m, "tensor_t", &t_def);

  static PyMethodDef matmul_def = {
      "matmul",
      reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&tensor_matmul)),
      METH_FASTCALL | METH_KEYWORDS,
      "matmul(a, b)\n--\n\nMatrix product with NumPy/PyTorch semantics (1-D, 2-D, batched with "
      "broadcasting), recorded for autograd when an operand requires grad."};
  add_route(m, "tensor_matmul", &matmul_def);
  // _C.tensor_<NAME> (and tensor_<NAME>_method) for the route function given last (a
  // template-id, hence variadic).
#define FASTNN_ROUTE(NAME, DOC, ...)                                                        \
  {                                                                                         \
    static PyMethodDef def = {                                                              \
        NAME, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&__VA_ARGS__)),   \
        METH_FASTCALL | METH_KEYWORDS, DOC};                                                \
    add_route(m, "tensor_" NAME, &def);                                                     \
  }
#define FASTNN_X_DOC(NAME, WHAT) NAME "(x)\n--\n\n" WHAT ", recorded for autograd when x requires grad."
  FASTNN_ROUTE("relu", FASTNN_X_DOC("relu", "max(x, 0) elementwise"), tensor_act<1>)
  FASTNN_ROUTE("sigmoid", FASTNN_X_DOC("sigmoid", "1 / (1 + exp(-x)) elementwise"), tensor_act<2>)
  FASTNN_ROUTE("tanh", FASTNN_X_DOC("tanh", "tanh(x) elementwise"), tensor_act<3>)
  FASTNN_ROUTE("neg", FASTNN_X_DOC("neg", "-x elementwise"), tensor_unary<0>)
  FASTNN_ROUTE("abs", FASTNN_X_DOC("abs", "|x| elementwise"), tensor_unary<1>)
  FASTNN_ROUTE("exp", FASTNN_X_DOC("exp", "e^x elementwise (int64 input gives float32)"),
               tensor_unary<2>)
  FASTNN_ROUTE("log", FASTNN_X_DOC("log", "Natural log elementwise (int64 input gives float32)"),
               tensor_unary<3>)
  FASTNN_ROUTE("sqrt", FASTNN_X_DOC("sqrt", "Square root elementwise (int64 input gives float32)"),
               tensor_unary<4>)
#undef FASTNN_X_DOC
  FASTNN_ROUTE("softmax",
               "softmax(x, dim)\n--\n\nexp(x) / sum(exp(x)) along dim, recorded for autograd "
               "when x requires grad.",
               tensor_softmax<false>)
  FASTNN_ROUTE("log_softmax",
               "log_softmax(x, dim)\n--\n\nlog(softmax(x, dim)), recorded for autograd when x "
               "requires grad.",
               tensor_softmax<true>)
  FASTNN_ROUTE("sum",
               "sum(input, dim=None, keepdim=False, dtype=None)\n--\n\nSum of all elements, or "
               "along dim (an int or a tuple of ints), recorded for autograd when input requires "
               "grad.",
               tensor_sum<false>)
  FASTNN_ROUTE("mean",
               "mean(input, dim=None, keepdim=False, dtype=None)\n--\n\nMean of all elements, or along "
               "dim (an int or a tuple of ints), recorded for autograd when input requires grad.",
               tensor_sum<true>)
  FASTNN_ROUTE("getitem",
               "getitem(self, idx)\n--\n\nself[idx]: a view for ints and slices, recorded for "
               "autograd when self requires grad.",
               tensor_getitem)
  FASTNN_ROUTE("reshape",
               "reshape(self, *shape)\n--\n\nself with the given shape (-1: inferred): a view "
               "where the layout allows, else a copy; recorded for autograd when self requires "
               "grad.",
               tensor_reshape<false>)
  FASTNN_ROUTE("view",
               "view(self, *shape)\n--\n\nself with the given shape (-1: inferred), sharing "
               "its data (RuntimeError where the layout needs a copy: use reshape); recorded for "
               "autograd when self requires grad.",
               tensor_reshape<true>)
  FASTNN_ROUTE("clamp",
               "clamp(input, min=None, max=None)\n--\n\ninput limited to [min, max] "
               "elementwise (a bound may be None or a tensor), recorded for autograd when input "
               "requires grad.",
               tensor_clamp)
  FASTNN_ROUTE("empty",
               "empty(*size, dtype=None, device=None, requires_grad=False)\n--\n\nA new "
               "tensor of the given size, uninitialised (float32 unless dtype is given).",
               tensor_new<-1>)
  FASTNN_ROUTE("zeros",
               "zeros(*size, dtype=None, device=None, requires_grad=False)\n--\n\nA new "
               "tensor of the given size filled with 0 (float32 unless dtype is given).",
               tensor_new<0>)
  FASTNN_ROUTE("ones",
               "ones(*size, dtype=None, device=None, requires_grad=False)\n--\n\nA new "
               "tensor of the given size filled with 1 (float32 unless dtype is given).",
               tensor_new<1>)
  FASTNN_ROUTE("where",
               "where(condition, input, other)\n--\n\ninput where condition is true, else "
               "other (broadcasting), recorded for autograd when input or other requires grad.",
               tensor_where)
  FASTNN_ROUTE("cat",
               "cat(tensors, dim=0)\n--\n\nThe tensors joined along dim, recorded for autograd "
               "when one requires grad.",
               tensor_cat<false>)
  FASTNN_ROUTE("stack",
               "stack(tensors, dim=0)\n--\n\nThe tensors stacked on a new dim, recorded for "
               "autograd when one requires grad.",
               tensor_cat<true>)
  // Tensor.__add__ = _C.tensor_add_method, ..., __rtruediv__ = _C.tensor_rdiv_method.
#define FASTNN_OP_DOC(NAME, WHAT) NAME "(self, other)\n--\n\n" WHAT ", broadcasting."
  FASTNN_ROUTE("add", FASTNN_OP_DOC("add", "self + other"), tensor_binary<0, false>)
  FASTNN_ROUTE("sub", FASTNN_OP_DOC("sub", "self - other"), tensor_binary<1, false>)
  FASTNN_ROUTE("mul", FASTNN_OP_DOC("mul", "self * other"), tensor_binary<2, false>)
  FASTNN_ROUTE("div", FASTNN_OP_DOC("div", "self / other"), tensor_binary<3, false>)
  FASTNN_ROUTE("pow", FASTNN_OP_DOC("pow", "self ** other"), tensor_binary<4, false>)
  FASTNN_ROUTE("radd", FASTNN_OP_DOC("radd", "other + self"), tensor_binary<0, true>)
  FASTNN_ROUTE("rsub", FASTNN_OP_DOC("rsub", "other - self"), tensor_binary<1, true>)
  FASTNN_ROUTE("rmul", FASTNN_OP_DOC("rmul", "other * self"), tensor_binary<2, true>)
  FASTNN_ROUTE("rdiv", FASTNN_OP_DOC("rdiv", "other / self"), tensor_binary<3, true>)
  FASTNN_ROUTE("eq", FASTNN_OP_DOC("eq", "self == other, a bool tensor"), tensor_compare<0>)
  FASTNN_ROUTE("ne", FASTNN_OP_DOC("ne", "self != other, a bool tensor"), tensor_compare<1>)
  FASTNN_ROUTE("lt", FASTNN_OP_DOC("lt", "self < other, a bool tensor"), tensor_compare<2>)
  FASTNN_ROUTE("le", FASTNN_OP_DOC("le", "self <= other, a bool tensor"), tensor_compare<3>)
  FASTNN_ROUTE("gt", FASTNN_OP_DOC("gt", "self > other, a bool tensor"), tensor_compare<4>)
  FASTNN_ROUTE("ge", FASTNN_OP_DOC("ge", "self >= other, a bool tensor"), tensor_compare<5>)
#undef FASTNN_OP_DOC
#undef FASTNN_ROUTE
}

}  // namespace fastnn
