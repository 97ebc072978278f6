// Runtime helpers and the caching allocator of fastnn._C_cuda.
#include <cuda_runtime.h>

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda/kernels.h"

namespace fastnn {
namespace cuda {

void check_status(int e, const char* op) {
  if (e == (int)cudaSuccess) return;
  // NOTE: clear the sticky "last error" of non-fatal errors so the next op does not report
  // it again (a fatal one, e.g. an illegal address, stays set: the context is gone).
  (void)cudaGetLastError();
  throw std::runtime_error(std::string("[") + op + "] CUDA error: " +
                           cudaGetErrorString((cudaError_t)e));
}

const DeviceStatus& device_status() {
  static const DeviceStatus st = [] {
    DeviceStatus s;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      s.reason = cudaGetErrorString(e);
    } else if (n == 0) {
      s.reason = "no CUDA device found";
    } else {
      s.count = n;
    }
    return s;
  }();
  return st;
}

void stream_wait_default(uintptr_t stream, int device, const char* op) {
  set_device(device, op);
  cudaEvent_t ev;
  check_status((int)cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), op);
  cudaError_t e = cudaEventRecord(ev, 0);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream), ev, 0);
  cudaEventDestroy(ev);  // released once the wait has been satisfied
  check_status((int)e, op);
}

namespace {

// Freed blocks go to a free list keyed by (device, rounded size) and are reused by the next
// allocation of the same rounded size; cudaFree only runs in empty_cache() (or when
// cudaMalloc fails, to retry after giving cached memory back).
// NOTE: reuse is safe without events because every op runs on the legacy default stream:
// a kernel that uses a block recycled from a freed array is queued after every kernel
// that used it before.
struct Allocator {
  std::mutex mu;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_blocks;
  std::unordered_map<void*, std::pair<int, size_t>> live;  // ptr -> (device, rounded size)
  size_t allocated = 0, reserved = 0;

  // Sizes round up to 512 bytes below 1 MiB and to 1 MiB above, so similar sizes share
  // lists (at most 1/2 wasted for tiny blocks, well under 1% for large ones...
  // NOTE: ... except just above 1 MiB, where up to half of a 2 MiB block can be slack).
  static size_t round(size_t n) {
    if (n == 0) n = 1;
    const size_t g = n < (size_t(1) << 20) ? 512 : (size_t(1) << 20);
    return (n + g - 1) / g * g;
  }

  void release_cached_locked() {
    for (auto& [key, v] : free_blocks) {
      int prev = 0;
      cudaGetDevice(&prev);
      cudaSetDevice(key.first);
      for (void* p : v) {
        cudaFree(p);
        reserved -= key.second;
      }
      cudaSetDevice(prev);
    }
    free_blocks.clear();
  }
};

Allocator& allocator() {
  // Never destroyed: blocks may still be returned by arrays freed at interpreter exit, after
  // static destructors would have run.
  static Allocator* a = new Allocator();
  return *a;
}

}  // namespace

void* device_alloc(size_t nbytes, int device) {
  Allocator& a = allocator();
  const size_t n = Allocator::round(nbytes);
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.free_blocks.find({device, n});
  if (it != a.free_blocks.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    a.live[p] = {device, n};
    a.allocated += n;
    return p;
  }
  set_device(device, "empty");
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, n);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    a.release_cached_locked();
    set_device(device, "empty");
    e = cudaMalloc(&p, n);
  }
  if (e != cudaSuccess)
    check_status((int)e, (std::string("empty: allocating ") + std::to_string(n) + " bytes").c_str());
  a.live[p] = {device, n};
  a.allocated += n;
  a.reserved += n;
  return p;
}

void device_free(void* p, int device) {
  if (!p) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(p);
  if (it == a.live.end()) return;  // not ours (never happens: imported memory has its owner)
  const auto key = it->second;
  a.live.erase(it);
  a.allocated -= key.second;
  a.free_blocks[key].push_back(p);
}

size_t memory_allocated() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.allocated;
}

size_t memory_reserved() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.reserved;
}

void empty_cache() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  a.release_cached_locked();
}

void set_device(int device, const char* op) {
  int cur = -1;
  check_status((int)cudaGetDevice(&cur), op);
  if (cur != device) check_status((int)cudaSetDevice(device), op);
}

int current_device() {
  int cur = 0;
  if (cudaGetDevice(&cur) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return cur;
}

void memcpy_h2d(void* dst, const void* src, size_t nbytes, const char* op) {
  if (nbytes) check_status((int)cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice), op);
}
void memcpy_d2h(void* dst, const void* src, size_t nbytes, const char* op) {
  if (nbytes) check_status((int)cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost), op);
}
void memcpy_d2d(void* dst, const void* src, size_t nbytes, const char* op) {
  if (nbytes) check_status((int)cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, 0), op);
}
void synchronize(const char* op) { check_status((int)cudaDeviceSynchronize(), op); }

namespace {

// Pinned staging slabs for upload_async, per device, used round-robin. A slab is refilled
// only after the copy that last read it has completed (its event): with kSlabs of them this
// waits only when that many uploads are still queued behind unfinished work.
// NOTE: a copy from pageable memory would synchronise with the stream on every call (one
// per optimizer step), which is what this avoids.
constexpr int kSlabs = 4;
struct Slab {
  void* host = nullptr;
  size_t cap = 0;
  cudaEvent_t done = nullptr;
};
struct Staging {
  std::mutex mu;
  std::map<int, std::vector<Slab>> slabs;
  std::map<int, int> next;
};
Staging& staging() {
  static Staging* s = new Staging();  // never destroyed, as the allocator
  return *s;
}

}  // namespace

void upload_async(void* dst, const void* src, size_t bytes, int device, const char* op) {
  if (!bytes) return;
  Staging& st = staging();
  std::lock_guard<std::mutex> lock(st.mu);
  set_device(device, op);
  auto& v = st.slabs[device];
  if (v.empty()) v.resize(kSlabs);
  Slab& s = v[st.next[device]];
  st.next[device] = (st.next[device] + 1) % kSlabs;
  if (s.done) check_status((int)cudaEventSynchronize(s.done), op);
  else check_status((int)cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), op);
  if (s.cap < bytes) {
    if (s.host) check_status((int)cudaFreeHost(s.host), op);
    s.host = nullptr;
    s.cap = 0;
    const size_t cap = bytes < 4096 ? 4096 : bytes * 2;
    check_status((int)cudaHostAlloc(&s.host, cap, cudaHostAllocPortable), op);
    s.cap = cap;
  }
  std::memcpy(s.host, src, bytes);
  check_status((int)cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, 0), op);
  check_status((int)cudaEventRecord(s.done, 0), op);
}

}  // namespace cuda
}  // namespace fastnn
