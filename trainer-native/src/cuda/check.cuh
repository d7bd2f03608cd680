// Error checks that name the failing call, so a message from a GPU machine says what broke.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace smolstage::cuda {

inline void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + call + " (" + file + ":" + std::to_string(line) +
                             "): " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

inline void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + call + " (" + file + ":" + std::to_string(line) +
                             "): " + cublasGetStatusName(status) + ": " + cublasGetStatusString(status));
}

}  // namespace smolstage::cuda

#define CUDA_CHECK(call) ::smolstage::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::smolstage::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: configuration errors surface here, faults at the next synchronizing call.
#define CUDA_CHECK_LAUNCH(kernel) \
  ::smolstage::cuda::check_cuda(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)
