// Attention for KV-cache decoding (generation): the new queries of one sequence against every
// cached key up to their own position. Scores are materialized per (query, head) in scratch
// memory (at most past + n_new floats each), softmax in float with the row max subtracted, the
// same scaling (1/sqrt(D)) and GQA grouping (query head h reads KV head h / (H / KV)) as
// attention.cpp.
#include <cmath>

#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

namespace smolstage::cpu {

void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                      int heads, int kv_heads, int head_dim, Workspace& ws) {
  const int len = past + n_new, D = head_dim, group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int threads = thread_count();
  float* scratch = ws.get(7, static_cast<size_t>(threads) * static_cast<size_t>(len));
#pragma omp parallel for schedule(static)
  for (int job = 0; job < n_new * heads; ++job) {
    const int i = job / heads, h = job % heads, g = h / group;
    const int keys = past + i + 1;  // causal: key positions [0, past + i]
    float* s = scratch + static_cast<size_t>(thread_index()) * len;
    const float* qi = q + (static_cast<size_t>(i) * heads + h) * D;
    float maxv = -INFINITY;
    for (int j = 0; j < keys; ++j) {
      const float* kj = k_cache + (static_cast<size_t>(j) * kv_heads + g) * D;
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
      s[j] = dot * scale;
      maxv = s[j] > maxv ? s[j] : maxv;
    }
    double sum = 0.0;
    for (int j = 0; j < keys; ++j) {
      s[j] = std::exp(s[j] - maxv);
      sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* o = out + (static_cast<size_t>(i) * heads + h) * D;
    for (int d = 0; d < D; ++d) o[d] = 0.0f;
    for (int j = 0; j < keys; ++j) {
      const float p = s[j] * inv;
      const float* vj = v_cache + (static_cast<size_t>(j) * kv_heads + g) * D;
      for (int d = 0; d < D; ++d) o[d] += p * vj[d];
    }
  }
}

}  // namespace smolstage::cpu
