// act_bwd_cols on SIMD registers; included by act_bwd_<isa>.cpp, each of which first includes
// its ISA's `struct V` and `struct S` (simd_<isa>.h, simd_scalar.h) and defines
// FASTNN_ACT_BWD_COLS (the function's name). The contract is act_bwd.h's.
// NOTE (numerics): one IEEE operation per step, in the scalar loop's order (dy * (y * (1 - y))
// for sigmoid, dy * (1 - y * y) for tanh), and these files build with -ffp-contract=off, so no
// FMA merges two of them: every ISA gives the same bits.
#ifdef FASTNN_X86
#include <cstdint>

#include "cpu/kernels/act_bwd.h"

namespace fastnn {

namespace {

template <class T, Act A>
inline typename T::R grad_times(typename T::R d, typename T::R y) {
  if constexpr (A == Act::relu) return T::pos_or_zero(y, d);
  if constexpr (A == Act::sigmoid) return T::mul(d, T::mul(y, T::sub(T::set1(1.f), y)));
  return T::mul(d, T::sub(T::set1(1.f), T::mul(y, y)));  // tanh
}

// Columns [j, j + T::W) of row i; the bias-gradient sums stay in db, which is in L1.
template <class T, Act A, bool Db>
inline void one(const float* dy, const float* y, float* dz, float* db, int64_t o, int64_t j) {
  const typename T::R v = grad_times<T, A>(T::load(dy + o + j), T::load(y + o + j));
  T::store(dz + o + j, v);
  if (Db) T::store(db + j, T::add(T::load(db + j), v));
}

// NOTE (speed): row by row, so all three arrays stream through in order (a column block down
// every row strides by a whole row each step: for a 512 x 1024 layer, a new page each time).
template <Act A, bool Db>
void cols_loop(const float* dy, const float* y, float* dz, float* db, int64_t rows,
               int64_t cols, int64_t j0, int64_t j1) {
  if (Db)
    for (int64_t j = j0; j < j1; ++j) db[j] = 0.f;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t o = i * cols;
    int64_t j = j0;
    for (; j + V::W <= j1; j += V::W) one<V, A, Db>(dy, y, dz, db, o, j);
    for (; j < j1; ++j) one<S, A, Db>(dy, y, dz, db, o, j);
  }
}

template <Act A>
void dispatch_db(const float* dy, const float* y, float* dz, float* db, int64_t rows,
                 int64_t cols, int64_t j0, int64_t j1) {
  if (db) cols_loop<A, true>(dy, y, dz, db, rows, cols, j0, j1);
  else cols_loop<A, false>(dy, y, dz, db, rows, cols, j0, j1);
}

}  // namespace

void FASTNN_ACT_BWD_COLS(Act a, const float* dy, const float* y, float* dz, float* db,
                         int64_t rows, int64_t cols, int64_t j0, int64_t j1) {
  switch (a) {
    case Act::relu: return dispatch_db<Act::relu>(dy, y, dz, db, rows, cols, j0, j1);
    case Act::sigmoid: return dispatch_db<Act::sigmoid>(dy, y, dz, db, rows, cols, j0, j1);
    case Act::tanh: return dispatch_db<Act::tanh>(dy, y, dz, db, rows, cols, j0, j1);
    default: break;  // not for this kernel (act_bwd.h)
  }
}

}  // namespace fastnn
#endif
