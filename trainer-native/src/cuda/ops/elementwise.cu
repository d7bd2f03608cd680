// fill and scale: the trainer's whole-buffer ops (zeroing gradients, clipping).
#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

__global__ void fill_kernel(float* x, size_t count, float value) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] = value;
}

__global__ void scale_kernel(float* x, size_t count, float factor) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) x[i] *= factor;
}

}  // namespace

void fill(float* x, size_t count, float value) {
  if (count == 0) return;
  fill_kernel<<<blocks_for(count, 256), 256>>>(x, count, value);
  CUDA_CHECK_LAUNCH("fill_kernel");
}

void scale(float* x, size_t count, float factor) {
  if (count == 0) return;
  scale_kernel<<<blocks_for(count, 256), 256>>>(x, count, factor);
  CUDA_CHECK_LAUNCH("scale_kernel");
}

}  // namespace smolstage::cuda
