#include <cmath>

#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

namespace smolstage::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < rows; ++n) {
    const float* x = inp + static_cast<size_t>(n) * dim;
    float* y = out + static_cast<size_t>(n) * dim;
    double ss = 0.0;
    for (int c = 0; c < dim; ++c) ss += static_cast<double>(x[c]) * x[c];
    const float r = 1.0f / std::sqrt(static_cast<float>(ss / dim) + eps);
    rstd[n] = r;
    for (int c = 0; c < dim; ++c) y[c] = weight[c] * (x[c] * r);
  }
}

// y = w ⊙ x·r with r = (mean(x²)+eps)^-½:
//   dx = r·(w⊙dy) − x·r³/C · Σ_c (w⊙dy⊙x),   dw = Σ_rows dy⊙x·r
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int rows, int dim, Workspace& ws) {
  const int threads = thread_count();
  float* partial = ws.get(0, static_cast<size_t>(threads) * dim);
  for (size_t i = 0; i < static_cast<size_t>(threads) * dim; ++i) partial[i] = 0.0f;
#pragma omp parallel
  {
    float* dw = partial + static_cast<size_t>(thread_index()) * dim;
#pragma omp for schedule(static)
    for (int n = 0; n < rows; ++n) {
      const float* x = inp + static_cast<size_t>(n) * dim;
      const float* dy = dout + static_cast<size_t>(n) * dim;
      float* dx = dinp + static_cast<size_t>(n) * dim;
      const float r = rstd[n];
      double dot = 0.0;
      for (int c = 0; c < dim; ++c) dot += static_cast<double>(weight[c] * dy[c]) * x[c];
      const float coef = static_cast<float>(dot) * r * r * r / dim;
      for (int c = 0; c < dim; ++c) {
        dx[c] += r * weight[c] * dy[c] - coef * x[c];
        dw[c] += dy[c] * x[c] * r;
      }
    }
  }
  // Fixed reduction order over thread slots keeps results reproducible for a thread count.
  for (int t = 0; t < threads; ++t)
    for (int c = 0; c < dim; ++c) dweight[c] += partial[static_cast<size_t>(t) * dim + c];
}

}  // namespace smolstage::cpu
