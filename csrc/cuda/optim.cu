// Multi-tensor SGD and Adam: one launch updates every tensor of a param group. The host
// splits the group into chunks of at most kChunk elements (a chunk never crosses tensors),
// copies the slot and chunk tables to the device in one transfer, and each block walks
// chunks. The update formulas are csrc/cpu/optim.cpp's, operation by operation, with
// explicitly rounded intrinsics so nvcc cannot contract a*b+c into an FMA (which would
// change the roundings PyTorch's trajectories are matched to).
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/common.cuh"

namespace fastnn {
namespace cuda {

namespace {

constexpr int64_t kChunk = 1 << 14;

struct Chunk {
  int32_t slot;
  int32_t pad;
  int64_t begin, end;
};

__global__ void sgd_kernel(SgdHyper h, const SgdSlot* slots, const Chunk* chunks, int nchunks) {
  for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const Chunk ch = chunks[c];
    const SgdSlot s = slots[ch.slot];
    for (int64_t j = ch.begin + threadIdx.x; j < ch.end; j += blockDim.x) {
      float g = h.maximize ? -s.g[j] : s.g[j];
      if (h.weight_decay != 0.f) g = __fadd_rn(g, __fmul_rn(h.weight_decay, s.p[j]));
      if (s.buf) {
        float bj;
        if (s.first) {
          bj = g;  // PyTorch clones the gradient on the first step, no dampening
        } else {
          bj = __fmul_rn(s.buf[j], h.momentum);
          bj = __fadd_rn(bj, __fmul_rn(h.one_minus_dampening, g));
        }
        s.buf[j] = bj;
        g = h.nesterov ? __fadd_rn(g, __fmul_rn(h.momentum, bj)) : bj;
      }
      s.p[j] = __fadd_rn(s.p[j], __fmul_rn(h.neg_lr, g));
    }
  }
}

__global__ void adam_kernel(AdamHyper h, const AdamSlot* slots, const Chunk* chunks, int nchunks) {
  // NOTE: ATen's lerp formula switch at weight 0.5, as the CPU op.
  const float w1 = h.beta1_weight;
  const bool small = fabsf(w1) < 0.5f;
  const float w1c = __fadd_rn(1.f, -w1);
  for (int c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const Chunk ch = chunks[c];
    const AdamSlot s = slots[ch.slot];
    for (int64_t j = ch.begin + threadIdx.x; j < ch.end; j += blockDim.x) {
      float g = h.maximize ? -s.g[j] : s.g[j];
      if (h.weight_decay != 0.f) g = __fadd_rn(g, __fmul_rn(h.weight_decay, s.p[j]));
      float mj = s.m[j];
      mj = small ? __fadd_rn(mj, __fmul_rn(w1, __fadd_rn(g, -mj)))
                 : __fadd_rn(g, -__fmul_rn(__fadd_rn(g, -mj), w1c));
      float vj = __fmul_rn(s.v[j], h.beta2);
      vj = __fadd_rn(vj, __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
      s.m[j] = mj;
      s.v[j] = vj;
      const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vj), s.bc2_sqrt), h.eps);
      s.p[j] = __fadd_rn(s.p[j], __fdiv_rn(__fmul_rn(s.neg_step_size, mj), denom));
    }
  }
}

// Slots then chunks in one device buffer: one asynchronous host-to-device copy per step
// (through pinned staging, so the step never waits for the GPU).
template <class Slot, class Launch>
void run_group(const Slot* slots, int count, int device, const char* op, Launch&& launch) {
  std::vector<Chunk> chunks;
  for (int i = 0; i < count; ++i)
    for (int64_t b = 0; b < slots[i].n; b += kChunk)
      chunks.push_back(Chunk{i, 0, b, b + kChunk < slots[i].n ? b + kChunk : slots[i].n});
  if (chunks.empty()) return;
  const size_t slot_bytes = (sizeof(Slot) * (size_t)count + 15) / 16 * 16;
  const size_t bytes = slot_bytes + sizeof(Chunk) * chunks.size();
  std::vector<unsigned char> host(bytes);
  std::memcpy(host.data(), slots, sizeof(Slot) * (size_t)count);
  std::memcpy(host.data() + slot_bytes, chunks.data(), sizeof(Chunk) * chunks.size());
  void* dev = device_alloc(bytes, device);
  try {
    upload_async(dev, host.data(), bytes, device, op);
    const int nchunks = (int)chunks.size();
    const unsigned blocks = (unsigned)(nchunks < 65535 ? nchunks : 65535);
    launch(blocks, (const Slot*)dev,
           (const Chunk*)((unsigned char*)dev + slot_bytes), nchunks);
    FASTNN_CUDA_LAUNCHED(op);
  } catch (...) {
    device_free(dev, device);
    throw;
  }
  device_free(dev, device);
}

}  // namespace

void sgd_update(const SgdHyper& h, const SgdSlot* slots, int count, int device) {
  run_group(slots, count, device, "sgd",
            [&](unsigned blocks, const SgdSlot* s, const Chunk* c, int nc) {
              sgd_kernel<<<blocks, kThreads>>>(h, s, c, nc);
            });
}

void adam_update(const AdamHyper& h, const AdamSlot* slots, int count, int device) {
  run_group(slots, count, device, "adam",
            [&](unsigned blocks, const AdamSlot* s, const Chunk* c, int nc) {
              adam_kernel<<<blocks, kThreads>>>(h, s, c, nc);
            });
}

}  // namespace cuda
}  // namespace fastnn
