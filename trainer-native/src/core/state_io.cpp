// Checkpoint and Hugging Face I/O of the Trainer.
//
// optimizer.bin layout (little-endian):
//   "SMOLSTAGE-OPTIM\0" | u64 header length | header JSON | m (fp32 × numParams) | v (same)
// The header records the model config the moments belong to, the step count and the RNG state.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/json.h"
#include "core/safetensors.h"
#include "core/trainer.h"

namespace smolstage {
namespace {

const char kOptimMagic[16] = {'S', 'M', 'O', 'L', 'S', 'T', 'A', 'G', 'E', '-', 'O', 'P', 'T', 'I', 'M', '\0'};

void ensure_dir(const std::string& dir) {
  if (dir.empty()) throw std::invalid_argument("checkpoint directory must not be empty");
  struct stat st{};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir + " exists and is not a directory");
    return;
  }
  // Create missing parents one level at a time.
  const size_t slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) ensure_dir(dir.substr(0, slash));
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw std::runtime_error("cannot create directory " + dir + ": " + std::strerror(errno));
}

std::string join(const std::string& dir, const char* file) { return dir + "/" + file; }

std::string config_json(const ModelConfig& c) {
  return std::string("{\"hiddenSize\":") + std::to_string(c.hidden_size) +
         ",\"numLayers\":" + std::to_string(c.num_layers) + ",\"numHeads\":" + std::to_string(c.num_heads) +
         ",\"numKvHeads\":" + std::to_string(c.num_kv_heads) +
         ",\"intermediateSize\":" + std::to_string(c.intermediate_size) +
         ",\"vocabSize\":" + std::to_string(c.vocab_size) + ",\"ropeTheta\":" + json_number(c.rope_theta) +
         ",\"rmsNormEps\":" + json_number(c.rms_norm_eps) +
         ",\"tieEmbeddings\":" + (c.tie_embeddings ? "true" : "false") +
         ",\"maxPositionEmbeddings\":" + std::to_string(c.max_position_embeddings) +
         ",\"initializerRange\":" + json_number(c.initializer_range) + "}";
}

double number_field(const Json& obj, const char* key, const std::string& what) {
  const Json* v = obj.find(key);
  if (!v || v->kind != Json::Kind::Number) throw std::runtime_error(what + ": missing numeric field \"" + key + "\"");
  return v->number;
}

