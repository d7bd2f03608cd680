// Checkpoints: bit-exact resume, HF export/import round trip, refusing mismatched state.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "check.h"
#include "core/safetensors.h"
#include "core/trainer.h"

using namespace smolstage;

namespace {

TrainerOptions small_options(uint64_t seed) {
  TrainerOptions o;
  o.model = preset_config("tiny");
  o.model.vocab_size = 512;
  o.optimizer = {0.9, 0.95, 1e-8, 0.1, 1.0};
  o.schedule.peak_lr = 3e-3;
  o.schedule.warmup_steps = 5;
  o.schedule.decay_start_step = 12;
  o.schedule.decay_steps = 8;
  o.schedule.shape = DecayShape::Cosine;
  o.seed = seed;
  o.threads = 2;
  return o;
}

std::vector<uint32_t> batch_for_step(int step, int rows, int row_len, uint32_t vocab) {
  Rng rng(1000 + step);
  std::vector<uint32_t> t(static_cast<size_t>(rows) * row_len);
  for (auto& x : t) x = static_cast<uint32_t>(rng.next() % vocab);
  return t;
}

// A fresh directory under $TMPDIR, removed when the test binary exits.
std::string temp_dir(const char* tag) {
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      for (const auto& d : dirs) std::filesystem::remove_all(d);
    }
  };
  static Cleanup cleanup;
  const auto base = std::filesystem::temp_directory_path() / (std::string("smolstage-test-") + tag + "-XXXXXX");
  std::string tmpl = base.string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  cleanup.dirs.push_back(tmpl);
  return tmpl;
}

StepResult run_step(Trainer& t, int step) {
  const int B = 4, micro = 2, T = 16;
  const auto tokens = batch_for_step(step, B, T + 1, 512);
  return t.step(tokens.data(), tokens.size(), B, micro, T);
}

bool same_bits(const std::vector<HostTensor>& a, const std::vector<HostTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].values.size() != b[i].values.size() ||
        std::memcmp(a[i].values.data(), b[i].values.data(), a[i].values.size() * sizeof(float)) != 0)
      return false;
  return true;
}

}  // namespace

TEST(resume_is_bit_exact) {
  Trainer straight(small_options(42));
  std::vector<double> straight_losses;
  for (int s = 0; s < 20; ++s) straight_losses.push_back(run_step(straight, s).loss);

  const std::string dir = temp_dir("resume");
  {
    Trainer first(small_options(42));
    for (int s = 0; s < 10; ++s) run_step(first, s);
    first.save_state(dir);
  }
  Trainer resumed(small_options(999));  // different init: everything must come from the checkpoint
  resumed.load_state(dir);
  CHECK(resumed.step_count() == 10);
  for (int s = 10; s < 20; ++s) {
    const StepResult r = run_step(resumed, s);
    CHECK_MSG(r.loss == straight_losses[s], "step " << s << ": " << r.loss << " vs " << straight_losses[s]);
  }
  CHECK(resumed.step_count() == 20);
  CHECK_MSG(same_bits(resumed.parameters(), straight.parameters()), "weights differ after resume");
}

TEST(training_fits_a_repeated_batch) {
  Trainer t(small_options(7));
  const auto tokens = batch_for_step(0, 4, 17, 512);
  const double first = t.step(tokens.data(), tokens.size(), 4, 2, 16).loss;
  double last = first;
  for (int s = 0; s < 14; ++s) last = t.step(tokens.data(), tokens.size(), 4, 2, 16).loss;
  CHECK_MSG(last < first - 0.5, "loss " << first << " -> " << last);
}

