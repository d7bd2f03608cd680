#include <cmath>

#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

// Same arithmetic order as the CPU kernel and torch.optim.AdamW (decay first, then the Adam step).
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, size_t count, float b1, float b2,
                             float eps, float step_size, float bc2_sqrt, float decay) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = grad[i];
  const float mi = m[i] + (g - m[i]) * (1.0f - b1);
  const float vi = v[i] * b2 + (1.0f - b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  const float denom = sqrtf(vi) / bc2_sqrt + eps;
  param[i] = param[i] * decay - step_size * mi / denom;
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h) {
  if (count == 0) return;
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step));
  const float step_size = static_cast<float>(h.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - h.lr * h.weight_decay;
  adamw_kernel<<<blocks_for(count, 256), 256>>>(param, grad, m, v, count, h.beta1, h.beta2, h.eps, step_size, bc2_sqrt,
                                                decay);
  CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace smolstage::cuda
