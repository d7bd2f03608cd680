// Bad inputs produce exceptions naming the problem and leave the trainer usable and unchanged.
#include "check.h"
#include "core/trainer.h"

using namespace smolstage;

namespace {
TrainerOptions opts() {
  TrainerOptions o;
  o.model = preset_config("tiny");
  o.model.vocab_size = 100;
  o.threads = 2;
  return o;
}
}  // namespace

TEST(bad_tokens_and_shapes_are_reported) {
  Trainer t(opts());
  std::vector<uint32_t> tokens(2 * 9, 5);
  tokens[13] = 100;
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), 2, 1, 8), "token id 100 at index 13 is out of range: vocabSize is 100");
  CHECK(t.step_count() == 0);
  tokens[13] = 1;
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size() - 1, 2, 1, 8), "token array has 17 ids but batchSize 2 × 9 = 18");
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), 2, 3, 8), "must be a multiple of microBatchSize");
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), 0, 1, 8), "batchSize must be a positive integer");
  CHECK_THROWS_WITH(t.eval_loss(tokens.data(), tokens.size(), 2, 0), "seqLen must be a positive integer");
  std::vector<uint32_t> long_tokens(4000, 1);
  CHECK_THROWS_WITH(t.eval_loss(long_tokens.data(), long_tokens.size(), 1, 3999), "exceeds maxPositionEmbeddings 2048");
  CHECK_THROWS_WITH(t.score_choices({}, {{1}}), "context must hold at least one token id");
  CHECK_THROWS_WITH(t.score_choices({1, 2}, {{3}, {}}), "choice 1 is empty");
  CHECK_THROWS_WITH(t.score_choices({1, 2}, {{300}}), "token id 300");
  // Still trains after all that.
  const StepResult r = t.step(tokens.data(), tokens.size(), 2, 1, 8);
  CHECK(r.step == 1 && r.tokens == 16 && std::isfinite(r.loss));
}

TEST(bad_options_are_reported) {
  TrainerOptions o = opts();
#ifndef SMOLSTAGE_HAVE_CUDA  // CUDA builds test the cuda backend in cuda_ops_test.cpp
  o.backend = "cuda";
  CHECK_THROWS_WITH(Trainer{o}, "backend 'cuda' is not built");
#endif
  o.backend = "tpu";
  CHECK_THROWS_WITH(Trainer{o}, "valid backends: cpu, cuda");
  o = opts();
  o.optimizer.beta2 = 1.0;
  CHECK_THROWS_WITH(Trainer{o}, "betas[1] must be in [0, 1)");
  o = opts();
  o.model.num_kv_heads = 3;
  CHECK_THROWS_WITH(Trainer{o}, "numHeads (4) must be divisible by numKvHeads (3)");
  Trainer t(opts());
  CHECK_THROWS_WITH(t.set_rope_theta(-5), "ropeTheta must be a finite number > 1");
  CHECK_THROWS_WITH(t.load_state("/nonexistent/dir"), "optimizer.bin missing");
  CHECK_THROWS_WITH(t.import_hf("/nonexistent/dir"), "cannot open /nonexistent/dir/model.safetensors");
}

TEST(score_choices_prefers_the_likelier_continuation_consistently) {
  Trainer t(opts());
  // Score equals minus the summed per-token losses computed by eval_loss on the same row.
  const std::vector<uint32_t> ctx = {4, 8, 15}, choice = {16, 23};
  const auto scores = t.score_choices(ctx, {choice});
  const std::vector<uint32_t> row = {4, 8, 15, 16, 23};
  // eval_loss over a row with seq_len 4 averages 4 positions; the choice covers the last 2.
  const std::vector<uint32_t> prefix = {4, 8, 15};
  const double all = t.eval_loss(row.data(), row.size(), 1, 4) * 4;
  const double head = t.eval_loss(prefix.data(), prefix.size(), 1, 2) * 2;
  CHECK_NEAR(scores[0], -(all - head), 1e-4);
}
