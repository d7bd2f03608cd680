// The CUDA backend: device memory from cudaMalloc, fp32 storage, cuBLAS GEMMs, one kernel file
// per op in ops/. Everything runs on the legacy default stream, so host copies (upload,
// download, sum_squares) order themselves after the kernels before them without extra syncs.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "cuda/check.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/ops/ops.cuh"

namespace smolstage {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(bool tf32) : tf32_(tf32) {
    int count = 0;
    CUDA_CHECK(cudaGetDeviceCount(&count));
    if (count == 0) throw std::runtime_error("backend 'cuda': no CUDA device is visible; use backend 'cpu'");
    CUDA_CHECK(cudaGetDevice(&device_));
    CUDA_CHECK(cudaGetDeviceProperties(&props_, device_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }
  ~CudaBackend() override {
    if (cublas_) cublasDestroy(cublas_);
  }

  std::string name() const override { return "cuda"; }
  std::string describe() const override {
    return "cuda (" + std::string(props_.name) + ", sm_" + std::to_string(props_.major) +
           std::to_string(props_.minor) + ", fp32 storage, cuBLAS " + (tf32_ ? "TF32" : "fp32") + " GEMMs, " +
           std::to_string((held_bytes_ + workspace_.bytes()) >> 20) + " MiB device memory held)";
  }
  // Node runs calls on pool threads; the current device is per host thread.
  void set_threads(int) override { CUDA_CHECK(cudaSetDevice(device_)); }

  float* alloc(size_t count) override { return static_cast<float*>(zeroed(count * sizeof(float))); }
  int32_t* alloc_ids(size_t count) override { return static_cast<int32_t*>(zeroed(count * sizeof(int32_t))); }
  // Called from destructors: report instead of throwing.
  void release(void* ptr) override {
    const auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      held_bytes_ -= it->second;
      sizes_.erase(it);
    }
    const cudaError_t err = cudaFree(ptr);
    if (err != cudaSuccess) std::fprintf(stderr, "smolstage cuda: cudaFree failed: %s\n", cudaGetErrorString(err));
  }
  void upload(float* dst, const float* src, size_t count) override {
    CUDA_CHECK(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyHostToDevice));
  }
  void download(float* dst, const float* src, size_t count) override {
    CUDA_CHECK(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost));
  }
  void upload_ids(int32_t* dst, const int32_t* src, size_t count) override {
    CUDA_CHECK(cudaMemcpy(dst, src, count * sizeof(int32_t), cudaMemcpyHostToDevice));
  }
  void fill(float* x, size_t count, float value) override { cuda::fill(x, count, value); }
  void copy(float* dst, const float* src, size_t count) override {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice, 0));
  }

  void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim) override {
    cuda::embedding_forward(out, tokens, table, rows, dim);
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) override {
    cuda::embedding_backward(dtable, dout, tokens, rows, dim);
  }
  void matmul_forward(float* out, const float* inp, const float* weight, int rows, int in_dim, int out_dim,
                      bool accumulate) override {
    cuda::matmul_forward(cublas_, out, inp, weight, rows, in_dim, out_dim, accumulate);
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int rows,
                       int in_dim, int out_dim, bool accumulate_dinp) override {
    cuda::matmul_backward(cublas_, dinp, dweight, dout, inp, weight, rows, in_dim, out_dim, accumulate_dinp);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim,
                       float eps) override {
    cuda::rmsnorm_forward(out, rstd, inp, weight, rows, dim, eps);
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int rows, int dim) override {
    cuda::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, rows, dim, workspace_);
  }
  void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads,
                    int head_dim) override {
    cuda::rope_forward(x, cos, sin, batch, seq_len, heads, head_dim);
  }
  void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads,
                     int head_dim) override {
    cuda::rope_backward(dx, cos, sin, batch, seq_len, heads, head_dim);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& s) override {
    cuda::attention_forward(out, lse, q, k, v, s);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                          const float* q, const float* k, const float* v, const AttentionShape& s) override {
    cuda::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s, workspace_);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, size_t count) override {
    cuda::swiglu_forward(out, gate, up, count);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                       size_t count) override {
    cuda::swiglu_backward(dgate, dup, dout, gate, up, count);
  }
  void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                     const float* row_scale, bool want_grad) override {
    cuda::cross_entropy(losses, logits, targets, rows, vocab, grad_scale, row_scale, want_grad);
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                        int heads, int kv_heads, int head_dim) override {
    cuda::attention_decode(out, q, k_cache, v_cache, n_new, past, heads, kv_heads, head_dim, workspace_);
  }
  double sum_squares(const float* x, size_t count) override { return cuda::sum_squares(x, count, workspace_); }
  void scale(float* x, size_t count, float factor) override { cuda::scale(x, count, factor); }
  void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h) override {
    cuda::adamw_update(param, grad, m, v, count, h);
  }

 private:
  bool tf32_;
  int device_ = 0;
  cudaDeviceProp props_{};
  cublasHandle_t cublas_ = nullptr;
  cuda::Workspace workspace_;
  std::unordered_map<void*, size_t> sizes_;  // for describe(): what this backend holds
  size_t held_bytes_ = 0;

  void* zeroed(size_t bytes) {
    bytes = bytes ? bytes : 4;
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes));
    sizes_[p] = bytes;
    held_bytes_ += bytes;
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
  }
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(bool tf32) { return std::make_unique<CudaBackend>(tf32); }

namespace cuda {

Workspace::~Workspace() {
  for (auto& b : buffers_) cudaFree(b.ptr);
}

void* Workspace::get(size_t slot, size_t bytes) {
  if (slot >= buffers_.size()) buffers_.resize(slot + 1);
  Buffer& b = buffers_[slot];
  if (b.bytes < bytes) {
    // cudaFree waits for kernels still reading the old buffer.
    CUDA_CHECK(cudaFree(b.ptr));
    b.ptr = nullptr;
    b.bytes = 0;
    CUDA_CHECK(cudaMalloc(&b.ptr, bytes));
    b.bytes = bytes;
  }
  return b.ptr;
}

size_t Workspace::bytes() const {
  size_t total = 0;
  for (const auto& b : buffers_) total += b.bytes;
  return total;
}

}  // namespace cuda
}  // namespace smolstage
