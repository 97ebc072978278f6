// _C.run_backward: the loop of autograd's backward pass (python/fastnn/autograd.py,
// run_backward), in C++ for per-call overhead. A small network's whole backward is a few
// microseconds of this bookkeeping around the kernels; in Python it cost ~6 us per step of
// the StatQuest 1-2-1 net.
//
// The graph stays Python objects (Node, Tensor) and every Function's backward is Python; this
// only walks them. The rare paths (error messages, zero gradients for unused outputs of a
// multi-output node, summing two gradients of one non-leaf, device arrays) call the Python
// helpers in fastnn.autograd, so they are written once.
#include <Python.h>

#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "bindings/convert.h"

namespace fastnn {

namespace {

// Interned attribute names and the fastnn.autograd helpers, looked up once. Never freed:
// they live as long as the interpreter (the module cannot be unloaded).
struct Names {
  PyObject *node, *inputs, *versions, *freed, *fn, *backward, *n_outputs, *index, *data,
      *shape, *version, *retains_grad, *accumulate_grad, *saved_tensors, *dict, *dtype,
      *name;
  PyObject *check_node, *fill_outputs, *accumulate, *device_sole_owner, *f32;
  bool adopt_ok;
};

Names* names() {
  static Names* n = [] {
    auto* p = new Names;
    auto s = [](const char* v) { return PyUnicode_InternFromString(v); };
    p->node = s("_node");
    p->inputs = s("inputs");
    p->versions = s("versions");
    p->freed = s("freed");
    p->fn = s("fn");
    p->backward = s("backward");
    p->n_outputs = s("n_outputs");
    p->index = s("_index");
    p->data = s("_data");
    p->shape = s("shape");
    p->version = s("_version");
    p->retains_grad = s("_retains_grad");
    p->accumulate_grad = s("_accumulate_grad");
    p->saved_tensors = s("saved_tensors");
    p->dict = s("__dict__");
    p->dtype = s("dtype");
    p->name = s("name");
    py::module_ ag = py::module_::import("fastnn.autograd");
    p->check_node = py::object(ag.attr("_check_node")).release().ptr();
    p->fill_outputs = py::object(ag.attr("_fill_outputs")).release().ptr();
    p->accumulate = py::object(ag.attr("_accumulate")).release().ptr();
    p->device_sole_owner = py::object(ag.attr("_device_sole_owner")).release().ptr();
    p->f32 = py::object(ag.attr("_F32")).release().ptr();
    p->adopt_ok = ag.attr("_ADOPT").cast<bool>();
    return p;
  }();
  return n;
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
bool may_adopt(const Names& nm, PyObject* g) {
  if (!nm.adopt_ok || Py_REFCNT(g) != 1) return false;
  if (Py_TYPE(g) == py::detail::npy_api::get().PyArray_Type_) {
    py::object dt = get(g, nm.dtype);
    return dt.ptr() == nm.f32 && sole_owner(g);
  }
  return truthy(call(nm.device_sole_owner, {g}));
}

// The engine. root_node's output root_index gets grad; nodes run once every consumer of
// their outputs has run (dependency counts, as PyTorch's engine).
void run_backward(py::handle root_node, int64_t root_index, py::handle grad, bool retain) {
  const Names& nm = *names();
  // Strong references to every node met, so pointer keys stay valid whatever the
  // backwards do to the graph.
  std::vector<py::object> keep;
  std::unordered_map<PyObject*, int> deps;
  {
    std::vector<PyObject*> stack{root_node.ptr()};
    while (!stack.empty()) {
      py::object inputs = get(stack.back(), nm.inputs);
      stack.pop_back();
      PyObject* seq = PySequence_Fast(inputs.ptr(), "node inputs must be a list");
      if (!seq) throw py::error_already_set();
      py::object hold = py::reinterpret_steal<py::object>(seq);
      const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* t = PySequence_Fast_GET_ITEM(seq, i);
        if (t == Py_None) continue;
        py::object nd = get(t, nm.node);
        if (nd.is_none()) continue;
        auto it = deps.find(nd.ptr());
        if (it != deps.end()) {
          ++it->second;
        } else {
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
    const int64_t n_out = as_int(get(root_node, nm.n_outputs));
    py::list slots(n_out);
    for (int64_t k = 0; k < n_out; ++k) slots[k] = py::none();
    slots[root_index] = grad;
    pending.emplace(root_node.ptr(), std::move(slots));
  }
  std::vector<py::object> ready{py::reinterpret_borrow<py::object>(root_node)};
  while (!ready.empty()) {
    py::object node = std::move(ready.back());
    ready.pop_back();
    py::object gouts;
    if (auto it = pending.find(node.ptr()); it != pending.end()) {
      gouts = std::move(it->second);
      pending.erase(it);
    }
    py::object inputs = get(node, nm.inputs);
    PyObject* in_seq = PySequence_Fast(inputs.ptr(), "node inputs must be a list");
    if (!in_seq) throw py::error_already_set();
    py::object in_hold = py::reinterpret_steal<py::object>(in_seq);
    const Py_ssize_t n_in = PySequence_Fast_GET_SIZE(in_seq);
    py::tuple gins;
    if (gouts) {
      // Freed (a second backward without retain_graph) or an input modified in place since
      // forward: autograd._check_node raises with the message.
      bool stale = truthy(get(node, nm.freed));
      if (!stale) {
        py::object versions = get(node, nm.versions);
        for (py::handle pair : versions) {
          py::handle t = PyTuple_GET_ITEM(pair.ptr(), 0), v = PyTuple_GET_ITEM(pair.ptr(), 1);
          py::object cur = get(t, nm.version);
          const int eq = PyObject_RichCompareBool(cur.ptr(), v.ptr(), Py_EQ);
          if (eq < 0) throw py::error_already_set();
          if (!eq) { stale = true; break; }
        }
      }
      if (stale) call(nm.check_node, {node.ptr()});
      py::list gl = py::reinterpret_borrow<py::list>(gouts);
      if (gl.size() > 1) call(nm.fill_outputs, {node.ptr(), gl.ptr()});  // zeros for None
      // node.fn.backward(node, *gouts)
      py::object bw = get(get(node, nm.fn), nm.backward);
      std::vector<PyObject*> args{node.ptr()};
      for (py::handle g : gl) args.push_back(g.ptr());
      PyObject* r = PyObject_Vectorcall(bw.ptr(), args.data(), args.size(), nullptr);
      if (!r) throw py::error_already_set();
      py::object ret = py::reinterpret_steal<py::object>(r);
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
      py::object n = get(t, nm.node);
      if (g != Py_None) {
        py::object gshape = get(g, nm.shape), tshape = get(get(t, nm.data), nm.shape);
        const int same = PyObject_RichCompareBool(gshape.ptr(), tshape.ptr(), Py_EQ);
        if (same < 0) throw py::error_already_set();
        if (!same) {
          py::object name = get(node, nm.name);
          throw std::runtime_error(str("[backward] ", py::str(name).cast<std::string>(),
                                       " returned a gradient of shape ",
                                       py::str(gshape).cast<std::string>(),
                                       " for an input of shape ",
                                       py::str(tshape).cast<std::string>()));
        }
        if (n.is_none()) {
          const bool adopt = may_adopt(nm, g);
          PyObject* args[] = {t, g, adopt ? Py_True : Py_False};
          PyObject* r = PyObject_VectorcallMethod(nm.accumulate_grad, args,
                                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
          if (!r) throw py::error_already_set();
          Py_DECREF(r);
        } else {
          if (truthy(get(t, nm.retains_grad))) {
            PyObject* args[] = {t, g};
            PyObject* r = PyObject_VectorcallMethod(nm.accumulate_grad, args,
                                                    2 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
            if (!r) throw py::error_already_set();
            Py_DECREF(r);
          }
          auto it = pending.find(n.ptr());
          if (it == pending.end()) {
            const int64_t n_out = as_int(get(n, nm.n_outputs));
            py::list slots(n_out);
            for (int64_t k = 0; k < n_out; ++k) slots[k] = py::none();
            it = pending.emplace(n.ptr(), std::move(slots)).first;
          }
          const int64_t idx = as_int(get(t, nm.index));
          py::handle prev = PyList_GET_ITEM(it->second.ptr(), idx);
          if (prev.is_none())
            it->second[idx] = py::handle(g);
          else
            it->second[idx] = call(nm.accumulate, {prev.ptr(), g});
        }
      }
      if (!n.is_none()) {
        auto it = deps.find(n.ptr());
        if (it != deps.end() && --it->second == 0) ready.push_back(std::move(n));
      }
    }
    if (!retain && gouts) {
      // Free what the node saved: the saved tensors and whatever forward stored on ctx.
      set(node, nm.saved_tensors, py::tuple());
      PyDict_Clear(get(node, nm.dict).ptr());
      set(node, nm.freed, py::handle(Py_True));
    }
  }
}

}  // namespace

void bind_autograd(py::module_& m) {
  m.def("run_backward", [](py::handle root_node, int64_t root_index, py::handle grad,
                           bool retain_graph) {
    run_backward(root_node, root_index, grad, retain_graph);
  }, py::arg("root_node"), py::arg("root_index"), py::arg("grad"), py::arg("retain_graph"),
     "The backward pass from root_node's output root_index with gradient grad "
     "(fastnn.autograd.run_backward's loop).");
}

}  // namespace fastnn
