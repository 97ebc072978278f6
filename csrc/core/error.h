// Error types that reach Python as the matching built-in exception (see bindings/module.cpp).
// Every message starts with "[op] " and says what was expected and what came.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace fastnn {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct IndexError : std::runtime_error { using std::runtime_error::runtime_error; };
// RuntimeError: plain std::runtime_error.

namespace detail {
inline void put(std::ostringstream&) {}
template <class T, class... R>
void put(std::ostringstream& os, const T& v, const R&... rest) { os << v; put(os, rest...); }
}  // namespace detail

template <class... A>
std::string str(const A&... a) { std::ostringstream os; detail::put(os, a...); return os.str(); }

// Shapes print as (2, 3); used in messages.
std::string shape_str(const std::vector<int64_t>& s);

template <class E = ValueError, class... A>
[[noreturn]] void fail(const char* op, const A&... a) { throw E(str("[", op, "] ", a...)); }

}  // namespace fastnn

// FASTNN_CHECK(cond, ErrorType, op, message parts...)
#define FASTNN_CHECK(cond, E, op, ...) \
  do { if (!(cond)) ::fastnn::fail<E>(op, __VA_ARGS__); } while (0)
