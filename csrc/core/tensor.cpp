#include "core/tensor.h"

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

Tensor empty(const Shape& shape, DType dt) {
  for (auto s : shape)
    if (s < 0) fail("empty", "sizes must be non-negative, got ", shape_str(shape));
  int64_t n = 1;
  for (auto s : shape) n *= s;
  auto st = std::make_shared<Storage>();
  st->nbytes = (size_t)n * dtype_size(dt);
  st->ptr = aligned_alloc_bytes(st->nbytes);
  st->deleter = aligned_free;
  void* p = st->ptr;
  return Tensor(std::move(st), p, dt, shape, contiguous_strides(shape));
}

Tensor zeros(const Shape& shape, DType dt) {
  Tensor t = empty(shape, dt);
  std::memset(t.raw(), 0, (size_t)t.numel() * dtype_size(dt));
  return t;
}

}  // namespace fastnn
