// Causal grouped-query attention, flash-attention style on the CPU: queries are processed in
// blocks, scores for a block are formed with one GEMM against the keys it may see, and only the
// per-row log-sum-exp is kept for the backward (which recomputes the probabilities). Memory is
// O(block · T) per thread instead of O(T²) per head.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

namespace smolstage::cpu {
namespace {

constexpr int kQueryBlock = 64;

struct HeadView {
  const float* q;
  const float* k;
  const float* v;
  size_t q_stride;   // floats between consecutive positions of q / out / dout
  size_t kv_stride;  // floats between consecutive positions of k / v
};

HeadView head_view(const float* q, const float* k, const float* v, const AttentionShape& s, int b, int h) {
  const int g = h / (s.num_heads / s.num_kv_heads);
  const size_t qs = static_cast<size_t>(s.num_heads) * s.head_dim;
  const size_t ks = static_cast<size_t>(s.num_kv_heads) * s.head_dim;
  const size_t qoff = static_cast<size_t>(b) * s.seq_len * qs + static_cast<size_t>(h) * s.head_dim;
  const size_t koff = static_cast<size_t>(b) * s.seq_len * ks + static_cast<size_t>(g) * s.head_dim;
  return {q + qoff, k + koff, v + koff, qs, ks};
}

// scores[r, j] = scale · q[i0+r] · k[j] for j < keys
void block_scores(float* scores, const HeadView& hv, int i0, int rows, int keys, int head_dim, float scale) {
  gemm(false, true, rows, keys, head_dim, scale, hv.q + static_cast<size_t>(i0) * hv.q_stride,
       static_cast<int>(hv.q_stride), hv.k, static_cast<int>(hv.kv_stride), 0.0f, scores, keys);
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& s, Workspace& ws) {
  const int T = s.seq_len, D = s.head_dim, H = s.num_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int threads = thread_count();
  float* scratch = ws.get(1, static_cast<size_t>(threads) * kQueryBlock * T);
  const int tasks = s.batch * H;
#pragma omp parallel
  {
    float* scores = scratch + static_cast<size_t>(thread_index()) * kQueryBlock * T;
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < tasks; ++task) {
      const int b = task / H, h = task % H;
      const HeadView hv = head_view(q, k, v, s, b, h);
      float* o = out + (hv.q - q);
      float* head_lse = lse + static_cast<size_t>(task) * T;
      for (int i0 = 0; i0 < T; i0 += kQueryBlock) {
        const int rows = std::min(kQueryBlock, T - i0);
        const int keys = i0 + rows;
        block_scores(scores, hv, i0, rows, keys, D, scale);
        for (int r = 0; r < rows; ++r) {
          float* row = scores + static_cast<size_t>(r) * keys;
          const int visible = i0 + r + 1;
          float maxv = -std::numeric_limits<float>::infinity();
          for (int j = 0; j < visible; ++j) maxv = std::max(maxv, row[j]);
          float sum = 0.0f;
          for (int j = 0; j < visible; ++j) {
            row[j] = std::exp(row[j] - maxv);
            sum += row[j];
          }
          const float inv = 1.0f / sum;
          for (int j = 0; j < visible; ++j) row[j] *= inv;
          for (int j = visible; j < keys; ++j) row[j] = 0.0f;
          head_lse[i0 + r] = maxv + std::log(sum);
        }
        gemm(false, false, rows, D, keys, 1.0f, scores, keys, hv.v, static_cast<int>(hv.kv_stride), 0.0f,
             o + static_cast<size_t>(i0) * hv.q_stride, static_cast<int>(hv.q_stride));
      }
    }
  }
}

// With P = softmax(S), dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)):
//   dQ = scale·dS·K,  dK = scale·dSᵀ·Q,  dV = Pᵀ·dO.
// Query heads sharing a KV head accumulate into per-query-head buffers that are summed at the
// end, so threads never write the same memory and the result does not depend on scheduling.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s, Workspace& ws) {
  const int T = s.seq_len, D = s.head_dim, H = s.num_heads, KV = s.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int threads = thread_count();
  const size_t block_floats = static_cast<size_t>(kQueryBlock) * T;
  float* scratch = ws.get(1, static_cast<size_t>(threads) * 2 * block_floats);
  const size_t head_floats = static_cast<size_t>(T) * D;
  const int tasks = s.batch * H;
  float* dk_heads = ws.get(2, static_cast<size_t>(tasks) * head_floats);
  float* dv_heads = ws.get(3, static_cast<size_t>(tasks) * head_floats);
  {
  #pragma omp parallel
    {
      float* probs = scratch + static_cast<size_t>(thread_index()) * 2 * block_floats;
      float* dprobs = probs + block_floats;
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < tasks; ++task) {
        const int b = task / H, h = task % H;
        const HeadView hv = head_view(q, k, v, s, b, h);
        const size_t off = static_cast<size_t>(hv.q - q);
        const float* o = out + off;
        const float* dO = dout + off;
        float* dQ = dq + off;
        const float* head_lse = lse + static_cast<size_t>(task) * T;
        float* dK = dk_heads + static_cast<size_t>(task) * head_floats;
        float* dV = dv_heads + static_cast<size_t>(task) * head_floats;
        std::fill(dK, dK + head_floats, 0.0f);
        std::fill(dV, dV + head_floats, 0.0f);
        const int ld = static_cast<int>(hv.q_stride), kvld = static_cast<int>(hv.kv_stride);
        for (int i0 = 0; i0 < T; i0 += kQueryBlock) {
          const int rows = std::min(kQueryBlock, T - i0);
          const int keys = i0 + rows;
          block_scores(probs, hv, i0, rows, keys, D, scale);
          gemm(false, true, rows, keys, D, 1.0f, dO + static_cast<size_t>(i0) * ld, ld, hv.v, kvld, 0.0f, dprobs,
               keys);
          for (int r = 0; r < rows; ++r) {
            const int i = i0 + r;
            float* p = probs + static_cast<size_t>(r) * keys;
            float* dp = dprobs + static_cast<size_t>(r) * keys;
            const float* o_i = o + static_cast<size_t>(i) * ld;
            const float* do_i = dO + static_cast<size_t>(i) * ld;
            float delta = 0.0f;
            for (int d = 0; d < D; ++d) delta += o_i[d] * do_i[d];
            const float m = head_lse[i];
            for (int j = 0; j <= i; ++j) {
              p[j] = std::exp(p[j] - m);
              dp[j] = p[j] * (dp[j] - delta);
            }
            for (int j = i + 1; j < keys; ++j) p[j] = dp[j] = 0.0f;
          }
          gemm(false, false, rows, D, keys, scale, dprobs, keys, hv.k, kvld, 0.0f, dQ + static_cast<size_t>(i0) * ld,
               ld);
          gemm(true, false, keys, D, rows, scale, dprobs, keys, hv.q + static_cast<size_t>(i0) * ld, ld, 1.0f, dK, D);
          gemm(true, false, keys, D, rows, 1.0f, probs, keys, dO + static_cast<size_t>(i0) * ld, ld, 1.0f, dV, D);
        }
      }
    }
  }
  const int group = H / KV;
  const long long rows = static_cast<long long>(s.batch) * T;
#pragma omp parallel for schedule(static)
  for (long long r = 0; r < rows; ++r) {
    const int b = static_cast<int>(r / T), t = static_cast<int>(r % T);
    for (int g = 0; g < KV; ++g) {
      float* dk_dst = dk + (static_cast<size_t>(r) * KV + g) * D;
      float* dv_dst = dv + (static_cast<size_t>(r) * KV + g) * D;
      for (int d = 0; d < D; ++d) dk_dst[d] = dv_dst[d] = 0.0f;
      for (int j = 0; j < group; ++j) {
        const size_t src = (static_cast<size_t>(b) * H + g * group + j) * head_floats + static_cast<size_t>(t) * D;
        for (int d = 0; d < D; ++d) {
          dk_dst[d] += dk_heads[src + d];
          dv_dst[d] += dv_heads[src + d];
        }
      }
    }
  }
}

}  // namespace smolstage::cpu
