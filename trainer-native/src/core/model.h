// The Llama / SmolLM2 network written against the Backend interface: parameter layout with
// Hugging Face tensor names, activations for one micro-batch, forward, loss head and backward.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/config.h"
#include "core/rng.h"

namespace smolstage {

struct ParamTensor {
  std::string name;  // Hugging Face LlamaForCausalLM name
  std::vector<int64_t> shape;
  size_t offset = 0;  // into the flat parameter / gradient / moment buffers
  size_t numel = 0;
  bool decay = true;  // weight decay applies (matrices and embeddings, not norm weights)
};

class Model {
 public:
  Model(const ModelConfig& config, Backend& backend);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ParamTensor* find_tensor(const std::string& name) const;
  size_t num_params() const { return num_params_; }
  float* params() { return params_; }
  float* grads() { return grads_; }

  // Hugging Face initialization: every matrix ~ N(0, initializer_range), norm weights = 1.
  void init_weights(Rng& rng);
  void set_rope_theta(double theta);

  // Runs the network up to the final norm for `batch` rows of `seq_len` token ids (host memory).
  void forward(const int32_t* host_inputs, int batch, int seq_len);
  // LM head + cross-entropy on the last forward. Returns the summed loss over rows; per-row
  // losses go to host_row_losses when given. With want_grad, gradients scaled by grad_scale (or,
  // when host_row_scale is given, row n's by host_row_scale[n]: per-token loss weights, DPO
  // coefficients) are accumulated into the LM-head weight and kept for backward().
  double head_loss(const int32_t* host_targets, float grad_scale, bool want_grad, float* host_row_losses,
                   const float* host_row_scale = nullptr);
  // Accumulates parameter gradients of the last head_loss(want_grad = true). The backward runs
  // from the last layer to the first, so the flat gradient buffer fills from its end: when
  // given, on_ready(offset) is called each time gradients [offset, num_params) are final for
  // this backward (after the final norm, after each layer, after the embedding: offset 0).
  void backward(const std::function<void(size_t)>& on_ready = {});
  // Logits [batch·seq_len, vocab] of the last forward, into host memory.
  void logits(float* host_out);

  // KV-cache decoding of one sequence (core/generate.cpp), independent of the training
  // activations. begin_decode allocates keys/values for max_len positions; decode() appends n
  // tokens at positions [decode_length(), decode_length() + n) and writes the logits of the last
  // of them to host_logits (vocab floats); end_decode frees the cache.
  void begin_decode(int max_len);
  void decode(const int32_t* host_ids, int n, float* host_logits);
  void end_decode();
  int decode_length() const { return decode_len_; }

 private:
  struct Layer {
    float *ln1, *wq, *wk, *wv, *wo, *ln2, *wg, *wu, *wd;
  };
  struct Activations {
    float *res, *ln1, *rstd1, *q, *k, *v, *att, *lse, *res_mid, *ln2, *rstd2, *gate, *up, *act;
  };

  ModelConfig config_;
  Backend& be_;
  std::vector<ParamTensor> tensors_;
  size_t num_params_ = 0;
  float* params_ = nullptr;
  float* grads_ = nullptr;

  int batch_ = 0, seq_len_ = 0, rows_ = 0, head_chunk_ = 0, rope_len_ = 0;
  double rope_theta_applied_ = 0;
  std::vector<void*> activation_memory_;
  int32_t *ids_ = nullptr, *targets_ = nullptr;
  float *acts_base_ = nullptr, *lnf_ = nullptr, *rstdf_ = nullptr, *dlnf_ = nullptr;
  float *logits_ = nullptr, *row_losses_ = nullptr, *rope_cos_ = nullptr, *rope_sin_ = nullptr;
  float *dres_ = nullptr, *dln_ = nullptr, *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr, *datt_ = nullptr;
  float *dgate_ = nullptr, *dup_ = nullptr, *dact_ = nullptr;
  size_t layer_floats_ = 0;
  float* row_scale_ = nullptr;

  // Decoding state (generate.cpp).
  std::vector<void*> decode_memory_;
  float *k_cache_ = nullptr, *v_cache_ = nullptr;
  float *dec_x_ = nullptr, *dec_ln_ = nullptr, *dec_rstd_ = nullptr, *dec_q_ = nullptr, *dec_att_ = nullptr;
  float *dec_gate_ = nullptr, *dec_up_ = nullptr, *dec_act_ = nullptr, *dec_logits_ = nullptr;
  int32_t* dec_ids_ = nullptr;
  int decode_max_ = 0, decode_len_ = 0, decode_rows_ = 0;
  void decode_buffers(int rows);

  Layer layer(float* base, int l) const;
  float* embed(float* base) const;
  float* final_norm(float* base) const;
  float* lm_head(float* base) const;  // the embedding when tied
  Activations acts(int l) const;
  float* residual(int l) const;  // input of layer l; residual(num_layers) feeds the final norm
  void prepare(int batch, int seq_len);
  void release_activations();
  void build_rope_tables(int seq_len);
};

}  // namespace smolstage
