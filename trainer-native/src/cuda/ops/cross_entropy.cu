// Softmax cross-entropy, one block per row: one pass for the running (max, Σexp) of each thread,
// a block-wide merge, then (with want_grad) one pass that overwrites the logits with
// s·(softmax − onehot(target)), s = row_scale[row] when given, else grad_scale.
#include <cmath>

#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

constexpr int kThreads = 512;

struct MaxSum {
  float max;
  float sum;  // Σ exp(z − max)
};

__device__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__global__ void cross_entropy_kernel(float* losses, float* logits, const int32_t* targets, int vocab, float grad_scale,
                                     const float* row_scale, bool want_grad) {
  __shared__ MaxSum warp_parts[kThreads / 32];
  __shared__ MaxSum row_total;
  __shared__ float target_logit;
  const int n = blockIdx.x;
  float* z = logits + static_cast<size_t>(n) * vocab;
  const int target = targets[n];
  if (threadIdx.x == 0) target_logit = z[target];

  MaxSum mine{-INFINITY, 0.0f};
  for (int j = threadIdx.x; j < vocab; j += kThreads) {
    const float x = z[j];
    if (x > mine.max) {
      mine.sum = mine.sum * expf(mine.max - x) + 1.0f;
      mine.max = x;
    } else {
      mine.sum += expf(x - mine.max);
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, mine.max, offset), __shfl_xor_sync(0xffffffffu, mine.sum, offset)};
    mine = merge(mine, other);
  }
  if (threadIdx.x % 32 == 0) warp_parts[threadIdx.x / 32] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    MaxSum total = warp_parts[0];
    for (int w = 1; w < kThreads / 32; ++w) total = merge(total, warp_parts[w]);
    row_total = total;
    losses[n] = logf(total.sum) - (target_logit - total.max);
  }
  __syncthreads();
  if (!want_grad) return;
  const float maxv = row_total.max;
  const float scale = row_scale ? row_scale[n] : grad_scale;
  const float factor = scale / row_total.sum;
  for (int j = threadIdx.x; j < vocab; j += kThreads) {
    const float g = expf(z[j] - maxv) * factor;
    z[j] = j == target ? g - scale : g;
  }
}

}  // namespace

void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                   const float* row_scale, bool want_grad) {
  if (rows == 0) return;
  cross_entropy_kernel<<<rows, kThreads>>>(losses, logits, targets, vocab, grad_scale, row_scale, want_grad);
  CUDA_CHECK_LAUNCH("cross_entropy_kernel");
}

}  // namespace smolstage::cuda
