// Σ x² in double for the gradient norm: a fixed grid of per-block partial sums, then one block
// adds them in a fixed tree, so the clipping factor is identical run to run.
#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"
#include "cuda/ops/warp.cuh"

namespace smolstage::cuda {
namespace {

constexpr int kBlocks = 1024;
constexpr int kThreads = 256;

__device__ double block_sum(double x) {
  __shared__ double warp_sums[kThreads / 32];
  x = warp_sum(x);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = x;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  return total;  // valid in thread 0
}

__global__ void sum_squares_partial_kernel(double* partial, const float* x, size_t count) {
  double acc = 0.0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x; i < count;
       i += static_cast<size_t>(kBlocks) * kThreads) {
    const double v = x[i];
    acc += v * v;
  }
  const double total = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_partials_kernel(double* result, const double* partial) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < kBlocks; i += kThreads) acc += partial[i];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

double sum_squares(const float* x, size_t count, Workspace& ws) {
  double* partial = static_cast<double*>(ws.get(2, (kBlocks + 1) * sizeof(double)));
  sum_squares_partial_kernel<<<kBlocks, kThreads>>>(partial, x, count);
  CUDA_CHECK_LAUNCH("sum_squares_partial_kernel");
  sum_partials_kernel<<<1, kThreads>>>(partial + kBlocks, partial);
  CUDA_CHECK_LAUNCH("sum_partials_kernel");
  double result = 0.0;
  CUDA_CHECK(cudaMemcpy(&result, partial + kBlocks, sizeof(double), cudaMemcpyDeviceToHost));
  return result;
}

}  // namespace smolstage::cuda
