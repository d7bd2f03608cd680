#include "core/model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace smolstage {
namespace {
// Rows of logits materialized at a time: bounds LM-head memory at chunk × vocab floats.
constexpr int kHeadChunkRows = 256;
}  // namespace

Model::Model(const ModelConfig& config, Backend& backend) : config_(config), be_(backend) {
  validate_config(config_);
  const int64_t C = config_.hidden_size, F = config_.intermediate_size, V = config_.vocab_size;
  const int64_t KVD = config_.kv_dim();
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    ParamTensor t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.numel = 1;
    for (int64_t d : t.shape) t.numel *= static_cast<size_t>(d);
    t.offset = num_params_;
    t.decay = decay;
    num_params_ += t.numel;
    tensors_.push_back(std::move(t));
  };
  add("model.embed_tokens.weight", {V, C}, true);
  for (int l = 0; l < config_.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C}, false);
    add(p + "self_attn.q_proj.weight", {C, C}, true);
    add(p + "self_attn.k_proj.weight", {KVD, C}, true);
    add(p + "self_attn.v_proj.weight", {KVD, C}, true);
    add(p + "self_attn.o_proj.weight", {C, C}, true);
    add(p + "post_attention_layernorm.weight", {C}, false);
    add(p + "mlp.gate_proj.weight", {F, C}, true);
    add(p + "mlp.up_proj.weight", {F, C}, true);
    add(p + "mlp.down_proj.weight", {C, F}, true);
  }
  add("model.norm.weight", {C}, false);
  if (!config_.tie_embeddings) add("lm_head.weight", {V, C}, true);
  params_ = be_.alloc(num_params_);
  grads_ = be_.alloc(num_params_);
}

Model::~Model() {
  end_decode();
  release_activations();
  be_.release(params_);
  be_.release(grads_);
}

const ParamTensor* Model::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Model::Layer Model::layer(float* base, int l) const {
  const size_t first = 1 + static_cast<size_t>(l) * 9;
  auto at = [&](size_t i) { return base + tensors_[first + i].offset; };
  return {at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8)};
}
float* Model::embed(float* base) const { return base + tensors_[0].offset; }
float* Model::final_norm(float* base) const {
  return base + tensors_[1 + static_cast<size_t>(config_.num_layers) * 9].offset;
}
float* Model::lm_head(float* base) const { return config_.tie_embeddings ? embed(base) : base + tensors_.back().offset; }

// Chunks of each tensor draw from their own stream seeded from one draw of `rng`, so the
// weights depend on the seed only (not on the thread count) and large models initialize in
// parallel.
void Model::init_weights(Rng& rng) {
  std::vector<float> host(num_params_);
  const uint64_t base = rng.next();
  const double std_dev = config_.initializer_range;
  constexpr size_t kChunk = size_t{1} << 20;
  struct Job {
    size_t tensor, begin, end;
  };
  std::vector<Job> jobs;
  for (size_t ti = 0; ti < tensors_.size(); ++ti)
    for (size_t b = 0; b < tensors_[ti].numel; b += kChunk) jobs.push_back({ti, b, std::min(tensors_[ti].numel, b + kChunk)});
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t j = 0; j < jobs.size(); ++j) {
    const ParamTensor& t = tensors_[jobs[j].tensor];
    float* p = host.data() + t.offset;
    if (t.shape.size() == 1) {
      std::fill(p + jobs[j].begin, p + jobs[j].end, 1.0f);
      continue;
    }
    Rng stream(base ^ (static_cast<uint64_t>(jobs[j].tensor) << 40) ^ (jobs[j].begin / kChunk));
    for (size_t i = jobs[j].begin; i < jobs[j].end; ++i) p[i] = static_cast<float>(stream.normal() * std_dev);
  }
  be_.upload(params_, host.data(), num_params_);
}

void Model::set_rope_theta(double theta) {
  config_.rope_theta = theta;
  validate_config(config_);
  rope_len_ = 0;  // tables are rebuilt on the next forward
}

