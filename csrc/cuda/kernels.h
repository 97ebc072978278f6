// Host-side entry points of the CUDA kernels (implemented in the .cu files of this folder).
// Plain C++: the binding (module.cpp) includes this without any CUDA headers of its own.
// Every pointer is a device pointer on the current device; every call is enqueued on the
// legacy default stream (asynchronous unless said otherwise) and checks its launch, turning
// a CUDA error into std::runtime_error("[op] CUDA error: ..."). Sizes are int64 throughout
// (NOTE: numel can exceed 2^31 on an 80 GB GPU). A call with nothing to compute launches
// nothing. Outputs are contiguous and overwritten unless said otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fastnn {
namespace cuda {

// ---- runtime / allocator (runtime.cu)
// Raises RuntimeError("[op] CUDA error: <reason>") when e != 0 (e is a cudaError_t).
void check_status(int e, const char* op);
// Devices usable by this process, probed once: count 0 with the runtime's reason when there
// is no driver or GPU (never throws).
struct DeviceStatus {
  int count = 0;
  std::string reason;
};
const DeviceStatus& device_status();
// Makes `stream` (a cudaStream_t as an integer) wait for the work queued so far on the
// legacy default stream of `device` (DLPack export to a consumer on another stream).
void stream_wait_default(uintptr_t stream, int device, const char* op);
void* device_alloc(size_t nbytes, int device);  // caching; nbytes 0 gives a valid pointer
void device_free(void* p, int device);          // back to the free list, never cudaFree
size_t memory_allocated();
size_t memory_reserved();
void empty_cache();
void set_device(int device, const char* op);
int current_device();
void memcpy_h2d(void* dst, const void* src, size_t nbytes, const char* op);
void memcpy_d2h(void* dst, const void* src, size_t nbytes, const char* op);  // synchronises
void memcpy_d2d(void* dst, const void* src, size_t nbytes, const char* op);
void synchronize(const char* op);
// Queues a copy of `bytes` host bytes into dst (device memory of `device`) on the legacy
// default stream without waiting for the stream: the bytes go through a pinned staging
// buffer first, so the caller's buffer may be reused as soon as this returns.
void upload_async(void* dst, const void* src, size_t bytes, int device, const char* op);

// ---- GEMM (gemm.cu)
enum class Precision { highest = 0, high = 1, medium = 2 };  // fp32 SIMT, TF32, BF16
// Applied to every element of C after the product: v = acc (+ C when accumulate) (+ bias[n]);
// z[m, n] = v when z is set; C = act(v). act codes as csrc/cpu/act.h.
struct Epilogue {
  const float* bias = nullptr;  // (N,) or null
  int act = 0;
  float beta = 1.f, threshold = 20.f;
  float* z = nullptr;  // (M, N) with leading dimension ldc, or null
};
// C[b](M, N) = op(A[b]) · op(B[b]) for b < batch; op(A) is (M, K): A stored (M, K) with
// leading dimension lda, or (K, M) when trans_a (read in place); likewise B. Batch strides
// in elements (0 broadcasts). precision picks the kernel; tensor cores need sm_80+, older
// devices fall back to the fp32 kernel.
void gemm(Precision prec, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
          int64_t stride_b, float* C, int64_t ldc, int64_t stride_c, int64_t batch,
          bool accumulate, const Epilogue* ep, const char* op);

// ---- elementwise (elementwise.cu)
constexpr int kMaxDims = 16;
// A coalesced broadcast walk: output shape (contiguous) and each operand's element strides
// over it (0 on broadcast dims). Operands: up to 3.
struct Walk {
  int nd = 0;
  int64_t shape[kMaxDims];
  int64_t st[3][kMaxDims];
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < nd; ++d) n *= shape[d];
    return n;
  }
};
void act_fwd(int act, float beta, float threshold, const float* x, float* y, int64_t n);
// dx = dy * act'(x or y); x is read for gelu/softplus, y for the others.
void act_bwd(int act, float beta, float threshold, const float* dy, const float* x,
             const float* y, float* dx, int64_t n);
// op codes as csrc/cpu/elementwise.h: UnOp {neg, abs, exp, log, sqrt},
// BinOp {add, sub, mul, div, pow, maximum, minimum}.
void unary_f32(int op, const float* x, float* y, int64_t n);
void unary_i64(int op, const int64_t* x, int64_t* y, int64_t n);
void unary_bwd_f32(int op, const float* g, const float* x, const float* y, float* dx, int64_t n);
// w operands: 0 = a, 1 = b.
void binary_f32(int op, const Walk& w, const float* a, const float* b, float* out);
void binary_i64(int op, const Walk& w, const int64_t* a, const int64_t* b, int64_t* out);
// Gradients at the broadcast shape; g, ga, gb contiguous; ga/gb may be null.
void binary_bwd_f32(int op, const Walk& w, const float* g, const float* a, const float* b,
                    float* ga, float* gb);
