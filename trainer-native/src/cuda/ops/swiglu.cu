#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  out[i] = g / (1.0f + expf(-g)) * up[i];
}

// silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                       size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  const float sig = 1.0f / (1.0f + expf(-g));
  dup[i] = dout[i] * g * sig;
  dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
}

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, size_t count) {
  if (count == 0) return;
  swiglu_forward_kernel<<<blocks_for(count, 256), 256>>>(out, gate, up, count);
  CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t count) {
  if (count == 0) return;
  swiglu_backward_kernel<<<blocks_for(count, 256), 256>>>(dgate, dup, dout, gate, up, count);
  CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

}  // namespace smolstage::cuda
