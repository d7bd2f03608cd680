#include <cmath>

#include "cpu/ops/ops.h"

namespace smolstage::cpu {

// Same arithmetic order as torch.optim.AdamW (decay first, then the Adam step).
void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step));
  const float step_size = static_cast<float>(h.lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float b1 = h.beta1, b2 = h.beta2;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    const float g = grad[i];
    const float mi = m[i] + (g - m[i]) * (1.0f - b1);
    const float vi = v[i] * b2 + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + h.eps;
    param[i] = param[i] * decay - step_size * mi / denom;
  }
}

}  // namespace smolstage::cpu
