// Elementwise kernels: binary ops with broadcasting (forward, backward, in place) and unary
// ops. Shapes and strides are in elements; "strides over shape" means the operand's stride
// in each dim of the (broadcast) output shape, 0 on broadcast dims. Outputs are contiguous
// and overwritten unless said otherwise.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/broadcast.h"  // DimsRef

namespace fastnn {

enum class BinOp { add, sub, mul, div, pow, maximum, minimum };
enum class UnOp { neg, abs, exp, log, sqrt };
const char* binop_name(BinOp op);
const char* unop_name(UnOp op);

using Dims = std::vector<int64_t>;

// out = a op b.  a: strides sa over shape; b: strides sb over shape; out: contiguous (shape).
void binary_f32(BinOp op, DimsRef shape, const float* a, DimsRef sa, const float* b,
                DimsRef sb, float* out);
// int64: add, sub, mul, maximum, minimum only (div/pow are done in float32 by the caller).
void binary_i64(BinOp op, DimsRef shape, const int64_t* a, DimsRef sa, const int64_t* b,
                DimsRef sb, int64_t* out);

// dst = dst op (alpha * src), in place.  dst: contiguous (shape); src: strides ss over shape.
// op: add, mul, div (alpha is used by add only).
void binary_inplace_f32(BinOp op, DimsRef shape, float* dst, const float* src,
                        DimsRef ss, float alpha);
void binary_inplace_i64(BinOp op, DimsRef shape, int64_t* dst, const int64_t* src,
                        DimsRef ss, int64_t alpha);

// Gradients of sum(g * (a op b)) at the broadcast shape (the caller sums them down to each
// input's shape).  g: contiguous (shape); a, b: strides over shape; ga, gb: contiguous
// (shape), overwritten, either may be nullptr when not wanted.
void binary_bwd_f32(BinOp op, DimsRef shape, const float* g, const float* a, DimsRef sa,
                    const float* b, DimsRef sb, float* ga, float* gb);

// out[i] = a[i] op b[i * b_step] for op eq, ne, lt, le, gt, ge (0..5), as IEEE comparisons
// (NaN: only ne is true); b_step 0 compares against one value.
void compare_f32(int op, const float* a, const float* b, int64_t b_step, bool* out, int64_t n);

// out[i] = cond[i] ? a[i * a_step] : b[i * b_step] (a step of 0: one value). out must not
// overlap cond, a or b (a and b may be the same).
void where_f32(const bool* cond, const float* a, int64_t a_step, const float* b, int64_t b_step,
               float* out, int64_t n);

// y = op(x), n elements, contiguous. int64: neg and abs only.
void unary_f32(UnOp op, const float* x, float* y, int64_t n);
// y = x limited to [lo, hi] (either bound may be null: no limit), as torch.clamp: x itself
// when lo <= x <= hi (so -0 stays -0 at a bound of 0), lo below, hi above (hi everywhere when
// lo > hi); a NaN x or a NaN bound gives NaN.
void clamp_f32(const float* x, float* y, int64_t n, const float* lo, const float* hi);
void unary_i64(UnOp op, const int64_t* x, int64_t* y, int64_t n);
// dx = g * op'(x): x is the input, y the forward output (exp and sqrt use y); overwrites dx.
void unary_bwd_f32(UnOp op, const float* g, const float* x, const float* y, float* dx, int64_t n);

// out = scale * src broadcast to shape.  src: strides ss over shape; out: contiguous (shape).
void expand_f32(DimsRef shape, const float* src, DimsRef ss, float scale, float* out);

}  // namespace fastnn
