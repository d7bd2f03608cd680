#include <cmath>

#include "cpu/ops/ops.h"

namespace smolstage::cpu {

void swiglu_forward(float* out, const float* gate, const float* up, size_t count) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t count) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sig;
    dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
}

}  // namespace smolstage::cpu
