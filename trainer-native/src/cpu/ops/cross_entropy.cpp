#include <cmath>

#include "cpu/ops/ops.h"

namespace smolstage::cpu {

void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                   bool want_grad) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < rows; ++n) {
    float* z = logits + static_cast<size_t>(n) * vocab;
    float maxv = z[0];
    for (int j = 1; j < vocab; ++j) maxv = z[j] > maxv ? z[j] : maxv;
    double sum = 0.0;
    for (int j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(z[j] - maxv));
    const double log_sum = std::log(sum);
    const int t = targets[n];
    losses[n] = static_cast<float>(log_sum - (z[t] - maxv));
    if (want_grad) {
      const float inv_sum = static_cast<float>(1.0 / sum);
      for (int j = 0; j < vocab; ++j) z[j] = grad_scale * std::exp(z[j] - maxv) * inv_sum;
      z[t] -= grad_scale;
    }
  }
}

}  // namespace smolstage::cpu