// Matches transformers' LlamaRotaryEmbedding in fp32: inv_freq = 1 / θ^(2i/d), angle = t·inv_freq.
void Model::build_rope_tables(int seq_len) {
  if (rope_len_ >= seq_len && rope_theta_applied_ == config_.rope_theta) return;
  const int half = config_.head_dim() / 2;
  std::vector<float> cos_host(static_cast<size_t>(seq_len) * half), sin_host(cos_host.size());
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(config_.head_dim());
    const float inv_freq = 1.0f / std::pow(static_cast<float>(config_.rope_theta), exponent);
    for (int t = 0; t < seq_len; ++t) {
      const float angle = static_cast<float>(t) * inv_freq;
      cos_host[static_cast<size_t>(t) * half + i] = std::cos(angle);
      sin_host[static_cast<size_t>(t) * half + i] = std::sin(angle);
    }
  }
  if (rope_cos_) be_.release(rope_cos_);
  if (rope_sin_) be_.release(rope_sin_);
  rope_cos_ = be_.alloc(cos_host.size());
  rope_sin_ = be_.alloc(sin_host.size());
  be_.upload(rope_cos_, cos_host.data(), cos_host.size());
  be_.upload(rope_sin_, sin_host.data(), sin_host.size());
  rope_len_ = seq_len;
  rope_theta_applied_ = config_.rope_theta;
}

void Model::release_activations() {
  for (void* p : activation_memory_) be_.release(p);
  activation_memory_.clear();
  if (rope_cos_) be_.release(rope_cos_);
  if (rope_sin_) be_.release(rope_sin_);
  rope_cos_ = rope_sin_ = nullptr;
  rope_len_ = 0;
  batch_ = seq_len_ = rows_ = 0;
}

// Activations are sized for one (batch, seq_len) and reused while the shape stays the same, so
// steady-state training allocates nothing.
void Model::prepare(int batch, int seq_len) {
  if (batch == batch_ && seq_len == seq_len_) return;
  release_activations();
  batch_ = batch;
  seq_len_ = seq_len;
  rows_ = batch * seq_len;
  const size_t N = static_cast<size_t>(rows_), C = config_.hidden_size, KVD = config_.kv_dim();
  const size_t F = config_.intermediate_size, V = config_.vocab_size, H = config_.num_heads;
  const size_t L = config_.num_layers;
  auto take = [&](size_t count) {
    float* p = be_.alloc(count);
    activation_memory_.push_back(p);
    return p;
  };
  // Per layer: ln1, q, att, res_mid, ln2 (N·C each), k, v (N·KVD), gate, up, act (N·F),
  // rstd1, rstd2 (N), lse (B·H·T = N·H); plus the residual stream input (N·C).
  layer_floats_ = N * (6 * C + 2 * KVD + 3 * F + 2 + H);
  acts_base_ = take(layer_floats_ * L + N * C);
  ids_ = be_.alloc_ids(N);
  activation_memory_.push_back(ids_);
  targets_ = be_.alloc_ids(N);
  activation_memory_.push_back(targets_);
  lnf_ = take(N * C);
  rstdf_ = take(N);
  dlnf_ = take(N * C);
  head_chunk_ = std::min(rows_, kHeadChunkRows);
  logits_ = take(static_cast<size_t>(head_chunk_) * V);
  row_losses_ = take(N);
  row_scale_ = take(N);
  dres_ = take(N * C);
  dln_ = take(N * C);
  dq_ = take(N * C);
  datt_ = take(N * C);
  dk_ = take(N * KVD);
  dv_ = take(N * KVD);
  dgate_ = take(N * F);
  dup_ = take(N * F);
  dact_ = take(N * F);
}

float* Model::residual(int l) const { return acts_base_ + layer_floats_ * static_cast<size_t>(l); }