ModelConfig config_from_header(const Json& c, const std::string& what) {
  ModelConfig m;
  m.hidden_size = static_cast<int>(number_field(c, "hiddenSize", what));
  m.num_layers = static_cast<int>(number_field(c, "numLayers", what));
  m.num_heads = static_cast<int>(number_field(c, "numHeads", what));
  m.num_kv_heads = static_cast<int>(number_field(c, "numKvHeads", what));
  m.intermediate_size = static_cast<int>(number_field(c, "intermediateSize", what));
  m.vocab_size = static_cast<int>(number_field(c, "vocabSize", what));
  m.rope_theta = number_field(c, "ropeTheta", what);
  m.rms_norm_eps = number_field(c, "rmsNormEps", what);
  const Json* tie = c.find("tieEmbeddings");
  m.tie_embeddings = tie && tie->kind == Json::Kind::Bool && tie->boolean;
  m.max_position_embeddings = static_cast<int>(number_field(c, "maxPositionEmbeddings", what));
  m.initializer_range = number_field(c, "initializerRange", what);
  return m;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

ModelConfig read_hf_config(const std::string& dir) {
  const std::string path = join(dir, "config.json");
  const Json c = parse_json(read_small_file(path, 1 << 20), path);
  if (c.kind != Json::Kind::Object) throw std::runtime_error(path + " is not a JSON object");
  if (const Json* type = c.find("model_type"); type && type->kind == Json::Kind::String && type->string != "llama")
    throw std::runtime_error(path + ": model_type is \"" + type->string + "\", only \"llama\" is supported");
  ModelConfig m;
  m.hidden_size = static_cast<int>(number_field(c, "hidden_size", path));
  m.num_layers = static_cast<int>(number_field(c, "num_hidden_layers", path));
  m.num_heads = static_cast<int>(number_field(c, "num_attention_heads", path));
  const Json* kv = c.find("num_key_value_heads");
  m.num_kv_heads = kv && kv->kind == Json::Kind::Number ? static_cast<int>(kv->number) : m.num_heads;
  m.intermediate_size = static_cast<int>(number_field(c, "intermediate_size", path));
  m.vocab_size = static_cast<int>(number_field(c, "vocab_size", path));
  // transformers 5 writes RoPE settings as rope_parameters {rope_type, rope_theta}; older
  // configs have a top-level rope_theta (and rope_scaling). Both may appear: they must agree.
  const Json* theta = c.find("rope_theta");
  const Json* params = c.find("rope_parameters");
  if (params && params->kind != Json::Kind::Null && params->kind != Json::Kind::Object)
    throw std::runtime_error(path + ": rope_parameters must be an object");
  const Json* nested = params && params->kind == Json::Kind::Object ? params->find("rope_theta") : nullptr;
  if (params && params->kind == Json::Kind::Object) {
    const Json* type = params->find("rope_type");
    if (type && !(type->kind == Json::Kind::String && type->string == "default"))
      throw std::runtime_error(path + ": rope_parameters.rope_type is " +
                               (type->kind == Json::Kind::String ? "\"" + type->string + "\"" : std::string("not a string")) +
                               "; only \"default\" RoPE is supported");
  }
  if (nested && nested->kind != Json::Kind::Number)
    throw std::runtime_error(path + ": rope_parameters.rope_theta must be a number");
  if (theta && theta->kind != Json::Kind::Number && theta->kind != Json::Kind::Null)
    throw std::runtime_error(path + ": rope_theta must be a number");
  const bool top = theta && theta->kind == Json::Kind::Number;
  if (top && nested && std::fabs(theta->number - nested->number) > 1e-6 * std::fabs(nested->number))
    throw std::runtime_error(path + ": rope_theta " + json_number(theta->number) +
                             " and rope_parameters.rope_theta " + json_number(nested->number) + " disagree");
  m.rope_theta = nested ? nested->number : top ? theta->number : 10000.0;
  m.rms_norm_eps = number_field(c, "rms_norm_eps", path);
  const Json* tie = c.find("tie_word_embeddings");
  m.tie_embeddings = !tie || tie->kind != Json::Kind::Bool || tie->boolean;  // transformers' default is true
  m.max_position_embeddings = static_cast<int>(number_field(c, "max_position_embeddings", path));
  const Json* range = c.find("initializer_range");
  m.initializer_range = range && range->kind == Json::Kind::Number ? range->number : 0.02;
  if (const Json* hd = c.find("head_dim"); hd && hd->kind == Json::Kind::Number && m.num_heads > 0 &&
                                            static_cast<int>(hd->number) * m.num_heads != m.hidden_size)
    throw std::runtime_error(path + ": head_dim × num_attention_heads must equal hidden_size in this trainer");
  if (const Json* rs = c.find("rope_scaling"); rs && rs->kind != Json::Kind::Null)
    throw std::runtime_error(path + ": rope_scaling is not supported (expected null)");
  validate_config(m);
  return m;
}

std::string Trainer::hf_config_json() const {
  const ModelConfig& c = config();
  return std::string("{\n") + "  \"architectures\": [\"LlamaForCausalLM\"],\n" + "  \"model_type\": \"llama\",\n" +
         "  \"hidden_size\": " + std::to_string(c.hidden_size) + ",\n" +
         "  \"intermediate_size\": " + std::to_string(c.intermediate_size) + ",\n" +
         "  \"num_hidden_layers\": " + std::to_string(c.num_layers) + ",\n" +
         "  \"num_attention_heads\": " + std::to_string(c.num_heads) + ",\n" +
         "  \"num_key_value_heads\": " + std::to_string(c.num_kv_heads) + ",\n" +
         "  \"head_dim\": " + std::to_string(c.head_dim()) + ",\n" +
         "  \"vocab_size\": " + std::to_string(c.vocab_size) + ",\n" +
         "  \"max_position_embeddings\": " + std::to_string(c.max_position_embeddings) + ",\n" +
         "  \"rope_theta\": " + json_number(c.rope_theta) + ",\n" + "  \"rope_scaling\": null,\n" +
         "  \"rms_norm_eps\": " + json_number(c.rms_norm_eps) + ",\n" +
         "  \"tie_word_embeddings\": " + (c.tie_embeddings ? "true" : "false") + ",\n" +
         "  \"initializer_range\": " + json_number(c.initializer_range) + ",\n" +
         "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n" +
         "  \"mlp_bias\": false,\n  \"pretraining_tp\": 1,\n  \"use_cache\": true,\n" +
         "  \"bos_token_id\": 0,\n  \"eos_token_id\": 0,\n  \"torch_dtype\": \"float32\"\n}\n";
}

void Trainer::write_weights(const std::string& path) {
  const std::vector<HostTensor> host = parameters();
  std::vector<TensorView> views;
  for (const auto& t : host) views.push_back({t.name, t.shape, t.values.data()});
  write_safetensors(path, views);
}

void Trainer::read_weights(const std::string& path, bool allow_extra_lm_head) {
  std::vector<std::unique_ptr<SafeTensorsReader>> files;
  files.push_back(std::make_unique<SafeTensorsReader>(path));
  read_weights_from(files, {}, path, allow_extra_lm_head);
}

// `files` are the safetensors files of one checkpoint; with a weight map (sharded checkpoints)
// each tensor is read from the file the map names, otherwise from the single file.
void Trainer::read_weights_from(const std::vector<std::unique_ptr<SafeTensorsReader>>& files,
                                const std::vector<std::pair<std::string, size_t>>& weight_map, const std::string& where,
                                bool allow_extra_lm_head) {
  auto locate = [&](const std::string& name) -> std::pair<const SafeTensorsReader*, const TensorInfo*> {
    if (weight_map.empty()) return {files[0].get(), files[0]->find(name)};
    for (const auto& [tensor, file] : weight_map)
      if (tensor == name) return {files[file].get(), files[file]->find(name)};
    return {nullptr, nullptr};
  };
  // Check everything before changing any weight, so a bad file leaves the trainer untouched.
  for (const auto& t : model_->tensors()) {
    const auto [file, info] = locate(t.name);
    if (!file) throw std::runtime_error(where + " maps no file for tensor " + t.name);
    if (!info)
      throw std::runtime_error(file->path() + " has no tensor " + t.name + " (expected shape " + shape_string(t.shape) +
                               ")");
    if (info->shape != t.shape)
      throw std::runtime_error(file->path() + ": tensor " + t.name + " has shape " + shape_string(info->shape) +
                               " but this model needs " + shape_string(t.shape) +
                               "; the checkpoint was made for a different model config");
  }
  if (config().tie_embeddings && !allow_extra_lm_head && locate("lm_head.weight").second)
    throw std::runtime_error(where + " holds lm_head.weight but this model ties embeddings (tieEmbeddings: true)");
  std::vector<float> host(model_->num_params());
  for (const auto& t : model_->tensors()) {
    const auto [file, info] = locate(t.name);
    file->read_f32(*info, host.data() + t.offset);
  }
  backend_->upload(model_->params(), host.data(), host.size());
}

void Trainer::export_hf(const std::string& dir) {
  begin_call();
  ensure_dir(dir);
  write_weights(join(dir, "model.safetensors"));
  write_file_atomic(join(dir, "config.json"), hf_config_json());
}

void Trainer::import_hf(const std::string& dir) {
  begin_call();
  struct stat st{};
  if (stat(join(dir, "config.json").c_str(), &st) == 0) {
    const ModelConfig theirs = read_hf_config(dir);
    const std::string diff = architecture_difference(theirs, config());
    if (!diff.empty())
      throw std::invalid_argument(dir + "/config.json describes a different model than this trainer: " + diff +
                                  " (checkpoint vs trainer; checkpoint " + describe(theirs) + ", trainer " +
                                  describe(config()) + ")");
  }
  // Checkpoints saved by transformers may still carry a tied lm_head copy; it is ignored.
  const std::string single = join(dir, "model.safetensors"), index = join(dir, "model.safetensors.index.json");
  if (stat(single.c_str(), &st) == 0 || stat(index.c_str(), &st) != 0) {
    read_weights(single, true);
    return;
  }
  // Sharded: {"metadata": {...}, "weight_map": {"<tensor>": "model-00001-of-00002.safetensors", ...}}.
  const Json j = parse_json(read_small_file(index, 64 << 20), index);
  const Json* map = j.find("weight_map");
  if (!map || map->kind != Json::Kind::Object || map->object.empty())
    throw std::runtime_error(index + ": no \"weight_map\" object naming the shard of each tensor");
  std::vector<std::string> shard_names;
  std::vector<std::pair<std::string, size_t>> weight_map;
  for (const auto& [tensor, file] : map->object) {
    if (file.kind != Json::Kind::String || file.string.empty() || file.string.find('/') != std::string::npos ||
        file.string == "." || file.string == "..")
      throw std::runtime_error(index + ": weight_map[\"" + tensor + "\"] must be a file name in " + dir);
    size_t at = 0;
    while (at < shard_names.size() && shard_names[at] != file.string) ++at;
    if (at == shard_names.size()) shard_names.push_back(file.string);
    weight_map.emplace_back(tensor, at);
  }
  std::vector<std::unique_ptr<SafeTensorsReader>> files;
  for (const auto& name : shard_names) files.push_back(std::make_unique<SafeTensorsReader>(join(dir, name.c_str())));
  read_weights_from(files, weight_map, index, true);
}

void Trainer::save_state(const std::string& dir) {
  begin_call();
  ensure_dir(dir);
  write_weights(join(dir, "model.safetensors"));
  write_file_atomic(join(dir, "config.json"), hf_config_json());
  const size_t P = model_->num_params();
  std::vector<float> m(P), v(P);
  backend_->download(m.data(), m_, P);
  backend_->download(v.data(), v_, P);
  const auto rng = rng_.state();
  std::string header = "{\"format\":1,\"config\":" + config_json(config()) + ",\"step\":" + std::to_string(step_) +
                       ",\"momentsFrom\":" + std::to_string(moments_from_) +
                       ",\"numParams\":" + std::to_string(P) + ",\"rng\":[\"" + hex64(rng[0]) + "\",\"" +
                       hex64(rng[1]) + "\",\"" + hex64(rng[2]) + "\",\"" + hex64(rng[3]) + "\"]}";
  std::string blob(kOptimMagic, sizeof kOptimMagic);
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) blob += static_cast<char>((len >> (8 * i)) & 0xFF);
  blob += header;
  blob.append(reinterpret_cast<const char*>(m.data()), P * sizeof(float));
  blob.append(reinterpret_cast<const char*>(v.data()), P * sizeof(float));
  write_file_atomic(join(dir, "optimizer.bin"), blob);
}

