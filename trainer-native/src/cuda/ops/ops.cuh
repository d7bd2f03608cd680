// CUDA kernels, one op per file in this folder, all on the default stream. Each has a reference
// check against the CPU backend in tests/cuda_ops_test.cpp. Flat kernels over row-major fp32
// buffers with the same layouts and semantics as backend.h.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace smolstage::cuda {

// Grow-only device scratch memory, one buffer per slot, so steady-state steps do not allocate.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace();
  void* get(size_t slot, size_t bytes);
  size_t bytes() const;

 private:
  struct Buffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  std::vector<Buffer> buffers_;
};

inline unsigned int blocks_for(size_t count, int threads) {
  return static_cast<unsigned int>((count + threads - 1) / threads);
}

// matmul.cu
void matmul_forward(cublasHandle_t handle, float* out, const float* inp, const float* weight, int rows, int in_dim,
                    int out_dim, bool accumulate);
void matmul_backward(cublasHandle_t handle, float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int rows, int in_dim, int out_dim, bool accumulate_dinp);

// embedding.cu
void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim);

// rmsnorm.cu
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int rows, int dim, Workspace& ws);

// rope.cu
void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim);
void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim);

// attention.cu
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& s);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s, Workspace& ws);

// swiglu.cu
void swiglu_forward(float* out, const float* gate, const float* up, size_t count);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t count);

// cross_entropy.cu
void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                   const float* row_scale, bool want_grad);

// attention_decode.cu — KV-cache attention (see Backend::attention_decode).
void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                      int heads, int kv_heads, int head_dim, Workspace& ws);

// sum_squares.cu
double sum_squares(const float* x, size_t count, Workspace& ws);

// elementwise.cu
void fill(float* x, size_t count, float value);
void scale(float* x, size_t count, float factor);

// adamw.cu
void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h);

}  // namespace smolstage::cuda
