#include "core/config.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace smolstage {
namespace {

struct Preset {
  const char* name;
  ModelConfig config;
};

ModelConfig make(int hidden, int layers, int heads, int kv, int ffn, double theta, int max_pos,
                 double init_range) {
  ModelConfig c;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.intermediate_size = ffn;
  c.vocab_size = 49152;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-5;
  c.tie_embeddings = true;
  c.max_position_embeddings = max_pos;
  c.initializer_range = init_range;
  return c;
}

// The SmolLM2 rows are the released Hugging Face configs. The tiny presets keep the SmolLM2
// vocabulary so they train on the same token shards, only with far fewer, narrower layers.
const std::vector<Preset>& presets() {
  static const std::vector<Preset> list = {
      {"smollm2-135m", make(576, 30, 9, 3, 1536, 100000.0, 8192, 0.041666666666666664)},
      {"smollm2-360m", make(960, 32, 15, 5, 2560, 100000.0, 8192, 0.02)},
      {"smollm2-1.7b", make(2048, 24, 32, 32, 8192, 130000.0, 8192, 0.02)},
      {"tiny", make(64, 2, 4, 4, 256, 10000.0, 2048, 0.02)},
      {"tiny-gqa", make(128, 4, 4, 2, 384, 10000.0, 2048, 0.02)},
      {"small", make(256, 6, 8, 2, 768, 10000.0, 2048, 0.02)},
  };
  return list;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.emplace_back(p.name);
  return names;
}

ModelConfig preset_config(const std::string& name) {
  for (const auto& p : presets())
    if (name == p.name) return p.config;
  std::string valid;
  for (const auto& n : preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown model preset '" + name + "'; valid presets: " + valid);
}

void validate_config(const ModelConfig& c) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("invalid model config: " + msg); };
  auto positive = [&](const char* field, long long v) {
    if (v <= 0) fail(std::string(field) + " must be a positive integer, got " + std::to_string(v));
  };
  positive("hiddenSize", c.hidden_size);
  positive("numLayers", c.num_layers);
  positive("numHeads", c.num_heads);
  positive("numKvHeads", c.num_kv_heads);
  positive("intermediateSize", c.intermediate_size);
  positive("vocabSize", c.vocab_size);
  positive("maxPositionEmbeddings", c.max_position_embeddings);
  if (c.hidden_size % c.num_heads != 0)
    fail("hiddenSize (" + std::to_string(c.hidden_size) + ") must be divisible by numHeads (" +
         std::to_string(c.num_heads) + ")");
  if (c.num_heads % c.num_kv_heads != 0)
    fail("numHeads (" + std::to_string(c.num_heads) + ") must be divisible by numKvHeads (" +
         std::to_string(c.num_kv_heads) + ")");
  if (c.head_dim() % 2 != 0)
    fail("head dimension hiddenSize/numHeads = " + std::to_string(c.head_dim()) +
         " must be even for rotary embeddings");
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 1.0))
    fail("ropeTheta must be a finite number > 1, got " + std::to_string(c.rope_theta));
  if (!(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0.0))
    fail("rmsNormEps must be a finite number > 0, got " + std::to_string(c.rms_norm_eps));
  if (!(std::isfinite(c.initializer_range) && c.initializer_range > 0.0))
    fail("initializerRange must be a finite number > 0, got " + std::to_string(c.initializer_range));
  // Parameter buffers are indexed with 64-bit offsets, but single matrices go through int GEMM
  // dimensions; keep every dimension well inside int range.
  const long long limit = 1 << 24;
  if (c.hidden_size > limit || c.intermediate_size > limit || c.vocab_size > limit)
    fail("hiddenSize, intermediateSize and vocabSize must each be at most 16777216");
}

bool same_architecture(const ModelConfig& a, const ModelConfig& b) {
  return a.hidden_size == b.hidden_size && a.num_layers == b.num_layers && a.num_heads == b.num_heads &&
         a.num_kv_heads == b.num_kv_heads && a.intermediate_size == b.intermediate_size &&
         a.vocab_size == b.vocab_size && a.tie_embeddings == b.tie_embeddings &&
         a.rms_norm_eps == b.rms_norm_eps;
}

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << "hidden=" << c.hidden_size << " layers=" << c.num_layers << " heads=" << c.num_heads
    << " kvHeads=" << c.num_kv_heads << " ffn=" << c.intermediate_size << " vocab=" << c.vocab_size
    << " tie=" << (c.tie_embeddings ? "true" : "false") << " eps=" << c.rms_norm_eps;
  return s.str();
}

}  // namespace smolstage
