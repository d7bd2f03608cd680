// Causal grouped-query attention, flash style in fp32: probabilities are never stored; the
// forward keeps the per-row log-sum-exp and the backward recomputes P from it.
//   forward  one warp per query row, 8 rows per block sharing 32-key tiles of K and V in shared
//            memory; lane j scores key j of the tile, then an online softmax rescales the output
//            accumulator (each lane owns head_dim/32 output columns).
//   backward dQ with the forward's layout; dK and dV with one block per 32-key tile of a KV
//            head, lane j owning key j's gradient rows in registers while the block's warps walk
//            the query rows (every query head of the group) that see the tile, then summing the
//            warps in a fixed order. No atomics: the gradients are the same on every run.
// With P = softmax(S), dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)):
//   dQ = scale·dS·K,  dK = scale·dSᵀ·Q,  dV = Pᵀ·dO.
// Layouts: q, out, dout [B,T,H,D]; k, v [B,T,KV,D]; lse [B,H,T]. head_dim ≤ 128.
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"
#include "cuda/ops/warp.cuh"

namespace smolstage::cuda {
namespace {

constexpr int kTile = 32;         // keys per tile = lanes per warp
constexpr int kRowsPerBlock = 8;  // query rows (warps) per block in the forward and dQ kernels
constexpr int kKeyWarps = 4;      // warps per block in the dK/dV kernel

struct Dims {
  int T, H, KV, D;
  float scale;
  __device__ size_t q_index(int b, int t, int h) const { return ((static_cast<size_t>(b) * T + t) * H + h) * D; }
  __device__ size_t kv_index(int b, int t, int g) const { return ((static_cast<size_t>(b) * T + t) * KV + g) * D; }
  __device__ size_t lse_index(int b, int h, int t) const { return (static_cast<size_t>(b) * H + h) * T + t; }
};

// Loads keys [j0, j0+32) of one KV head into shared tiles (zeros past the end).
template <int kMaxD>
__device__ void load_kv_tile(float (*ks)[kMaxD + 1], float (*vs)[kMaxD + 1], const float* k, const float* v,
                             const Dims& s, int b, int g, int j0) {
  for (int e = threadIdx.x; e < kTile * s.D; e += blockDim.x) {
    const int jj = e / s.D, d = e % s.D, j = j0 + jj;
    const bool in = j < s.T;
    ks[jj][d] = in ? k[s.kv_index(b, j, g) + d] : 0.0f;
    vs[jj][d] = in ? v[s.kv_index(b, j, g) + d] : 0.0f;
  }
}

// Unrolled to the register width; the guard keeps head sizes below it exact.
template <int kMaxD>
__device__ float dot_row(const float* a, const float* b, int D) {
  float acc = 0.0f;
#pragma unroll
  for (int d = 0; d < kMaxD; ++d)
    if (d < D) acc += a[d] * b[d];
  return acc;
}

template <int kMaxD>
__global__ void attention_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                                         Dims s) {
  constexpr int kPerLane = kMaxD / 32;
  __shared__ float ks[kTile][kMaxD + 1];
  __shared__ float vs[kTile][kMaxD + 1];
  __shared__ float qs[kRowsPerBlock][kMaxD];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int b = blockIdx.y / s.H, h = blockIdx.y % s.H, g = h / (s.H / s.KV);
  const int i0 = blockIdx.x * kRowsPerBlock, i = i0 + warp;
  const bool active = i < s.T;
  if (active)
    for (int d = lane; d < s.D; d += 32) qs[warp][d] = q[s.q_index(b, i, h) + d];

  float acc[kPerLane] = {};
  float m = -INFINITY, l = 0.0f;
  const int last_row = min(s.T - 1, i0 + kRowsPerBlock - 1);
  for (int j0 = 0; j0 <= last_row; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and qs is written, first time)
    load_kv_tile<kMaxD>(ks, vs, k, v, s, b, g, j0);
    __syncthreads();
    if (!active || j0 > i) continue;
    const int j = j0 + lane;
    const float score = j <= i ? dot_row<kMaxD>(qs[warp], ks[lane], s.D) * s.scale : -INFINITY;
    const float m_new = fmaxf(m, warp_max(score));  // finite: key j0 ≤ i is visible
    const float correction = expf(m - m_new);
    const float p = j <= i ? expf(score - m_new) : 0.0f;
    l = l * correction + warp_sum(p);
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) acc[u] *= correction;
    const int visible = min(kTile, i - j0 + 1);
    for (int jj = 0; jj < visible; ++jj) {
      const float pj = __shfl_sync(kFullMask, p, jj);
#pragma unroll
      for (int u = 0; u < kPerLane; ++u) {
        const int d = lane + 32 * u;
        if (d < s.D) acc[u] += pj * vs[jj][d];
      }
    }
    m = m_new;
  }
  if (!active) return;
  const float inv = 1.0f / l;
