#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "core/json.h"
#include "core/presets_json.h"

namespace smolstage {
namespace {

struct Preset {
  std::string name;
  ModelConfig config;
};

// The presets come from trainer-native/presets.json (embedded at build time, see
// presets_json.h.in), the same file the operator reads, so the two can never disagree.
std::vector<Preset> parse_presets() {
  const Json doc = parse_json(kPresetsJson, "presets.json");
  const Json* list = doc.find("presets");
  if (!list || list->kind != Json::Kind::Object) throw std::logic_error("presets.json: no \"presets\" object");
  std::vector<Preset> out;
  for (const auto& [name, entry] : list->object) {
    auto field = [&, name = name](const char* key, Json::Kind kind) -> const Json& {
      const Json* v = entry.find(key);
      if (!v || v->kind != kind)
        throw std::logic_error("presets.json: preset '" + name + "' lacks a valid " + key);
      return *v;
    };
    auto number = [&](const char* key) { return field(key, Json::Kind::Number).number; };
    auto integer = [&](const char* key) { return static_cast<int>(number(key)); };
    ModelConfig c;
    c.hidden_size = integer("hiddenSize");
    c.num_layers = integer("numLayers");
    c.num_heads = integer("numHeads");
    c.num_kv_heads = integer("numKvHeads");
    c.intermediate_size = integer("intermediateSize");
    c.vocab_size = integer("vocabSize");
    c.rope_theta = number("ropeTheta");
    c.rms_norm_eps = number("rmsNormEps");
    c.tie_embeddings = field("tieEmbeddings", Json::Kind::Bool).boolean;
    c.max_position_embeddings = integer("maxPositionEmbeddings");
    c.initializer_range = number("initializerRange");
    out.push_back({name, c});
  }
  return out;
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> list = parse_presets();
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

std::string architecture_difference(const ModelConfig& a, const ModelConfig& b) {
  auto ints = [](const char* field, long long x, long long y) {
    return x == y ? std::string() : std::string(field) + ": " + std::to_string(x) + " vs " + std::to_string(y);
  };
  for (const std::string& d :
       {ints("hiddenSize", a.hidden_size, b.hidden_size), ints("numLayers", a.num_layers, b.num_layers),
        ints("numHeads", a.num_heads, b.num_heads), ints("numKvHeads", a.num_kv_heads, b.num_kv_heads),
        ints("intermediateSize", a.intermediate_size, b.intermediate_size),
        ints("vocabSize", a.vocab_size, b.vocab_size)})
    if (!d.empty()) return d;
  if (a.tie_embeddings != b.tie_embeddings)
    return std::string("tieEmbeddings: ") + (a.tie_embeddings ? "true" : "false") + " vs " +
           (b.tie_embeddings ? "true" : "false");
  const double scale = std::max(std::fabs(a.rms_norm_eps), std::fabs(b.rms_norm_eps));
  if (!(std::fabs(a.rms_norm_eps - b.rms_norm_eps) <= 1e-6 * scale)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "rmsNormEps: %.17g vs %.17g", a.rms_norm_eps, b.rms_norm_eps);
    return buf;
  }
  return "";
}

bool same_architecture(const ModelConfig& a, const ModelConfig& b) { return architecture_difference(a, b).empty(); }

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << "hidden=" << c.hidden_size << " layers=" << c.num_layers << " heads=" << c.num_heads
    << " kvHeads=" << c.num_kv_heads << " ffn=" << c.intermediate_size << " vocab=" << c.vocab_size
    << " tie=" << (c.tie_embeddings ? "true" : "false") << " eps=" << c.rms_norm_eps;
  return s.str();
}

}  // namespace smolstage
