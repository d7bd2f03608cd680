// Linear layers through cuBLAS. cuBLAS is column-major: a row-major [R,C] buffer is its [C,R]
// matrix, i.e. the transpose, so each row-major product below is issued as its transpose.
// TF32 or plain fp32 is chosen once on the handle (cublasSetMathMode).
#include "cuda/check.cuh"
#include "cuda/ops/ops.cuh"

namespace smolstage::cuda {

// out[N,OC] = inp[N,C]·W[OC,C]ᵀ  ⇔  outᵀ[OC,N] = W·inpᵀ, with W seen by cuBLAS as Wᵀ[C,OC].
void matmul_forward(cublasHandle_t handle, float* out, const float* inp, const float* weight, int rows, int in_dim,
                    int out_dim, bool accumulate) {
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, out_dim, rows, in_dim, &one, weight, in_dim, inp, in_dim,
                           &beta, out, out_dim));
}

// dinp[N,C] = dout[N,OC]·W[OC,C]  ⇔  dinpᵀ[C,N] = Wᵀ·doutᵀ
// dW[OC,C] += doutᵀ·inp           ⇔  dWᵀ[C,OC] += inpᵀ·dout
void matmul_backward(cublasHandle_t handle, float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int rows, int in_dim, int out_dim, bool accumulate_dinp) {
  const float one = 1.0f, beta = accumulate_dinp ? 1.0f : 0.0f;
  CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, in_dim, rows, out_dim, &one, weight, in_dim, dout,
                           out_dim, &beta, dinp, in_dim));
  CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, in_dim, out_dim, rows, &one, inp, in_dim, dout, out_dim,
                           &one, dweight, in_dim));
}

}  // namespace smolstage::cuda
