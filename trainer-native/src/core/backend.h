// The compute interface the model is written against. A backend owns its memory (host RAM for
// cpu, device memory for cuda); the model only passes the pointers it got from alloc() back in.
// Matrices are row-major; weights use the Hugging Face [out_features, in_features] layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace smolstage {

struct AttentionShape {
  int batch;
  int seq_len;
  int num_heads;
  int num_kv_heads;
  int head_dim;
};

struct AdamWHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;  // already 0 for tensors that are not decayed
  int64_t step;        // 1-based, for bias correction
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;
  // Applied by the caller's thread before each batch of work (Node runs calls on pool threads).
  virtual void set_threads(int threads) = 0;

  // Memory. alloc() returns zeroed storage.
  virtual float* alloc(size_t count) = 0;
  virtual int32_t* alloc_ids(size_t count) = 0;
  virtual void release(void* ptr) = 0;
  virtual void upload(float* dst, const float* host_src, size_t count) = 0;
  virtual void download(float* host_dst, const float* src, size_t count) = 0;
  virtual void upload_ids(int32_t* dst, const int32_t* host_src, size_t count) = 0;
  virtual void fill(float* x, size_t count, float value) = 0;
  virtual void copy(float* dst, const float* src, size_t count) = 0;

  // out[n,:] = table[tokens[n],:]
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim) = 0;
  // dtable[tokens[n],:] += dout[n,:]
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) = 0;

  // out[N,OC] (=, or += when accumulate) inp[N,C] · weight[OC,C]ᵀ
  virtual void matmul_forward(float* out, const float* inp, const float* weight, int rows, int in_dim, int out_dim,
                              bool accumulate) = 0;
  // dinp (=, or += when accumulate_dinp) dout · weight; dweight += doutᵀ · inp
  virtual void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                               int rows, int in_dim, int out_dim, bool accumulate_dinp) = 0;

  // out = inp * rsqrt(mean(inp²) + eps) * weight; rstd[n] saved for the backward.
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim,
                               float eps) = 0;
  // dinp += ..., dweight += ...
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                                const float* rstd, int rows, int dim) = 0;

  // In-place rotary embedding (HF rotate_half convention) of x[B,T,heads,head_dim]; cos/sin are
  // [T, head_dim/2] tables. The backward applies the inverse rotation to the gradient.
  virtual void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads,
                            int head_dim) = 0;
  virtual void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads,
                             int head_dim) = 0;

  // Causal grouped-query attention. q,out: [B,T,H,D]; k,v: [B,T,KV,D]; lse: [B,H,T] log-sum-exp of
  // the scaled scores, saved for the backward, which recomputes probabilities from it.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                 const AttentionShape& s) = 0;
  // dq, dk, dv are overwritten.
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                                  const float* lse, const float* q, const float* k, const float* v,
                                  const AttentionShape& s) = 0;

  // out = silu(gate) * up
  virtual void swiglu_forward(float* out, const float* gate, const float* up, size_t count) = 0;
  // dgate, dup overwritten
  virtual void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               size_t count) = 0;

  // losses[n] = -log softmax(logits[n])[targets[n]]; with want_grad the logits are replaced by
  // s_n * (softmax - onehot(target)), s_n = row_scale[n] when row_scale is given (per-token loss
  // weights, DPO coefficients; may be negative or 0), else grad_scale. `losses` and `row_scale`
  // are backend memory.
  virtual void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab,
                             float grad_scale, const float* row_scale, bool want_grad) = 0;

  // Attention for KV-cache decoding of one sequence: n_new queries at positions past .. past+n_new-1
  // attend causally to the cached keys/values of positions [0, past + n_new). q, out: [n_new, H, D];
  // k_cache, v_cache: [past + n_new, KV, D] (RoPE already applied to q and k). Forward only.
  virtual void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new,
                                int past, int heads, int kv_heads, int head_dim) = 0;

  virtual double sum_squares(const float* x, size_t count) = 0;
  virtual void scale(float* x, size_t count, float factor) = 0;
  virtual void adamw_update(float* param, const float* grad, float* m, float* v, size_t count,
                            const AdamWHyper& h) = 0;
};

// "cpu" always; "cuda" only in builds with the CUDA backend. Throws naming the choices.
std::unique_ptr<Backend> make_backend(const std::string& name);

}  // namespace smolstage
