#include "core/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fastnn {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

void* aligned_alloc_bytes(size_t nbytes) {
  void* p = nullptr;
  // Round up so the allocation is never zero bytes: an empty tensor still has a valid pointer.
  size_t n = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (n == 0) n = kAlignment;
  if (posix_memalign(&p, kAlignment, n) != 0) throw std::bad_alloc();
  return p;
}
void aligned_free(void* p) { std::free(p); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // NumPy gives empty arrays arbitrary (often zero) strides
  int64_t expect = 1;
  for (int64_t d = ndim() - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != expect) return false;
    expect *= shape_[d];
  }
  return true;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int64_t d = (int64_t)shape.size() - 1; d >= 0; --d) { st[d] = s; s *= shape[d]; }
  return st;
}

namespace {

// Recycled small blocks for tensor storage. NOTE (speed): a small network's step allocates a
// few dozen outputs of tens of bytes each; posix_memalign + free of those cost ~0.1 us apiece
// (glibc splits and re-merges chunks for the alignment). Blocks up to kSmallMax bytes go back
// to a free list per 64-byte size class instead, at most kDepth per class (so at most
// ~280 KiB is ever held). One global cache behind a spin lock: storage may be released on any
// thread, and the cache has no destructor to run at exit (blocks left in it at exit are
// reclaimed with the process).
constexpr size_t kSmallMax = 1024;
constexpr size_t kClasses = kSmallMax / kAlignment;
constexpr int kDepth = 32;

struct SmallCache {
  std::atomic_flag lock = ATOMIC_FLAG_INIT;
  int count[kClasses] = {};
  void* blocks[kClasses][kDepth] = {};
};
SmallCache g_small;

struct SpinGuard {
  explicit SpinGuard(std::atomic_flag& f) : f_(f) {
    while (f_.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~SpinGuard() { f_.clear(std::memory_order_release); }
  std::atomic_flag& f_;
};

// Size class of a block of n bytes (n a multiple of kAlignment, 0 < n <= kSmallMax).
size_t size_class(size_t n) { return n / kAlignment - 1; }

void* storage_alloc(size_t nbytes) {
  size_t n = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (n == 0) n = kAlignment;
  if (n <= kSmallMax) {
    const size_t c = size_class(n);
    SpinGuard g(g_small.lock);
    if (g_small.count[c] > 0) return g_small.blocks[c][--g_small.count[c]];
  }
  return aligned_alloc_bytes(n);
}

void storage_free(void* p, size_t nbytes) {
  size_t n = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (n == 0) n = kAlignment;
  if (n <= kSmallMax) {
    const size_t c = size_class(n);
    SpinGuard g(g_small.lock);
    if (g_small.count[c] < kDepth) {
      g_small.blocks[c][g_small.count[c]++] = p;
      return;
    }
  }
  aligned_free(p);
}

}  // namespace

Tensor empty(const Shape& shape, DType dt) {
  for (auto s : shape)
    if (s < 0) fail("empty", "sizes must be non-negative, got ", shape_str(shape));
  int64_t n = 1, nbytes_checked = 0;
  for (auto s : shape)
    if (__builtin_mul_overflow(n, s, &n))
      fail("empty", "the number of elements of ", shape_str(shape), " overflows int64");
  if (__builtin_mul_overflow(n, int64_t(dtype_size(dt)), &nbytes_checked))
    fail("empty", "the size in bytes of ", shape_str(shape), " overflows int64");
  auto st = std::make_shared<Storage>();
  st->nbytes = (size_t)nbytes_checked;
  const size_t nbytes = st->nbytes;
  st->ptr = storage_alloc(nbytes);
  st->deleter = [nbytes](void* q) { storage_free(q, nbytes); };
  void* p = st->ptr;
  return Tensor(std::move(st), p, dt, shape, contiguous_strides(shape));
}

Tensor zeros(const Shape& shape, DType dt) {
  Tensor t = empty(shape, dt);
  std::memset(t.raw(), 0, (size_t)t.numel() * dtype_size(dt));
  return t;
}

}  // namespace fastnn
