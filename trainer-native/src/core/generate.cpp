// KV-cache decoding for generation. Each layer keeps the rotated keys and the values of every
// position seen so far ([max_len, KV, D] per layer); a decode call runs the new tokens through
// the same ops as the training forward (embedding, RMSNorm, GEMMs, RoPE at their positions,
// SwiGLU), with Backend::attention_decode attending over the cache. The prompt is one call
// (prefill), then one call per generated token.
#include "core/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "core/model.h"

namespace smolstage {

void validate_generate(const GenerateOptions& o) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("generate: " + m); };
  if (o.max_new_tokens <= 0) fail("maxNewTokens must be a positive integer, got " + std::to_string(o.max_new_tokens));
  if (!(std::isfinite(o.temperature) && o.temperature >= 0))
    fail("temperature must be a finite number >= 0 (0 = greedy)");
  if (!(std::isfinite(o.top_p) && o.top_p > 0 && o.top_p <= 1)) fail("topP must be in (0, 1]");
}

uint32_t sample_token(const float* logits, int vocab, double temperature, double top_p, Rng& rng) {
  if (temperature == 0.0) {
    int best = 0;
    for (int j = 1; j < vocab; ++j)
      if (logits[j] > logits[best]) best = j;
    return static_cast<uint32_t>(best);
  }
  double maxv = -INFINITY;
  for (int j = 0; j < vocab; ++j) maxv = std::max(maxv, static_cast<double>(logits[j]));
  std::vector<double> p(static_cast<size_t>(vocab));
  double total = 0.0;
  for (int j = 0; j < vocab; ++j) total += p[j] = std::exp((logits[j] - maxv) / temperature);
  std::vector<int> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  size_t keep = order.size();
  if (top_p < 1.0) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    double cumulative = 0.0;
    for (size_t i = 0; i < order.size(); ++i) {
      cumulative += p[order[i]] / total;
      if (cumulative >= top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += p[order[i]];
  const double u = rng.uniform() * kept;
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += p[order[i]];
    if (acc >= u) return static_cast<uint32_t>(order[i]);
  }
  return static_cast<uint32_t>(order[keep - 1]);
}

void Model::begin_decode(int max_len) {
  end_decode();
  if (max_len <= 0 || max_len > config_.max_position_embeddings)
    throw std::invalid_argument("generation length " + std::to_string(max_len) + " must be in [1, maxPositionEmbeddings = " +
                                std::to_string(config_.max_position_embeddings) + "]");
  const size_t cache = static_cast<size_t>(config_.num_layers) * max_len * config_.kv_dim();
  k_cache_ = be_.alloc(cache);
  decode_memory_.push_back(k_cache_);
  v_cache_ = be_.alloc(cache);
  decode_memory_.push_back(v_cache_);
  decode_max_ = max_len;
  decode_len_ = 0;
  build_rope_tables(max_len);
}

void Model::end_decode() {
  for (void* p : decode_memory_) be_.release(p);
  decode_memory_.clear();
  k_cache_ = v_cache_ = nullptr;
  dec_x_ = dec_ln_ = dec_rstd_ = dec_q_ = dec_att_ = dec_gate_ = dec_up_ = dec_act_ = dec_logits_ = nullptr;
  dec_ids_ = nullptr;
  decode_max_ = decode_len_ = decode_rows_ = 0;
}

// Work buffers for `rows` new tokens (the prompt, then 1); the cache itself is fixed.
void Model::decode_buffers(int rows) {
  if (rows <= decode_rows_) return;
  // Keep the two caches (the first entries), drop and regrow the rest.
  for (size_t i = 2; i < decode_memory_.size(); ++i) be_.release(decode_memory_[i]);
  decode_memory_.resize(2);
  const size_t N = static_cast<size_t>(rows), C = config_.hidden_size, F = config_.intermediate_size;
  auto take = [&](size_t count) {
    float* p = be_.alloc(count);
    decode_memory_.push_back(p);
    return p;
  };
  dec_x_ = take(N * C);
  dec_ln_ = take(N * C);
  dec_rstd_ = take(N);
  dec_q_ = take(N * C);
  dec_att_ = take(N * C);
  dec_gate_ = take(N * F);
  dec_up_ = take(N * F);
  dec_act_ = take(N * F);
  dec_logits_ = take(static_cast<size_t>(config_.vocab_size));
  dec_ids_ = be_.alloc_ids(N);
  decode_memory_.push_back(dec_ids_);
  decode_rows_ = rows;
}

void Model::decode(const int32_t* host_ids, int n, float* host_logits) {
  if (!k_cache_) throw std::logic_error("Model::decode without begin_decode");
  if (n <= 0 || decode_len_ + n > decode_max_)
    throw std::invalid_argument("decode: " + std::to_string(n) + " tokens at position " + std::to_string(decode_len_) +
                                " exceed the cache of " + std::to_string(decode_max_) + " positions");
  decode_buffers(n);
  const int C = config_.hidden_size, KVD = config_.kv_dim(), F = config_.intermediate_size;
  const int H = config_.num_heads, KV = config_.num_kv_heads, D = config_.head_dim(), V = config_.vocab_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const int pos = decode_len_;
  const size_t half = static_cast<size_t>(D / 2), layer_cache = static_cast<size_t>(decode_max_) * KVD;
  const float* cos = rope_cos_ + static_cast<size_t>(pos) * half;
  const float* sin = rope_sin_ + static_cast<size_t>(pos) * half;
  be_.upload_ids(dec_ids_, host_ids, static_cast<size_t>(n));
  be_.embedding_forward(dec_x_, dec_ids_, embed(params_), n, C);
  for (int l = 0; l < config_.num_layers; ++l) {
    const Layer w = layer(params_, l);
    float* kc = k_cache_ + layer_cache * l;
    float* vc = v_cache_ + layer_cache * l;
    float* k_new = kc + static_cast<size_t>(pos) * KVD;
    float* v_new = vc + static_cast<size_t>(pos) * KVD;
    be_.rmsnorm_forward(dec_ln_, dec_rstd_, dec_x_, w.ln1, n, C, eps);
    be_.matmul_forward(dec_q_, dec_ln_, w.wq, n, C, C, false);
    be_.matmul_forward(k_new, dec_ln_, w.wk, n, C, KVD, false);
    be_.matmul_forward(v_new, dec_ln_, w.wv, n, C, KVD, false);
    be_.rope_forward(dec_q_, cos, sin, 1, n, H, D);
    be_.rope_forward(k_new, cos, sin, 1, n, KV, D);
    be_.attention_decode(dec_att_, dec_q_, kc, vc, n, pos, H, KV, D);
    be_.matmul_forward(dec_x_, dec_att_, w.wo, n, C, C, true);
    be_.rmsnorm_forward(dec_ln_, dec_rstd_, dec_x_, w.ln2, n, C, eps);
    be_.matmul_forward(dec_gate_, dec_ln_, w.wg, n, C, F, false);
    be_.matmul_forward(dec_up_, dec_ln_, w.wu, n, C, F, false);
    be_.swiglu_forward(dec_act_, dec_gate_, dec_up_, static_cast<size_t>(n) * F);
    be_.matmul_forward(dec_x_, dec_act_, w.wd, n, F, C, true);
  }
  const float* last = dec_x_ + static_cast<size_t>(n - 1) * C;
  be_.rmsnorm_forward(dec_ln_, dec_rstd_, last, final_norm(params_), 1, C, eps);
  be_.matmul_forward(dec_logits_, dec_ln_, lm_head(params_), 1, C, V, false);
  be_.download(host_logits, dec_logits_, static_cast<size_t>(V));
  decode_len_ += n;
}

}  // namespace smolstage
