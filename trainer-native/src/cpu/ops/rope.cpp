#include "cpu/ops/ops.h"

namespace smolstage::cpu {
namespace {

// Hugging Face rotate_half: the first and second halves of each head form the (re, im) pairs.
//   forward:  (a, b) → (a·cos − b·sin, b·cos + a·sin)
//   backward: the transpose rotation, (a, b) → (a·cos + b·sin, b·cos − a·sin)
template <bool Inverse>
void rotate(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  const int half = head_dim / 2;
  const long long rows = static_cast<long long>(batch) * seq_len;
#pragma omp parallel for schedule(static)
  for (long long r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % seq_len);
    const float* c = cos + static_cast<size_t>(t) * half;
    const float* s = sin + static_cast<size_t>(t) * half;
    for (int h = 0; h < heads; ++h) {
      float* a = x + (static_cast<size_t>(r) * heads + h) * head_dim;
      float* b = a + half;
      for (int i = 0; i < half; ++i) {
        const float ai = a[i], bi = b[i];
        if (Inverse) {
          a[i] = ai * c[i] + bi * s[i];
          b[i] = bi * c[i] - ai * s[i];
        } else {
          a[i] = ai * c[i] - bi * s[i];
          b[i] = bi * c[i] + ai * s[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  rotate<false>(x, cos, sin, batch, seq_len, heads, head_dim);
}

void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  rotate<true>(dx, cos, sin, batch, seq_len, heads, head_dim);
}

}  // namespace smolstage::cpu
