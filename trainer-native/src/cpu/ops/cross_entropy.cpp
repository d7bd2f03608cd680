#include <cmath>

#include "cpu/ops/fast_exp.h"
#include "cpu/ops/ops.h"

namespace smolstage::cpu {
namespace {

// `omp simd` reductions let the compiler reorder these sums and maxima into vector lanes.
float row_max(const float* z, int n) {
  float m = z[0];
#pragma omp simd reduction(max : m)
  for (int j = 0; j < n; ++j) m = z[j] > m ? z[j] : m;
  return m;
}

float row_sum(const float* z, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int j = 0; j < n; ++j) s += z[j];
  return s;
}

}  // namespace

// The logits buffer is scratch: it ends up holding exp(z − max), or the gradient with want_grad.
void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                   const float* row_scale, bool want_grad) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < rows; ++n) {
    float* z = logits + static_cast<size_t>(n) * vocab;
    const int t = targets[n];
    const float maxv = row_max(z, vocab);
    const float target_shifted = z[t] - maxv;
    for (int j = 0; j < vocab; ++j) z[j] = fast_exp(z[j] - maxv);
    const double sum = row_sum(z, vocab);
    losses[n] = static_cast<float>(std::log(sum) - target_shifted);
    if (want_grad) {
      const float scale = row_scale ? row_scale[n] : grad_scale;
      const float factor = static_cast<float>(scale / sum);
      for (int k = 0; k < vocab; ++k) z[k] *= factor;
      z[t] -= scale;
    }
  }
}

}  // namespace smolstage::cpu
