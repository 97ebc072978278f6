// fastnn._C_cuda: the CUDA backend (see CUDA_CONTRACT.md). Device queries, the matmul
// precision setting, the allocator's counters, CudaArray (array.cpp) and the ops (ops.cpp).
// Importing it needs no driver: every entry point that needs a device raises
// RuntimeError("[op] CUDA unavailable: <reason>") instead.
#include <cuda_runtime.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/shared.h"
#include "cuda/array.h"
#include "cuda/kernels.h"
#include "cuda/ops.h"

#ifndef FASTNN_CUDA_ARCHS
#define FASTNN_CUDA_ARCHS ""
#endif

namespace py = pybind11;
namespace fc = fastnn::cuda;

namespace {

// "80-real,90-real,90-virtual" -> ["sm_80", "sm_90", "compute_90"]
std::vector<std::string> compiled_archs() {
  std::vector<std::string> out;
  std::string s = FASTNN_CUDA_ARCHS, item;
  s += ",";
  for (char ch : s) {
    if (ch != ',') { item += ch; continue; }
    if (!item.empty()) {
      const auto dash = item.find('-');
      const std::string num = item.substr(0, dash);
      const std::string kind = dash == std::string::npos ? "" : item.substr(dash + 1);
      if (kind == "real") out.push_back("sm_" + num);
      else if (kind == "virtual") out.push_back("compute_" + num);
      else { out.push_back("sm_" + num); out.push_back("compute_" + num); }
    }
    item.clear();
  }
  return out;
}

void check_index(int i, const char* op) {
  fc::require_device(op);
  const int n = fc::device_status().count;
  if (i < 0 || i >= n) fastnn::fail(op, "device must be in [0, ", n, "), got ", i);
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "fastnn CUDA backend (internal; use fastnn.cuda and device='cuda')";
  fastnn::register_error_translator();

  m.def("device_count", [] { return fc::device_status().count; },
        "Number of usable CUDA devices; 0 without a driver or GPU (never raises).");
  m.def("unavailable_reason", [] { return fc::device_status().reason; },
        "'' when a device is present, else why not (the CUDA runtime's message).");
  m.def("get_device_name", [](int i) {
    check_index(i, "get_device_name");
    cudaDeviceProp prop;
    fc::check_status((int)cudaGetDeviceProperties(&prop, i), "get_device_name");
    return std::string(prop.name);
  }, py::arg("device") = 0);
  m.def("get_device_capability", [](int i) {
    check_index(i, "get_device_capability");
    int major = 0, minor = 0;
    fc::check_status((int)cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i),
                     "get_device_capability");
    fc::check_status((int)cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, i),
                     "get_device_capability");
    return py::make_tuple(major, minor);
  }, py::arg("device") = 0);
  m.def("synchronize", [] {
    fc::require_device("synchronize");
    py::gil_scoped_release nogil;
    fc::synchronize("synchronize");
  });
  m.def("memory_allocated", [] { return fc::memory_allocated(); },
        "Bytes held by live CudaArrays (rounded to the allocator's block sizes).");
  m.def("memory_reserved", [] { return fc::memory_reserved(); },
        "Bytes obtained from cudaMalloc: live blocks plus the allocator's cache.");
  m.def("empty_cache", [] {
    if (fc::device_status().count > 0) fc::empty_cache();
  }, "Returns the allocator's cached (free) blocks to the driver.");
  m.def("set_matmul_precision", [](const std::string& name) { fc::set_precision(name); },
        py::arg("precision"),
        "'highest' (fp32 SIMT GEMM), 'high' (TF32 tensor cores) or 'medium' (BF16 tensor cores, "
        "fp32 accumulate).");
  m.def("get_matmul_precision", [] { return fc::precision_name(); });
  m.def("compiled_archs", &compiled_archs,
        "Architectures compiled in: sm_XX (machine code), compute_XX (PTX).");
  fc::bind_array(m);
  fc::bind_ops(m);
}
