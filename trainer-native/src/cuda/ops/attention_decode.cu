// Attention for KV-cache decoding: one block per (new query, head). The block scores every key
// up to the query's position into a device scratch row (scale 1/sqrt(D)), reduces the max and
// Σexp in shared memory, then thread d accumulates output column d over the keys. Straightforward
// and memory-bound; generation is one token at a time, so the GEMMs dominate anyway.
// Layouts: q, out [n_new, H, D]; k_cache, v_cache [past + n_new, KV, D]. head_dim ≤ 256.
#include <cmath>
#include <stdexcept>
#include <string>

#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void attention_decode_kernel(float* out, const float* q, const float* k_cache, const float* v_cache,
                                        float* scores, int past, int len, int heads, int kv_heads, int D,
                                        float scale) {
  __shared__ float reduce[kThreads];
  const int i = blockIdx.x / heads, h = blockIdx.x % heads, g = h / (heads / kv_heads);
  const int keys = past + i + 1;
  float* s = scores + static_cast<size_t>(blockIdx.x) * len;
  const float* qi = q + (static_cast<size_t>(i) * heads + h) * D;
  float local_max = -INFINITY;
  for (int j = threadIdx.x; j < keys; j += kThreads) {
    const float* kj = k_cache + (static_cast<size_t>(j) * kv_heads + g) * D;
    float dot = 0.0f;
    for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
    s[j] = dot * scale;
    local_max = fmaxf(local_max, s[j]);
  }
  reduce[threadIdx.x] = local_max;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) reduce[threadIdx.x] = fmaxf(reduce[threadIdx.x], reduce[threadIdx.x + stride]);
    __syncthreads();
  }
  const float maxv = reduce[0];
  __syncthreads();
  float local_sum = 0.0f;
  for (int j = threadIdx.x; j < keys; j += kThreads) {
    const float e = expf(s[j] - maxv);
    s[j] = e;
    local_sum += e;
  }
  reduce[threadIdx.x] = local_sum;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) reduce[threadIdx.x] += reduce[threadIdx.x + stride];
    __syncthreads();
  }
  const float inv = 1.0f / reduce[0];
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float acc = 0.0f;
    for (int j = 0; j < keys; ++j) acc += s[j] * v_cache[(static_cast<size_t>(j) * kv_heads + g) * D + d];
    out[(static_cast<size_t>(i) * heads + h) * D + d] = acc * inv;
  }
}

}  // namespace

void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                      int heads, int kv_heads, int head_dim, Workspace& ws) {
  if (n_new == 0) return;
  if (head_dim > kThreads) throw std::invalid_argument("attention_decode: head_dim " + std::to_string(head_dim) + " > 256");
  const int len = past + n_new;
  float* scores = static_cast<float*>(ws.get(7, static_cast<size_t>(n_new) * heads * len * sizeof(float)));
  attention_decode_kernel<<<n_new * heads, kThreads>>>(out, q, k_cache, v_cache, scores, past, len, heads, kv_heads,
                                                       head_dim, 1.0f / sqrtf(static_cast<float>(head_dim)));
  CUDA_CHECK_LAUNCH("attention_decode_kernel");
}

}  // namespace smolstage::cuda