// dst = dst op (alpha * src); w operand 0 = src (dst is contiguous over w's shape).
void binary_inplace_f32(int op, const Walk& w, float* dst, const float* src, float alpha);
void binary_inplace_i64(int op, const Walk& w, int64_t* dst, const int64_t* src, int64_t alpha);
// out = scale * src; w operand 0 = src.
void expand_f32(const Walk& w, const float* src, float scale, float* out);
// dtype codes: 0 float32, 1 int64, 2 bool (1 byte).
void fill(int dtype, void* p, int64_t n, double value);
void cast(int from, const void* src, int to, void* dst, int64_t n);
// Packs a strided walk of src (operand 0, itemsize bytes) into contiguous dst.
void gather_strided(const Walk& w, const void* src, void* dst, int itemsize);

// ---- reductions (reduce.cu); arrays viewed as (outer, r, inner), reduction over r
void sum_f32(const float* x, int64_t outer, int64_t r, int64_t inner, double divisor, float* out);
void sum_i64(const int64_t* x, int64_t outer, int64_t r, int64_t inner, int64_t* out);
// val and/or idx may be null. First index wins ties; NaN beats every number. r >= 1.
void extreme_f32(bool is_max, const float* x, int64_t outer, int64_t r, int64_t inner,
                 float* val, int64_t* idx);
void extreme_i64(bool is_max, const int64_t* x, int64_t outer, int64_t r, int64_t inner,
                 int64_t* val, int64_t* idx);
void scatter_dim_f32(const float* g, const int64_t* idx, int64_t outer, int64_t r, int64_t inner,
                     float* dx);
// v, g: device scalars.
void extreme_all_bwd_f32(const float* x, int64_t n, const float* v, const float* g, float* dx);
// Index of the first i with (t[i] < lo || t[i] >= hi) and t[i] != skip (use_skip), or -1;
// counts the entries != skip into *kept. Synchronises (one small copy back).
int64_t first_out_of_range(const int64_t* t, int64_t n, int64_t lo, int64_t hi, bool use_skip,
                           int64_t skip, int64_t* kept, const char* op);

// ---- softmax, losses (softmax_loss.cu)
void softmax_fwd(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log);
void softmax_bwd(const float* dy, const float* y, float* dx, int64_t outer, int64_t dim,
                 int64_t inner, bool log);
// loss (n,), stats (n, 2) = (max, log-sum-exp - max) per row; ignored rows: loss 0.
void cross_entropy_fwd(const float* x, const int64_t* t, float* loss, float* stats, int64_t n,
                       int64_t c, int64_t ignore_index);
// dx = (softmax(x) - onehot(t)) * g[i * g_stride] * scale; ignored rows 0.
void cross_entropy_bwd(const float* x, const int64_t* t, const float* stats, const float* g,
                       int64_t g_stride, float scale, float* dx, int64_t n, int64_t c,
                       int64_t ignore_index);
// out[0] = (float)(sum of x[i] (or (x[i] - y[i])^2 when y) in double / divisor).
void sum_to_scalar(const float* x, const float* y, int64_t n, double divisor, float* out);
void mse_none(const float* x, const float* y, float* out, int64_t n);
void mse_bwd(const float* x, const float* y, const float* g, int64_t g_stride, float scale,
             float* gx, float* gy, int64_t n);

// ---- optimizers (optim.cu): one launch per param group
struct SgdSlot {
  float* p;
  const float* g;
  float* buf;  // null when momentum == 0
  int64_t n;
  int first;
};
struct SgdHyper {
  float neg_lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, maximize;
};
struct AdamSlot {
  float* p;
  const float* g;
  float* m;
  float* v;
  float neg_step_size, bc2_sqrt;
  int64_t n;
};
struct AdamHyper {
  float beta1_weight, beta2, one_minus_beta2, eps, weight_decay;
  bool maximize;
};
void sgd_update(const SgdHyper& h, const SgdSlot* slots, int count, int device);
void adam_update(const AdamHyper& h, const AdamSlot* slots, int count, int device);

}  // namespace cuda
}  // namespace fastnn
