#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

// Hugging Face rotate_half: the first and second halves of each head form the (re, im) pairs.
//   forward:  (a, b) → (a·cos − b·sin, b·cos + a·sin)
//   backward: the transpose rotation, (a, b) → (a·cos + b·sin, b·cos − a·sin)
// One thread per pair; x is [B·T, heads, head_dim].
template <bool Inverse>
__global__ void rope_kernel(float* x, const float* cos, const float* sin, int seq_len, int heads, int half,
                            size_t pairs) {
  const size_t p = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= pairs) return;
  const int i = static_cast<int>(p % half);
  const size_t head_row = p / half;  // (b·T + t)·heads + h
  const int t = static_cast<int>((head_row / heads) % seq_len);
  float* a = x + head_row * 2 * half + i;
  float* b = a + half;
  const float c = cos[static_cast<size_t>(t) * half + i], s = sin[static_cast<size_t>(t) * half + i];
  const float ai = *a, bi = *b;
  if (Inverse) {
    *a = ai * c + bi * s;
    *b = bi * c - ai * s;
  } else {
    *a = ai * c - bi * s;
    *b = bi * c + ai * s;
  }
}

template <bool Inverse>
void rotate(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  const int half = head_dim / 2;
  const size_t pairs = static_cast<size_t>(batch) * seq_len * heads * half;
  if (pairs == 0) return;
  rope_kernel<Inverse><<<blocks_for(pairs, 256), 256>>>(x, cos, sin, seq_len, heads, half, pairs);
  CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  rotate<false>(x, cos, sin, batch, seq_len, heads, head_dim);
}

void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim) {
  rotate<true>(dx, cos, sin, batch, seq_len, heads, head_dim);
}

}  // namespace smolstage::cuda
