// CudaArray's Python class: creation, host transfers, views, casts and DLPack.
#include "cuda/array.h"

#include <pybind11/stl.h>

#include <cstring>
#include <mutex>

#include "cuda/kernels.h"
#include "ops/common.h"

namespace fastnn {
namespace cuda {

const char* cdtype_name(CDType d) {
  return d == CDType::f32 ? "float32" : (d == CDType::i64 ? "int64" : "bool");
}
size_t cdtype_size(CDType d) { return d == CDType::f32 ? 4 : (d == CDType::i64 ? 8 : 1); }
CDType parse_cdtype(const std::string& s, const char* op) {
  if (s == "float32") return CDType::f32;
  if (s == "int64") return CDType::i64;
  if (s == "bool") return CDType::b8;
  fail<TypeError>(op, "dtype must be float32, int64 or bool, got ", s);
}

Buffer::~Buffer() {
  if (release) {
    py::gil_scoped_acquire gil;
    release();
  } else if (ptr) {
    device_free(ptr, device);
  }
}

void require_device(const char* op, int device) {
  const DeviceStatus& st = device_status();
  if (st.count == 0) throw std::runtime_error(str("[", op, "] CUDA unavailable: ", st.reason));
  if (device != -1 && (device < 0 || device >= st.count))
    fail(op, "device must be in [0, ", st.count, "), got ", device);
}

CudaArray new_array(const Shape& shape, CDType dt, int device, const char* op) {
  require_device(op, device);
  // NOTE: the byte count is checked for int64 overflow: a wrapped product would allocate a
  // small block for an array whose numel() claims far more, and the next kernel on it would
  // write out of bounds (an illegal address that kills the CUDA context).
  int64_t n = 1;
  for (auto s : shape)
    if (s < 0) fail(op, "shape must have non-negative sizes, got ", shape_str(shape));
  bool overflow = false;
  for (auto s : shape) overflow |= __builtin_mul_overflow(n, s, &n);
  int64_t bytes = 0;
  overflow |= __builtin_mul_overflow(n, (int64_t)cdtype_size(dt), &bytes);
  if (overflow)
    fail(op, "shape ", shape_str(shape), " is too large: its size in bytes overflows int64");
  CudaArray a;
  a.buf = std::make_shared<Buffer>();
  a.buf->nbytes = (size_t)bytes;
  a.buf->device = device;
  a.buf->ptr = device_alloc(a.buf->nbytes, device);
  a.data = a.buf->ptr;
  a.dtype = dt;
  a.shape = shape;
  a.device = device;
  return a;
}

namespace {

std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

}  // namespace

CudaArray& cuda_arg(py::handle obj, const char* op, const char* name, int& device) {
  if (!py::isinstance<CudaArray>(obj)) {
    require_device(op);
    fail<TypeError>(op, name, " must be a CUDA array on device ",
                    device < 0 ? current_device() : device, ", got ", type_name(obj));
  }
  CudaArray& a = obj.cast<CudaArray&>();
  if (device < 0) {
    require_device(op, a.device);
    device = a.device;
    set_device(device, op);
  } else if (a.device != device) {
    fail<TypeError>(op, name, " must be a CUDA array on device ", device,
                    ", got one on device ", a.device);
  }
  return a;
}

Tensor arg_view(py::handle obj, const char* op, const char* name, int& device, const DType* dt) {
  CudaArray& a = cuda_arg(obj, op, name, device);
  if (a.dtype == CDType::b8)
    fail<TypeError>(op, name, " must be ", dt ? dtype_name(*dt) : "float32 or int64",
                    ", got bool");
  const DType got = a.dtype == CDType::f32 ? DType::f32 : DType::i64;
  if (dt && got != *dt)
    fail<TypeError>(op, name, " must be ", dtype_name(*dt), ", got ", dtype_name(got));
  // Non-owning: the CudaArray (alive in the caller's arguments) holds the memory.
  auto st = std::make_shared<Storage>();
  st->ptr = a.data;
  st->nbytes = a.nbytes();
  return Tensor(std::move(st), a.data, got, a.shape, contiguous_strides(a.shape));
}

Tensor opt_view(py::handle obj, const char* op, const char* name, int& device, const DType* dt) {
  if (obj.is_none()) return Tensor();
  return arg_view(obj, op, name, device, dt);
}

Out new_out(const Shape& shape, DType dt, int device, const char* op) {
  Out o;
  o.arr = new_array(shape, dt == DType::f32 ? CDType::f32 : CDType::i64, device, op);
  auto st = std::make_shared<Storage>();
  st->ptr = o.arr.data;
  st->nbytes = o.arr.nbytes();
  o.t = Tensor(std::move(st), o.arr.data, dt, shape, contiguous_strides(shape));
  return o;
}

namespace {

// ---- DLPack (the v0.8 ABI every consumer accepts: a "dltensor" capsule)
struct DLDevice { int32_t device_type; int32_t device_id; };
struct DLDataType { uint8_t code; uint8_t bits; uint16_t lanes; };
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
constexpr int32_t kDLCUDA = 2;
constexpr uint8_t kDLInt = 0, kDLFloat = 2, kDLBool = 6;

struct ExportCtx {
  CudaArray arr;  // keeps the buffer alive while the consumer uses it
  std::vector<int64_t> shape, strides;
  DLManagedTensor managed;
};

void export_deleter(DLManagedTensor* m) {
  // NOTE: may run without the GIL (a consumer freeing its tensor): Buffer's destructor
  // takes the GIL itself only for imported memory; ours just returns to the allocator.
  delete static_cast<ExportCtx*>(m->manager_ctx);
}

py::capsule to_dlpack(const CudaArray& src, py::object stream, py::object max_version,
                      py::object dl_device, py::object copy) {
  const char* op = "__dlpack__";
  if (!dl_device.is_none()) {
    auto d = dl_device.cast<std::pair<int, int>>();
    if (d.first != kDLCUDA || d.second != src.device)
      throw py::buffer_error(str("[", op, "] dl_device must be (2, ", src.device, "), got (",
                                 d.first, ", ", d.second, ")"));
  }
  CudaArray a = src;
  if (!copy.is_none() && copy.cast<bool>()) {
    a = new_array(src.shape, src.dtype, src.device, op);
    set_device(src.device, op);  // on src's device's stream, as clone()
    memcpy_d2d(a.data, src.data, src.nbytes(), op);
  }
  // The consumer's stream must see our (legacy default stream) work: make it wait on an
  // event recorded now. None or 1 (the legacy default stream itself) needs nothing; -1 means
  // the consumer asks for no synchronisation.
  if (!stream.is_none()) {
    const int64_t s = stream.cast<int64_t>();
    if (s != 1 && s != -1) stream_wait_default((uintptr_t)s, a.device, "__dlpack__");
  }
  auto* ctx = new ExportCtx();
  ctx->arr = a;
  ctx->shape = a.shape;
  ctx->strides = contiguous_strides(a.shape);
  DLTensor& t = ctx->managed.dl_tensor;
  t.data = a.data;
  t.device = {kDLCUDA, a.device};
  t.ndim = (int32_t)a.shape.size();
  t.dtype = a.dtype == CDType::f32 ? DLDataType{kDLFloat, 32, 1}
            : a.dtype == CDType::i64 ? DLDataType{kDLInt, 64, 1}
                                     : DLDataType{kDLBool, 8, 1};
  t.shape = ctx->shape.data();
  t.strides = ctx->strides.data();
  t.byte_offset = 0;
  ctx->managed.manager_ctx = ctx;
  ctx->managed.deleter = export_deleter;
  return py::capsule(&ctx->managed, "dltensor", [](PyObject* cap) {
    // Consumed capsules are renamed "used_dltensor" and owned by the consumer.
    // NOTE: a capsule may be destroyed while an exception is being raised (a frame torn
    // down mid-raise): the pending error must survive this destructor, so it is saved and
    // restored around it (never cleared: PyCapsule_IsValid sets no error of its own).
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (PyCapsule_IsValid(cap, "dltensor")) {
      auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
      if (m && m->deleter) m->deleter(m);
    }
    PyErr_Restore(type, value, tb);
  });
}

CudaArray from_dlpack(py::object obj) {
  const char* op = "from_dlpack";
  require_device(op);
  if (!py::hasattr(obj, "__dlpack__"))
    fail<TypeError>(op, "obj must support __dlpack__, got ", type_name(obj));
  if (py::hasattr(obj, "__dlpack_device__")) {
    auto dev = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
    if (dev.first != kDLCUDA)
      fail<TypeError>(op, "obj must be on a CUDA device (DLPack device type 2), got device type ",
                      dev.first);
  }
  py::object cap = obj.attr("__dlpack__")(py::arg("stream") = 1);
  PyObject* c = cap.ptr();
  if (!PyCapsule_IsValid(c, "dltensor"))
    fail<TypeError>(op, "__dlpack__ must return an unconsumed 'dltensor' capsule");
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
  const DLTensor& t = m->dl_tensor;
  CDType dt;
  if (t.dtype.lanes == 1 && t.dtype.code == kDLFloat && t.dtype.bits == 32) dt = CDType::f32;
  else if (t.dtype.lanes == 1 && t.dtype.code == kDLInt && t.dtype.bits == 64) dt = CDType::i64;
  else if (t.dtype.lanes == 1 && t.dtype.code == kDLBool && t.dtype.bits == 8) dt = CDType::b8;
  else
    fail<TypeError>(op, "dtype must be float32, int64 or bool, got DLPack (code ",
                    (int)t.dtype.code, ", bits ", (int)t.dtype.bits, ", lanes ", t.dtype.lanes, ")");
  if (t.device.device_type != kDLCUDA)
    fail<TypeError>(op, "obj must be on a CUDA device, got DLPack device type ", t.device.device_type);
  Shape shape(t.shape, t.shape + t.ndim);
  if (t.strides) {
    const Shape want = contiguous_strides(shape);
    for (int d = 0; d < t.ndim; ++d)
      if (shape[d] > 1 && t.strides[d] != want[d])
        fail(op, "obj must be C-contiguous (zero-copy import), got strides ",
             shape_str(Shape(t.strides, t.strides + t.ndim)), " for shape ", shape_str(shape));
  }
  // Consumed from here on: the capsule no longer frees it, our Buffer does.
  PyCapsule_SetName(c, "used_dltensor");
  CudaArray a;
  a.buf = std::make_shared<Buffer>();
  a.buf->ptr = static_cast<char*>(t.data) + t.byte_offset;
  a.buf->device = t.device.device_id;
  a.buf->release = [m, keep = obj]() mutable {
    if (m->deleter) m->deleter(m);
    keep = py::object();
  };
  a.data = a.buf->ptr;
  a.dtype = dt;
  a.shape = shape;
  a.device = t.device.device_id;
  a.buf->nbytes = a.nbytes();
  return a;
}

Shape parse_shape(py::handle obj) {
  if (py::isinstance<py::int_>(obj)) return Shape{obj.cast<int64_t>()};
  return Shape(obj.cast<std::vector<int64_t>>());
}

py::dtype np_dtype(CDType d) { return py::dtype(std::string(cdtype_name(d))); }

CudaArray make_filled(py::handle shape, double value, const std::string& dtype, int device,
                      const char* op) {
  CudaArray a = new_array(parse_shape(shape), parse_cdtype(dtype, op), device, op);
  set_device(device, op);
  fill((int)a.dtype, a.data, a.numel(), value);
  return a;
}

void copy_from_host(CudaArray& dst, py::handle src, const char* op) {
  auto np = py::module_::import("numpy");
  // (asarray with order="C", not ascontiguousarray, which makes a 0-d array 1-d)
  py::array host = np.attr("asarray")(src, py::arg("dtype") = np_dtype(dst.dtype), py::arg("order") = "C");
  Shape shape(host.shape(), host.shape() + host.ndim());
  if (shape != dst.shape)
    fail(op, "src must have shape ", shape_str(dst.shape), ", got ", shape_str(shape));
  set_device(dst.device, op);
  memcpy_h2d(dst.data, host.data(), dst.nbytes(), op);
}

}  // namespace

void bind_array(py::module_& m) {
  py::class_<CudaArray>(m, "CudaArray",
                        "A C-contiguous float32/int64/bool buffer on a CUDA device.")
      .def_property_readonly("shape", [](const CudaArray& a) {
        py::tuple t(a.shape.size());
        for (size_t i = 0; i < a.shape.size(); ++i) t[i] = py::int_(a.shape[i]);
        return t;
      })
      .def_property_readonly("dtype", [](const CudaArray& a) { return np_dtype(a.dtype); })
      .def_property_readonly("ndim", [](const CudaArray& a) { return (int64_t)a.shape.size(); })
      .def_property_readonly("size", &CudaArray::numel)
      .def_property_readonly("itemsize", [](const CudaArray& a) { return a.itemsize(); })
      .def_property_readonly("nbytes", [](const CudaArray& a) { return a.nbytes(); })
      .def_property_readonly("strides", [](const CudaArray& a) {
        const Shape st = contiguous_strides(a.shape);
        py::tuple t(st.size());
        for (size_t i = 0; i < st.size(); ++i) t[i] = py::int_(st[i] * (int64_t)a.itemsize());
        return t;
      })
      .def_property_readonly("device_index", [](const CudaArray& a) { return a.device; })
      .def_property_readonly("data_ptr", [](const CudaArray& a) { return (uintptr_t)a.data; })
      .def_static("empty", [](py::handle shape, const std::string& dtype, int device) {
        return new_array(parse_shape(shape), parse_cdtype(dtype, "empty"), device, "empty");
      }, py::arg("shape"), py::arg("dtype_name") = "float32", py::arg("device") = 0)
      .def_static("zeros", [](py::handle shape, const std::string& dtype, int device) {
        return make_filled(shape, 0.0, dtype, device, "zeros");
      }, py::arg("shape"), py::arg("dtype_name") = "float32", py::arg("device") = 0)
      .def_static("full", [](py::handle shape, double value, const std::string& dtype, int device) {
        return make_filled(shape, value, dtype, device, "full");
      }, py::arg("shape"), py::arg("value"), py::arg("dtype_name") = "float32", py::arg("device") = 0)
      .def_static("from_numpy", [](py::handle arr, int device) {
        const char* op = "from_numpy";
        require_device(op, device);
        if (!py::isinstance<py::array>(arr))
          fail<TypeError>(op, "array must be a numpy.ndarray, got ", type_name(arr));
        const std::string dn = py::str(py::reinterpret_borrow<py::array>(arr).dtype()).cast<std::string>();
        if (dn != "float32" && dn != "int64" && dn != "bool")
          fail<TypeError>(op, "array dtype must be float32, int64 or bool, got ", dn);
        auto a = py::reinterpret_borrow<py::array>(arr);
        CudaArray d = new_array(Shape(a.shape(), a.shape() + a.ndim()), parse_cdtype(dn, op),
                                device, op);
        copy_from_host(d, arr, op);
        return d;
      }, py::arg("ndarray"), py::arg("device") = 0)
      .def_static("from_dlpack", &from_dlpack, py::arg("obj"))
      .def("numpy", [](const CudaArray& a) {
        py::array out(np_dtype(a.dtype), a.shape);
        set_device(a.device, "numpy");
        memcpy_d2h(out.mutable_data(), a.data, a.nbytes(), "numpy");
        return out;
      })
      .def("copy_", [](CudaArray& a, py::handle src) -> CudaArray& {
        const char* op = "copy_";
        if (py::isinstance<CudaArray>(src)) {
          const CudaArray& s = src.cast<const CudaArray&>();
          if (s.dtype != a.dtype || s.shape != a.shape)
            fail(op, "src must be ", cdtype_name(a.dtype), " with shape ", shape_str(a.shape),
                 ", got ", cdtype_name(s.dtype), " with shape ", shape_str(s.shape));
          // NOTE: each device has its own legacy default stream, and they do not order
          // each other: a copy across devices first waits for the source device's queued
          // work (which may still be producing src) and is waited for before returning
          // (later work on the source device may overwrite src).
          const bool cross = s.device != a.device;
          if (cross) {
            set_device(s.device, op);
            synchronize(op);
          }
          set_device(a.device, op);
          memcpy_d2d(a.data, s.data, a.nbytes(), op);  // cudaMemcpyDefault: across devices too
          if (cross) synchronize(op);
        } else {
          copy_from_host(a, src, op);
        }
        return a;
      }, py::arg("src"), py::return_value_policy::reference_internal)
      .def("_sole_owner", [](const CudaArray& a) {
        // True when this array owns its block alone: no other CudaArray (a reshape) shares
        // it and it is not memory imported through DLPack. With a Python reference count
        // that shows no other holder, autograd may keep it as a leaf's gradient uncopied.
        return a.buf && a.buf.use_count() == 1 && !a.buf->release;
      })
      .def_property_readonly("_memory_key", [](const CudaArray& a) {
        // The identity of the block: every CudaArray sharing it (a reshape, a view) gives the
        // same number, so autograd's check for values changed in place sees through them.
        return reinterpret_cast<uintptr_t>(a.buf ? static_cast<const void*>(a.buf.get())
                                                 : a.data);
      })
      .def("clone", [](const CudaArray& a) {
        CudaArray c = new_array(a.shape, a.dtype, a.device, "clone");
        // The copy must go on a's device's stream, after the work that produced a.
        set_device(a.device, "clone");
        memcpy_d2d(c.data, a.data, a.nbytes(), "clone");
        return c;
      })
      .def("reshape", [](const CudaArray& a, py::handle shape_obj) {
        const char* op = "reshape";
        Shape shape = parse_shape(shape_obj);
        int64_t known = 1, infer = -1;
        for (size_t i = 0; i < shape.size(); ++i) {
          if (shape[i] == -1) {
            if (infer >= 0) fail(op, "only one dimension can be -1, got ", shape_str(shape));
            infer = (int64_t)i;
          } else if (shape[i] < 0) {
            fail(op, "shape must have non-negative sizes or -1, got ", shape_str(shape));
          } else {
            known *= shape[i];
          }
        }
        if (infer >= 0) {
          if (known == 0 || a.numel() % known != 0)
            fail(op, "shape ", shape_str(shape), " is invalid for input of size ", a.numel());
          shape[infer] = a.numel() / known;
        }
        int64_t n = 1;
        for (auto s : shape) n *= s;
        if (n != a.numel())
          fail(op, "shape ", shape_str(shape), " is invalid for input of size ", a.numel());
        CudaArray v = a;  // shares the buffer
        v.shape = shape;
        return v;
      }, py::arg("shape_tuple"))
      .def("astype", [](const CudaArray& a, const std::string& dtype) {
        const char* op = "astype";
        CudaArray c = new_array(a.shape, parse_cdtype(dtype, op), a.device, op);
        set_device(a.device, op);
        if (c.dtype == a.dtype) memcpy_d2d(c.data, a.data, a.nbytes(), op);
        else cast((int)a.dtype, a.data, (int)c.dtype, c.data, a.numel());
        return c;
      }, py::arg("dtype_name"))
      .def("fill_", [](CudaArray& a, double value) -> CudaArray& {
        set_device(a.device, "fill_");
        fill((int)a.dtype, a.data, a.numel(), value);
        return a;
      }, py::arg("value"), py::return_value_policy::reference_internal)
      .def("item", [](const CudaArray& a) -> py::object {
        const char* op = "item";
        if (a.numel() != 1)
          fail(op, "only an array with one element can be converted to a Python scalar, got shape ",
               shape_str(a.shape));
        set_device(a.device, op);
        if (a.dtype == CDType::f32) {
          float v;
          memcpy_d2h(&v, a.data, 4, op);
          return py::float_(v);
        }
        if (a.dtype == CDType::i64) {
          int64_t v;
          memcpy_d2h(&v, a.data, 8, op);
          return py::int_(v);
        }
        unsigned char v;
        memcpy_d2h(&v, a.data, 1, op);
        return py::bool_(v != 0);
      })
      .def("__len__", [](const CudaArray& a) {
        if (a.shape.empty()) throw py::type_error("len() of a 0-d array");
        return a.shape[0];
      })
      .def("__dlpack__", &to_dlpack, py::arg("stream") = py::none(), py::kw_only(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
           py::arg("copy") = py::none(),
           "A DLPack capsule (legacy 'dltensor' ABI, kDLCUDA) sharing this memory; copy=True "
           "exports a copy. max_version is accepted and a legacy capsule returned, as the "
           "protocol allows.")
      .def("__dlpack_device__", [](const CudaArray& a) { return py::make_tuple(kDLCUDA, a.device); })
      .def("__repr__", [](const CudaArray& a) {
        return str("CudaArray(shape=", shape_str(a.shape), ", dtype=", cdtype_name(a.dtype),
                   ", device=", a.device, ")");
      });
}

}  // namespace cuda
}  // namespace fastnn
