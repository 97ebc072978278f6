// Shape: a tensor's sizes or strides. A small vector of int64 that keeps up to kInline
// entries inside the object and goes to the heap only for more dims.
//
// NOTE (why not std::vector): every op call builds Tensors for its arguments and results,
// and each Tensor holds two of these. As std::vectors, they cost two malloc/free pairs per
// Tensor. perf put malloc/free at ~30% of a small chain's whole call (_C.mlp_fwd on a 1-2-1
// net). The interface is the part of std::vector's that fastnn uses. A Shape converts
// implicitly to and from std::vector<int64_t>, for code that takes one.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <vector>

namespace fastnn {

class Shape {
 public:
  using value_type = int64_t;
  using size_type = size_t;
  using difference_type = std::ptrdiff_t;
  using reference = int64_t&;
  using const_reference = const int64_t&;
  using pointer = int64_t*;
  using const_pointer = const int64_t*;
  using iterator = int64_t*;
  using const_iterator = const int64_t*;
  static constexpr size_t kInline = 6;

  Shape() = default;
  explicit Shape(size_t n, int64_t value = 0) { resize(n, value); }
  Shape(std::initializer_list<int64_t> il) { assign(il.begin(), il.end()); }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  Shape(It first, It last) { assign(first, last); }
  Shape(const std::vector<int64_t>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit
  Shape(const Shape& o) { assign(o.begin(), o.end()); }
  Shape(Shape&& o) noexcept { take(o); }
  ~Shape() { release(); }

  Shape& operator=(const Shape& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  Shape& operator=(Shape&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  Shape& operator=(std::initializer_list<int64_t> il) {
    assign(il.begin(), il.end());
    return *this;
  }
  operator std::vector<int64_t>() const { return std::vector<int64_t>(begin(), end()); }

  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t* data() { return p_; }
  const int64_t* data() const { return p_; }
  iterator begin() { return p_; }
  iterator end() { return p_ + n_; }
  const_iterator begin() const { return p_; }
  const_iterator end() const { return p_ + n_; }
  int64_t& operator[](size_t i) { return p_[i]; }
  const int64_t& operator[](size_t i) const { return p_[i]; }
  int64_t& back() { return p_[n_ - 1]; }
  const int64_t& back() const { return p_[n_ - 1]; }

  void reserve(size_t c) {
    if (c > cap_) grow(c);
  }
  void resize(size_t n, int64_t value = 0) {
    reserve(n);
    for (size_t i = n_; i < n; ++i) p_[i] = value;
    n_ = n;
  }
  void clear() { n_ = 0; }
  void push_back(int64_t v) {
    if (n_ == cap_) grow(2 * cap_);
    p_[n_++] = v;
  }
  void assign(size_t n, int64_t value) {
    n_ = 0;
    resize(n, value);
  }
  template <class It, class = std::enable_if_t<!std::is_integral_v<It>>>
  void assign(It first, It last) {
    const size_t n = (size_t)std::distance(first, last);
    reserve(n);
    std::copy(first, last, p_);
    n_ = n;
  }
  iterator erase(const_iterator pos) {
    const size_t at = (size_t)(pos - p_);
    std::copy(p_ + at + 1, p_ + n_, p_ + at);
    --n_;
    return p_ + at;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    return a.n_ == b.n_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  int64_t* p_ = buf_;
  size_t n_ = 0;
  size_t cap_ = kInline;
  int64_t buf_[kInline];

  void grow(size_t c) {
    int64_t* q = new int64_t[c];
    std::copy(p_, p_ + n_, q);
    if (p_ != buf_) delete[] p_;
    p_ = q;
    cap_ = c;
  }
  void release() {
    if (p_ != buf_) delete[] p_;
    p_ = buf_;
    cap_ = kInline;
  }
  // Takes o's contents (this holds no heap block: a new object, or after release()); o
  // ends empty.
  void take(Shape& o) noexcept {
    if (o.p_ == o.buf_) {
      std::copy(o.buf_, o.buf_ + o.n_, buf_);
      p_ = buf_;
      cap_ = kInline;
    } else {
      p_ = o.p_;
      cap_ = o.cap_;
      o.p_ = o.buf_;
      o.cap_ = kInline;
    }
    n_ = o.n_;
    o.n_ = 0;
  }
};

}  // namespace fastnn
