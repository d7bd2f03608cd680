#include <algorithm>
#include <cstring>

#include "cpu/ops/ops.h"

namespace smolstage::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < rows; ++n)
    std::memcpy(out + static_cast<size_t>(n) * dim, table + static_cast<size_t>(tokens[n]) * dim, sizeof(float) * dim);
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) {
  // Repeated tokens would race if threads split rows; split columns instead so every thread
  // owns a slice of every table row, and the summation order stays fixed (deterministic).
  const int block = 64;
  const int blocks = (dim + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int bi = 0; bi < blocks; ++bi) {
    const int c0 = bi * block;
    const int c1 = std::min(dim, c0 + block);
    for (int n = 0; n < rows; ++n) {
      float* dst = dtable + static_cast<size_t>(tokens[n]) * dim;
      const float* src = dout + static_cast<size_t>(n) * dim;
      for (int c = c0; c < c1; ++c) dst[c] += src[c];
    }
  }
}

}  // namespace smolstage::cpu