Model::Activations Model::acts(int l) const {
  const size_t N = static_cast<size_t>(rows_), C = config_.hidden_size, KVD = config_.kv_dim();
  const size_t F = config_.intermediate_size;
  float* p = residual(l);
  Activations a{};
  a.res = p;
  p += N * C;
  a.ln1 = p; p += N * C;
  a.q = p; p += N * C;
  a.att = p; p += N * C;
  a.res_mid = p; p += N * C;
  a.ln2 = p; p += N * C;
  a.k = p; p += N * KVD;
  a.v = p; p += N * KVD;
  a.gate = p; p += N * F;
  a.up = p; p += N * F;
  a.act = p; p += N * F;
  a.rstd1 = p; p += N;
  a.rstd2 = p; p += N;
  a.lse = p;
  return a;
}

void Model::forward(const int32_t* host_inputs, int batch, int seq_len) {
  prepare(batch, seq_len);
  build_rope_tables(seq_len);
  const int N = rows_, C = config_.hidden_size, KVD = config_.kv_dim(), F = config_.intermediate_size;
  const int H = config_.num_heads, KV = config_.num_kv_heads, D = config_.head_dim();
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const AttentionShape shape{batch, seq_len, H, KV, D};
  be_.upload_ids(ids_, host_inputs, static_cast<size_t>(N));
  be_.embedding_forward(residual(0), ids_, embed(params_), N, C);
  for (int l = 0; l < config_.num_layers; ++l) {
    const Layer w = layer(params_, l);
    const Activations a = acts(l);
    be_.rmsnorm_forward(a.ln1, a.rstd1, a.res, w.ln1, N, C, eps);
    be_.matmul_forward(a.q, a.ln1, w.wq, N, C, C, false);
    be_.matmul_forward(a.k, a.ln1, w.wk, N, C, KVD, false);
    be_.matmul_forward(a.v, a.ln1, w.wv, N, C, KVD, false);
    be_.rope_forward(a.q, rope_cos_, rope_sin_, batch, seq_len, H, D);
    be_.rope_forward(a.k, rope_cos_, rope_sin_, batch, seq_len, KV, D);
    be_.attention_forward(a.att, a.lse, a.q, a.k, a.v, shape);
    be_.copy(a.res_mid, a.res, static_cast<size_t>(N) * C);
    be_.matmul_forward(a.res_mid, a.att, w.wo, N, C, C, true);
    be_.rmsnorm_forward(a.ln2, a.rstd2, a.res_mid, w.ln2, N, C, eps);
    be_.matmul_forward(a.gate, a.ln2, w.wg, N, C, F, false);
    be_.matmul_forward(a.up, a.ln2, w.wu, N, C, F, false);
    be_.swiglu_forward(a.act, a.gate, a.up, static_cast<size_t>(N) * F);
    float* next = residual(l + 1);
    be_.copy(next, a.res_mid, static_cast<size_t>(N) * C);
    be_.matmul_forward(next, a.act, w.wd, N, F, C, true);
  }
  be_.rmsnorm_forward(lnf_, rstdf_, residual(config_.num_layers), final_norm(params_), N, C, eps);
}

double Model::head_loss(const int32_t* host_targets, float grad_scale, bool want_grad, float* host_row_losses,
                         const float* host_row_scale) {
  const int N = rows_, C = config_.hidden_size, V = config_.vocab_size;
  be_.upload_ids(targets_, host_targets, static_cast<size_t>(N));
  const bool scaled = want_grad && host_row_scale;
  if (scaled) be_.upload(row_scale_, host_row_scale, static_cast<size_t>(N));
  const float* w = lm_head(params_);
  float* dw = lm_head(grads_);
  for (int r0 = 0; r0 < N; r0 += head_chunk_) {
    const int rows = std::min(head_chunk_, N - r0);
    const size_t off = static_cast<size_t>(r0) * C;
    be_.matmul_forward(logits_, lnf_ + off, w, rows, C, V, false);
    be_.cross_entropy(row_losses_ + r0, logits_, targets_ + r0, rows, V, grad_scale, scaled ? row_scale_ + r0 : nullptr,
                      want_grad);
    if (want_grad) be_.matmul_backward(dlnf_ + off, dw, logits_, lnf_ + off, w, rows, C, V, false);
  }
  std::vector<float> local;
  float* losses = host_row_losses;
  if (!losses) {
    local.resize(static_cast<size_t>(N));
    losses = local.data();
  }
  be_.download(losses, row_losses_, static_cast<size_t>(N));
  double total = 0.0;
  for (int n = 0; n < N; ++n) total += losses[n];
  return total;
}