#pragma unroll
  for (int u = 0; u < kPerLane; ++u) {
    const int d = lane + 32 * u;
    if (d < s.D) out[s.q_index(b, i, h) + d] = acc[u] * inv;
  }
  if (lane == 0) lse[s.lse_index(b, h, i)] = m + logf(l);
}

// delta[b,h,t] = Σ_d dout·out, one warp per (b, t, h) row.
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, Dims s, int rows) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;
  const float* o = out + static_cast<size_t>(r) * s.D;
  const float* dO = dout + static_cast<size_t>(r) * s.D;
  float acc = 0.0f;
  for (int d = lane; d < s.D; d += 32) acc += o[d] * dO[d];
  acc = warp_sum(acc);
  const int h = r % s.H, t = (r / s.H) % s.T, b = r / (s.H * s.T);
  if (lane == 0) delta[s.lse_index(b, h, t)] = acc;
}

template <int kMaxD>
__global__ void attention_dq_kernel(float* dq, const float* dout, const float* lse, const float* delta, const float* q,
                                    const float* k, const float* v, Dims s) {
  constexpr int kPerLane = kMaxD / 32;
  __shared__ float ks[kTile][kMaxD + 1];
  __shared__ float vs[kTile][kMaxD + 1];
  __shared__ float qs[kRowsPerBlock][kMaxD];
  __shared__ float dos[kRowsPerBlock][kMaxD];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int b = blockIdx.y / s.H, h = blockIdx.y % s.H, g = h / (s.H / s.KV);
  const int i0 = blockIdx.x * kRowsPerBlock, i = i0 + warp;
  const bool active = i < s.T;
  float row_lse = 0.0f, row_delta = 0.0f;
  if (active) {
    for (int d = lane; d < s.D; d += 32) {
      qs[warp][d] = q[s.q_index(b, i, h) + d];
      dos[warp][d] = dout[s.q_index(b, i, h) + d];
    }
    row_lse = lse[s.lse_index(b, h, i)];
    row_delta = delta[s.lse_index(b, h, i)];
  }
  float acc[kPerLane] = {};
  const int last_row = min(s.T - 1, i0 + kRowsPerBlock - 1);
  for (int j0 = 0; j0 <= last_row; j0 += kTile) {
    __syncthreads();
    load_kv_tile<kMaxD>(ks, vs, k, v, s, b, g, j0);
    __syncthreads();
    if (!active || j0 > i) continue;
    const int j = j0 + lane;
    float ds = 0.0f;
    if (j <= i) {
      const float p = expf(dot_row<kMaxD>(qs[warp], ks[lane], s.D) * s.scale - row_lse);
      const float dp = dot_row<kMaxD>(dos[warp], vs[lane], s.D);
      ds = p * (dp - row_delta);
    }
    const int visible = min(kTile, i - j0 + 1);
    for (int jj = 0; jj < visible; ++jj) {
      const float dsj = __shfl_sync(kFullMask, ds, jj);
#pragma unroll
      for (int u = 0; u < kPerLane; ++u) {
        const int d = lane + 32 * u;
        if (d < s.D) acc[u] += dsj * ks[jj][d];
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int u = 0; u < kPerLane; ++u) {
    const int d = lane + 32 * u;
    if (d < s.D) dq[s.q_index(b, i, h) + d] = acc[u] * s.scale;
  }
}

template <int kMaxD>
__global__ void attention_dkv_kernel(float* dk, float* dv, const float* dout, const float* lse, const float* delta,
                                     const float* q, const float* k, const float* v, Dims s) {
  __shared__ float ks[kTile][kMaxD + 1];
  __shared__ float vs[kTile][kMaxD + 1];
  __shared__ float qs[kKeyWarps][kMaxD];
  __shared__ float dos[kKeyWarps][kMaxD];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int b = blockIdx.y / s.KV, g = blockIdx.y % s.KV;
  const int group = s.H / s.KV;
  const int j0 = blockIdx.x * kTile, j = j0 + lane;
  load_kv_tile<kMaxD>(ks, vs, k, v, s, b, g, j0);
  __syncthreads();

  float dk_acc[kMaxD] = {}, dv_acc[kMaxD] = {};
  const int rows_per_head = s.T - j0;  // query rows j0 … T−1 can see this tile
  for (int r = warp; r < group * rows_per_head; r += kKeyWarps) {
    const int h = g * group + r / rows_per_head, i = j0 + r % rows_per_head;
    for (int d = lane; d < s.D; d += 32) {
      qs[warp][d] = q[s.q_index(b, i, h) + d];
      dos[warp][d] = dout[s.q_index(b, i, h) + d];
    }
    __syncwarp();
    if (j <= i) {
      const float p = expf(dot_row<kMaxD>(qs[warp], ks[lane], s.D) * s.scale - lse[s.lse_index(b, h, i)]);
      const float dp = dot_row<kMaxD>(dos[warp], vs[lane], s.D);
      const float ds = p * (dp - delta[s.lse_index(b, h, i)]);
#pragma unroll
      for (int d = 0; d < kMaxD; ++d) {
        if (d < s.D) {
          dv_acc[d] += p * dos[warp][d];
          dk_acc[d] += ds * qs[warp][d];
        }
      }
    }
    __syncwarp();  // the row buffers are rewritten next iteration
  }

  // Sum the warps' partial gradients in warp order, reusing the K/V tiles as accumulators.
  __syncthreads();
  for (int w = 0; w < kKeyWarps; ++w) {
    if (warp == w) {
#pragma unroll
      for (int d = 0; d < kMaxD; ++d) {
        if (d < s.D) {
          ks[lane][d] = (w == 0 ? 0.0f : ks[lane][d]) + dk_acc[d];
          vs[lane][d] = (w == 0 ? 0.0f : vs[lane][d]) + dv_acc[d];
        }
      }
    }
    __syncthreads();
  }
  for (int e = threadIdx.x; e < kTile * s.D; e += blockDim.x) {
    const int jj = e / s.D, d = e % s.D;
    if (j0 + jj >= s.T) continue;
    const size_t at = s.kv_index(b, j0 + jj, g) + d;
    dk[at] = ks[jj][d] * s.scale;
    dv[at] = vs[jj][d];
  }
}

Dims make_dims(const AttentionShape& s) {
  if (s.head_dim > 128 || s.head_dim <= 0)
    throw std::invalid_argument("cuda attention supports head_dim 1..128, got " + std::to_string(s.head_dim));
  return {s.seq_len, s.num_heads, s.num_kv_heads, s.head_dim, 1.0f / std::sqrt(static_cast<float>(s.head_dim))};
}

// Calls fn with the smallest supported register width ≥ head_dim.
template <typename Fn>
void dispatch_head_dim(int head_dim, Fn&& fn) {
  if (head_dim <= 32) fn(std::integral_constant<int, 32>{});
  else if (head_dim <= 64) fn(std::integral_constant<int, 64>{});
  else fn(std::integral_constant<int, 128>{});
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& shape) {
  const Dims s = make_dims(shape);
  if (shape.batch == 0 || s.T == 0) return;
  const dim3 grid(blocks_for(s.T, kRowsPerBlock), shape.batch * s.H);
  dispatch_head_dim(s.D, [&](auto width) {
    attention_forward_kernel<decltype(width)::value><<<grid, kRowsPerBlock * 32>>>(out, lse, q, k, v, s);
  });
  CUDA_CHECK_LAUNCH("attention_forward_kernel");
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& shape, Workspace& ws) {
  const Dims s = make_dims(shape);
  if (shape.batch == 0 || s.T == 0) return;
  const int rows = shape.batch * s.T * s.H;
  float* delta = static_cast<float*>(ws.get(1, static_cast<size_t>(rows) * sizeof(float)));
  attention_delta_kernel<<<blocks_for(rows, kRowsPerBlock), kRowsPerBlock * 32>>>(delta, dout, out, s, rows);
  CUDA_CHECK_LAUNCH("attention_delta_kernel");
  const dim3 q_grid(blocks_for(s.T, kRowsPerBlock), shape.batch * s.H);
  const dim3 kv_grid(blocks_for(s.T, kTile), shape.batch * s.KV);
  dispatch_head_dim(s.D, [&](auto width) {
    constexpr int kMaxD = decltype(width)::value;
    attention_dq_kernel<kMaxD><<<q_grid, kRowsPerBlock * 32>>>(dq, dout, lse, delta, q, k, v, s);
    CUDA_CHECK_LAUNCH("attention_dq_kernel");
    attention_dkv_kernel<kMaxD><<<kv_grid, kKeyWarps * 32>>>(dk, dv, dout, lse, delta, q, k, v, s);
    CUDA_CHECK_LAUNCH("attention_dkv_kernel");
  });
}

}  // namespace smolstage::cuda
