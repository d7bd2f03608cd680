// Model architecture (Llama / SmolLM2) and its presets.
#pragma once
#include <string>
#include <vector>

namespace smolstage {

struct ModelConfig {
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  bool tie_embeddings = true;
  int max_position_embeddings = 2048;
  double initializer_range = 0.02;

  int head_dim() const { return hidden_size / num_heads; }
  int kv_dim() const { return head_dim() * num_kv_heads; }
};

// Throws std::invalid_argument listing the valid names when `name` is unknown.
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

// Throws std::invalid_argument naming the first inconsistent field and how to fix it.
void validate_config(const ModelConfig& c);

// Same shapes and numerics except the RoPE base, the position limit and the init range, which
// may legitimately change between stages or do not affect trained weights.
// Float fields (rmsNormEps) compare with a relative tolerance of 1e-6, so a value that went
// through float32 (9.999999747e-06 for 1e-5) is the same architecture.
bool same_architecture(const ModelConfig& a, const ModelConfig& b);
// The first field on which same_architecture fails, as "rmsNormEps: <a> vs <b>" with both values
// at full precision; empty when they agree.
std::string architecture_difference(const ModelConfig& a, const ModelConfig& b);
std::string describe(const ModelConfig& c);

}  // namespace smolstage