void Trainer::load_state(const std::string& dir) {
  begin_call();
  const std::string path = join(dir, "optimizer.bin");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path + ": not a checkpoint directory (optimizer.bin missing)");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[16] = {};
  unsigned char len_bytes[8] = {};
  in.read(magic, 16);
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  if (!in || std::memcmp(magic, kOptimMagic, 16) != 0)
    throw std::runtime_error(path + " is not a smolstage optimizer state file");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > (1u << 20) || 24 + header_len > file_size) throw std::runtime_error(path + " is truncated");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  const Json h = parse_json(header, path + " header");
  const Json* cfg = h.find("config");
  if (!cfg) throw std::runtime_error(path + ": header has no config");
  const ModelConfig theirs = config_from_header(*cfg, path);
  if (!same_architecture(theirs, config()))
    throw std::runtime_error("checkpoint " + dir + " was saved for a different model (" + describe(theirs) +
                             ") than this trainer (" + describe(config()) + "; " + architecture_difference(theirs, config()) +
                             ", checkpoint vs trainer); create the trainer with that config");
  const size_t P = model_->num_params();
  if (static_cast<size_t>(number_field(h, "numParams", path)) != P)
    throw std::runtime_error(path + ": parameter count differs from this model");
  if (file_size != 24 + header_len + 2 * P * sizeof(float))
    throw std::runtime_error(path + " is truncated or corrupt: expected " +
                             std::to_string(24 + header_len + 2 * P * sizeof(float)) + " bytes, found " +
                             std::to_string(file_size));
  const Json* rng = h.find("rng");
  if (!rng || rng->kind != Json::Kind::Array || rng->array.size() != 4)
    throw std::runtime_error(path + ": header has no RNG state");
  std::array<uint64_t, 4> rng_state{};
  for (int i = 0; i < 4; ++i) {
    const Json& word = rng->array[i];
    if (word.kind != Json::Kind::String || word.string.size() != 16 ||
        word.string.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw std::runtime_error(path + ": RNG state must be four 16-digit hex strings");
    rng_state[i] = std::stoull(word.string, nullptr, 16);
  }
  const int64_t step = static_cast<int64_t>(number_field(h, "step", path));
  // Step at which the AdamW moments were last reset (absent in files from before resetOptimizer).
  const Json* from = h.find("momentsFrom");
  const int64_t moments_from = from && from->kind == Json::Kind::Number ? static_cast<int64_t>(from->number) : 0;
  if (moments_from < 0 || moments_from > step) throw std::runtime_error(path + ": momentsFrom is outside [0, step]");
  std::vector<float> m(P), v(P);
  in.read(reinterpret_cast<char*>(m.data()), static_cast<std::streamsize>(P * sizeof(float)));
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(P * sizeof(float)));
  if (!in) throw std::runtime_error("failed reading " + path);
  read_weights(join(dir, "model.safetensors"), false);
  backend_->upload(m_, m.data(), P);
  backend_->upload(v_, v.data(), P);
  step_ = step;
  moments_from_ = moments_from;
  rng_.set_state(rng_state);
}

}  // namespace smolstage
