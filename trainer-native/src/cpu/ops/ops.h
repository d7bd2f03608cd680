// CPU kernels, one per file in this folder; each has a reference check in tests/test_ops.cpp.
// Flat loops over row-major buffers, OpenMP across rows/heads, BLAS for the matrix products.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace smolstage::cpu {

// Grow-only scratch memory so the training loop does not allocate once shapes are known.
class Workspace {
 public:
  float* get(size_t slot, size_t count) {
    if (slot >= buffers_.size()) buffers_.resize(slot + 1);
    if (buffers_[slot].size() < count) buffers_[slot].resize(count);
    return buffers_[slot].data();
  }

 private:
  std::vector<std::vector<float>> buffers_;
};

// gemm.cpp — row-major C = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans_x.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc);
// The portable implementation used when no BLAS is linked (also tested when one is).
void gemm_builtin(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc);
const char* gemm_library();

// embedding.cpp
void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim);

// rmsnorm.cpp
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim, float eps);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int rows, int dim, Workspace& ws);

// rope.cpp
void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim);
void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads, int head_dim);

// attention.cpp
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttentionShape& s, Workspace& ws);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                        const float* q, const float* k, const float* v, const AttentionShape& s, Workspace& ws);

// swiglu.cpp
void swiglu_forward(float* out, const float* gate, const float* up, size_t count);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t count);

// cross_entropy.cpp
void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                   const float* row_scale, bool want_grad);

// attention_decode.cpp — KV-cache attention (see Backend::attention_decode).
void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                      int heads, int kv_heads, int head_dim, Workspace& ws);

// adamw.cpp
void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h);

}  // namespace smolstage::cpu
