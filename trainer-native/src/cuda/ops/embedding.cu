#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {
namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* table, int rows, int dim) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(rows) * dim) return;
  const size_t n = i / dim, c = i % dim;
  out[i] = table[static_cast<size_t>(tokens[n]) * dim + c];
}

// Repeated tokens add into the same table row, hence atomics: the order of those additions
// varies between runs, so this gradient is reproducible only to rounding.
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(rows) * dim) return;
  const size_t n = i / dim, c = i % dim;
  atomicAdd(dtable + static_cast<size_t>(tokens[n]) * dim + c, dout[i]);
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim) {
  const size_t count = static_cast<size_t>(rows) * dim;
  if (count == 0) return;
  embedding_forward_kernel<<<blocks_for(count, 256), 256>>>(out, tokens, table, rows, dim);
  CUDA_CHECK_LAUNCH("embedding_forward_kernel");
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) {
  const size_t count = static_cast<size_t>(rows) * dim;
  if (count == 0) return;
  embedding_backward_kernel<<<blocks_for(count, 256), 256>>>(dtable, dout, tokens, rows, dim);
  CUDA_CHECK_LAUNCH("embedding_backward_kernel");
}

}  // namespace smolstage::cuda
