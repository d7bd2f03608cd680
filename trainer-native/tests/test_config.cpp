#include "check.h"
#include "core/config.h"

using namespace smolstage;

TEST(presets_match_smollm2_configs) {
  const ModelConfig a = preset_config("smollm2-135m");
  CHECK(a.hidden_size == 576 && a.num_layers == 30 && a.num_heads == 9 && a.num_kv_heads == 3);
  CHECK(a.intermediate_size == 1536 && a.rope_theta == 100000.0 && a.vocab_size == 49152 && a.tie_embeddings);
  const ModelConfig b = preset_config("smollm2-360m");
  CHECK(b.hidden_size == 960 && b.num_layers == 32 && b.num_heads == 15 && b.num_kv_heads == 5);
  CHECK(b.intermediate_size == 2560 && b.rope_theta == 100000.0);
  const ModelConfig c = preset_config("smollm2-1.7b");
  CHECK(c.hidden_size == 2048 && c.num_layers == 24 && c.num_heads == 32 && c.num_kv_heads == 32);
  CHECK(c.intermediate_size == 8192 && c.rope_theta == 130000.0 && c.rms_norm_eps == 1e-5);
  for (const auto& name : preset_names()) validate_config(preset_config(name));
}

TEST(unknown_preset_lists_valid_names) {
  CHECK_THROWS_WITH(preset_config("smollm3"), "valid presets: smollm2-135m, smollm2-360m, smollm2-1.7b, tiny");
}

TEST(inconsistent_configs_are_rejected_with_the_field_named) {
  ModelConfig c = preset_config("tiny");
  c.num_heads = 5;
  CHECK_THROWS_WITH(validate_config(c), "hiddenSize (64) must be divisible by numHeads (5)");
  c = preset_config("tiny-gqa");
  c.num_kv_heads = 3;
  CHECK_THROWS_WITH(validate_config(c), "numHeads (4) must be divisible by numKvHeads (3)");
  c = preset_config("tiny");
  c.hidden_size = 12;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  CHECK_THROWS_WITH(validate_config(c), "must be even for rotary embeddings");
  c = preset_config("tiny");
  c.vocab_size = 0;
  CHECK_THROWS_WITH(validate_config(c), "vocabSize must be a positive integer");
  c = preset_config("tiny");
  c.rms_norm_eps = -1;
  CHECK_THROWS_WITH(validate_config(c), "rmsNormEps");
}
