// RMSNorm, one warp per row. The weight gradient is a column sum over rows: partial sums over
// fixed chunks of rows, then the chunks in order, so the result is the same on every run.
#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"
#include "cuda/ops/warp.cuh"

namespace smolstage::cuda {
namespace {

constexpr int kRowsPerBlock = 8;      // warps per block in the row kernels
constexpr int kRowsPerChunk = 128;    // rows summed by one block of the weight-gradient kernel
constexpr int kChunkThreadsY = 8;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int rows,
                                       int dim, float eps) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (n >= rows) return;
  const float* x = inp + static_cast<size_t>(n) * dim;
  float* y = out + static_cast<size_t>(n) * dim;
  float ss = 0.0f;
  for (int c = lane; c < dim; c += 32) ss += x[c] * x[c];
  ss = warp_sum(ss);
  const float r = 1.0f / sqrtf(ss / dim + eps);
  if (lane == 0) rstd[n] = r;
  for (int c = lane; c < dim; c += 32) y[c] = weight[c] * (x[c] * r);
}

// y = w ⊙ x·r with r = (mean(x²)+eps)^-½:  dx += r·(w⊙dy) − x·r³/C · Σ_c (w⊙dy⊙x)
__global__ void rmsnorm_backward_input_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                              const float* rstd, int rows, int dim) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  if (n >= rows) return;
  const float* x = inp + static_cast<size_t>(n) * dim;
  const float* dy = dout + static_cast<size_t>(n) * dim;
  float* dx = dinp + static_cast<size_t>(n) * dim;
  const float r = rstd[n];
  float dot = 0.0f;
  for (int c = lane; c < dim; c += 32) dot += weight[c] * dy[c] * x[c];
  dot = warp_sum(dot);
  const float coef = dot * r * r * r / dim;
  for (int c = lane; c < dim; c += 32) dx[c] += r * weight[c] * dy[c] - coef * x[c];
}

// partial[chunk, c] = Σ over the chunk's rows of dy·x·r. Block (32, kChunkThreadsY).
__global__ void rmsnorm_weight_partial_kernel(float* partial, const float* dout, const float* inp, const float* rstd,
                                              int rows, int dim) {
  __shared__ float sums[kChunkThreadsY][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int chunk = blockIdx.y;
  const int n_end = min(rows, (chunk + 1) * kRowsPerChunk);
  float acc = 0.0f;
  if (c < dim)
    for (int n = chunk * kRowsPerChunk + threadIdx.y; n < n_end; n += kChunkThreadsY) {
      const size_t i = static_cast<size_t>(n) * dim + c;
      acc += dout[i] * inp[i] * rstd[n];
    }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < dim) {
    float total = 0.0f;
    for (int y = 0; y < kChunkThreadsY; ++y) total += sums[y][threadIdx.x];
    partial[static_cast<size_t>(chunk) * dim + c] = total;
  }
}

__global__ void rmsnorm_weight_sum_kernel(float* dweight, const float* partial, int chunks, int dim) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= dim) return;
  float total = 0.0f;
  for (int k = 0; k < chunks; ++k) total += partial[static_cast<size_t>(k) * dim + c];
  dweight[c] += total;
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim, float eps) {
  if (rows == 0) return;
  rmsnorm_forward_kernel<<<blocks_for(rows, kRowsPerBlock), kRowsPerBlock * 32>>>(out, rstd, inp, weight, rows, dim,
                                                                                  eps);
  CUDA_CHECK_LAUNCH("rmsnorm_forward_kernel");
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int rows, int dim, Workspace& ws) {
  if (rows == 0) return;
  rmsnorm_backward_input_kernel<<<blocks_for(rows, kRowsPerBlock), kRowsPerBlock * 32>>>(dinp, dout, inp, weight,
                                                                                         rstd, rows, dim);
  CUDA_CHECK_LAUNCH("rmsnorm_backward_input_kernel");
  const int chunks = static_cast<int>(blocks_for(rows, kRowsPerChunk));
  float* partial = static_cast<float*>(ws.get(0, static_cast<size_t>(chunks) * dim * sizeof(float)));
  rmsnorm_weight_partial_kernel<<<dim3(blocks_for(dim, 32), chunks), dim3(32, kChunkThreadsY)>>>(partial, dout, inp,
                                                                                                 rstd, rows, dim);
  CUDA_CHECK_LAUNCH("rmsnorm_weight_partial_kernel");
  rmsnorm_weight_sum_kernel<<<blocks_for(dim, 256), 256>>>(dweight, partial, chunks, dim);
  CUDA_CHECK_LAUNCH("rmsnorm_weight_sum_kernel");
}

}  // namespace smolstage::cuda