void Model::backward(const std::function<void(size_t)>& on_ready) {
  auto ready = [&](size_t offset) {
    if (on_ready) on_ready(offset);
  };
  const int N = rows_, C = config_.hidden_size, KVD = config_.kv_dim(), F = config_.intermediate_size;
  const int H = config_.num_heads, KV = config_.num_kv_heads, D = config_.head_dim();
  const AttentionShape shape{batch_, seq_len_, H, KV, D};
  be_.fill(dres_, static_cast<size_t>(N) * C, 0.0f);
  be_.rmsnorm_backward(dres_, final_norm(grads_), dlnf_, residual(config_.num_layers), final_norm(params_), rstdf_, N,
                       C);
  // The final norm and an untied LM head (its gradient came from head_loss) are done.
  ready(tensors_[1 + static_cast<size_t>(config_.num_layers) * 9].offset);
  for (int l = config_.num_layers - 1; l >= 0; --l) {
    const Layer w = layer(params_, l);
    const Layer g = layer(grads_, l);
    const Activations a = acts(l);
    // MLP block: res[l+1] = res_mid + act·Wdᵀ; dres flows straight through the residual.
    be_.matmul_backward(dact_, g.wd, dres_, a.act, w.wd, N, F, C, false);
    be_.swiglu_backward(dgate_, dup_, dact_, a.gate, a.up, static_cast<size_t>(N) * F);
    be_.matmul_backward(dln_, g.wg, dgate_, a.ln2, w.wg, N, C, F, false);
    be_.matmul_backward(dln_, g.wu, dup_, a.ln2, w.wu, N, C, F, true);
    be_.rmsnorm_backward(dres_, g.ln2, dln_, a.res_mid, w.ln2, a.rstd2, N, C);
    // Attention block: res_mid = res[l] + att·Woᵀ.
    be_.matmul_backward(datt_, g.wo, dres_, a.att, w.wo, N, C, C, false);
    be_.attention_backward(dq_, dk_, dv_, datt_, a.att, a.lse, a.q, a.k, a.v, shape);
    be_.rope_backward(dq_, rope_cos_, rope_sin_, batch_, seq_len_, H, D);
    be_.rope_backward(dk_, rope_cos_, rope_sin_, batch_, seq_len_, KV, D);
    be_.matmul_backward(dln_, g.wq, dq_, a.ln1, w.wq, N, C, C, false);
    be_.matmul_backward(dln_, g.wk, dk_, a.ln1, w.wk, N, C, KVD, true);
    be_.matmul_backward(dln_, g.wv, dv_, a.ln1, w.wv, N, C, KVD, true);
    be_.rmsnorm_backward(dres_, g.ln1, dln_, a.res, w.ln1, a.rstd1, N, C);
    ready(tensors_[1 + static_cast<size_t>(l) * 9].offset);
  }
  // With tied embeddings the LM head's gradient lands here too, so it is ready only now.
  be_.embedding_backward(embed(grads_), dres_, ids_, N, C);
  ready(0);
}

void Model::logits(float* host_out) {
  const int N = rows_, C = config_.hidden_size, V = config_.vocab_size;
  const float* w = lm_head(params_);
  for (int r0 = 0; r0 < N; r0 += head_chunk_) {
    const int rows = std::min(head_chunk_, N - r0);
    be_.matmul_forward(logits_, lnf_ + static_cast<size_t>(r0) * C, w, rows, C, V, false);
    be_.download(host_out + static_cast<size_t>(r0) * V, logits_, static_cast<size_t>(rows) * V);
  }
}

}  // namespace smolstage