TEST(export_import_round_trip_gives_identical_logits) {
  Trainer a(small_options(1));
  for (int s = 0; s < 3; ++s) run_step(a, s);
  const std::string dir = temp_dir("export");
  a.export_hf(dir);
  struct stat st{};
  CHECK(stat((dir + "/config.json").c_str(), &st) == 0);
  const ModelConfig cfg = read_hf_config(dir);
  CHECK(same_architecture(cfg, a.config()));
  Trainer b(small_options(2));
  b.import_hf(dir);
  const auto tokens = batch_for_step(77, 2, 12, 512);
  const auto la = a.logits(tokens.data(), tokens.size(), 2, 12);
  const auto lb = b.logits(tokens.data(), tokens.size(), 2, 12);
  CHECK(la.size() == static_cast<size_t>(2 * 12 * 512));
  CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
  // Tied export has no lm_head tensor, like transformers' own save_pretrained.
  SafeTensorsReader file(dir + "/model.safetensors");
  CHECK(file.find("lm_head.weight") == nullptr);
  CHECK(file.find("model.layers.1.mlp.down_proj.weight") != nullptr);
}

TEST(bf16_safetensors_import_upcasts_exactly) {
  Trainer a(small_options(3));
  const auto params = a.parameters();
  const std::string dir = temp_dir("bf16");
  // Hand-write a BF16 file: the upper 16 bits of each fp32 value.
  std::string header = "{";
  uint64_t offset = 0;
  for (const auto& t : params) {
    header += (offset ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"BF16\",\"shape\":" +
              shape_string(t.shape) + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.values.size() * 2) + "]}";
    offset += t.values.size() * 2;
  }
  header += "}";
  std::ofstream out(dir + "/model.safetensors", std::ios::binary);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const auto& t : params)
    for (float f : t.values) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      const uint16_t hi = static_cast<uint16_t>(bits >> 16);
      out.write(reinterpret_cast<const char*>(&hi), 2);
    }
  out.close();
  Trainer b(small_options(4));
  b.import_hf(dir);
  const auto got = b.parameters();
  for (size_t i = 0; i < params.size(); ++i)
    for (size_t j = 0; j < params[i].values.size(); ++j) {
      uint32_t bits;
      std::memcpy(&bits, &params[i].values[j], 4);
      bits &= 0xFFFF0000u;
      float want;
      std::memcpy(&want, &bits, 4);
      CHECK_MSG(got[i].values[j] == want, params[i].name << "[" << j << "]");
    }
}

TEST(load_state_refuses_a_different_model) {
  Trainer a(small_options(5));
  const std::string dir = temp_dir("mismatch");
  a.save_state(dir);
  TrainerOptions other = small_options(5);
  other.model.num_layers = 3;
  Trainer b(other);
  CHECK_THROWS_WITH(b.load_state(dir), "was saved for a different model (hidden=64 layers=2");
  CHECK_THROWS_WITH(b.import_hf(dir), "describes a different model");
  CHECK(b.step_count() == 0);
}

TEST(truncated_or_wrong_shape_safetensors_are_rejected) {
  Trainer a(small_options(6));
  const std::string dir = temp_dir("truncated");
  a.export_hf(dir);
  const std::string path = dir + "/model.safetensors";
  struct stat st{};
  CHECK(stat(path.c_str(), &st) == 0);
  CHECK(truncate(path.c_str(), st.st_size - 100) == 0);
  CHECK_THROWS_WITH(a.import_hf(dir), "is truncated: tensor");
  CHECK(truncate(path.c_str(), 5) == 0);
  CHECK_THROWS_WITH(a.import_hf(dir), "shorter than its 8-byte header length");
  // A tensor with the wrong shape (written for a wider model), without config.json.
  TrainerOptions wide = small_options(6);
  wide.model.intermediate_size = 128;
  Trainer w(wide);
  const std::string dir2 = temp_dir("shape");
  w.export_hf(dir2);
  std::remove((dir2 + "/config.json").c_str());
  CHECK_THROWS_WITH(a.import_hf(dir2), "model.layers.0.mlp.gate_proj.weight has shape [128,64] but this model needs [256,64]");
  const std::string garbage("\x0a\0\0\0\0\0\0\0{not json}xxxxxx", 24);
  std::ofstream(dir2 + "/model.safetensors", std::ios::binary | std::ios::trunc) << garbage;
  CHECK_THROWS_WITH(a.import_hf(dir2), "invalid JSON");
}
