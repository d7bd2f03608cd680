// Post-training primitives: per-token loss weights, sequence log-probs, DPO (loss, rewards and a
// finite-difference check of its gradient), a fresh optimizer and schedule start, KV-cache
// generation (against the full forward), and importing released HF checkpoints.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "check.h"
#include "core/generate.h"
#include "core/safetensors.h"
#include "core/trainer.h"

using namespace smolstage;

namespace {

TrainerOptions options(uint64_t seed, double init = 0.3) {
  TrainerOptions o;
  o.model.hidden_size = 16;
  o.model.num_layers = 2;
  o.model.num_heads = 4;
  o.model.num_kv_heads = 2;
  o.model.intermediate_size = 24;
  o.model.vocab_size = 29;
  o.model.max_position_embeddings = 64;
  o.model.initializer_range = init;
  o.optimizer = {0.9, 0.95, 1e-8, 0.1, 1.0};
  o.schedule.peak_lr = 1e-2;
  o.schedule.warmup_steps = 3;
  o.seed = seed;
  o.threads = 2;
  return o;
}

std::vector<uint32_t> random_tokens(size_t n, uint64_t seed, uint32_t vocab = 29) {
  Rng rng(seed);
  std::vector<uint32_t> t(n);
  for (auto& x : t) x = static_cast<uint32_t>(rng.next() % vocab);
  return t;
}

// 0/1 masks with a prefix of zeros per row (a "prompt") and some zero padding at the end.
std::vector<float> mask(int rows, int seq, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> w(static_cast<size_t>(rows) * seq, 0.0f);
  for (int r = 0; r < rows; ++r) {
    const int start = 1 + static_cast<int>(rng.next() % (seq / 2));
    const int end = seq - static_cast<int>(rng.next() % 3);
    for (int t = start; t < end; ++t) w[static_cast<size_t>(r) * seq + t] = 1.0f;
  }
  return w;
}

std::string temp_dir(const char* tag) {
  const auto base = std::filesystem::temp_directory_path() / (std::string("smolstage-post-") + tag + "-XXXXXX");
  std::string tmpl = base.string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Finite differences of `loss` against the analytic gradients `grads`, on a sample of
// coordinates of every tensor, as in test_gradcheck.cpp.
void gradcheck(Trainer& t, const std::function<double()>& loss, const std::vector<HostTensor>& grads) {
  std::vector<HostTensor> params = t.parameters();
  Rng rng(99);
  const std::string dir = temp_dir("gradcheck");
  for (size_t ti = 0; ti < params.size(); ++ti) {
    std::vector<double> analytic, numeric;
    for (int s = 0; s < 6; ++s) {
      const size_t i = static_cast<size_t>(rng.next() % params[ti].values.size());
      const float saved = params[ti].values[i];
      const float h = 1e-2f;
      double f[2];
      for (int side = 0; side < 2; ++side) {
        params[ti].values[i] = saved + (side ? -h : h);
        std::vector<TensorView> views;
        for (const auto& p : params) views.push_back({p.name, p.shape, p.values.data()});
        write_safetensors(dir + "/model.safetensors", views);
        t.import_hf(dir);
        f[side] = loss();
      }
      params[ti].values[i] = saved;
      analytic.push_back(grads[ti].values[i]);
      numeric.push_back((f[0] - f[1]) / (2.0 * h));
    }
    double norm = 0;
    for (double g : numeric) norm += g * g;
    if (norm < 1e-14) continue;  // e.g. embedding rows of tokens that do not occur
    const double err = check::rel_error(analytic, numeric);
    CHECK_MSG(err < 2e-2, params[ti].name << ": analytic vs finite-difference relative error " << err);
  }
  std::vector<TensorView> views;
  for (const auto& p : params) views.push_back({p.name, p.shape, p.values.data()});
  write_safetensors(dir + "/model.safetensors", views);
  t.import_hf(dir);
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST(weights_all_ones_equal_the_plain_mean) {
  Trainer a(options(3)), b(options(3));
  const int B = 3, T = 7;
  const auto tokens = random_tokens(static_cast<size_t>(B) * (T + 1), 5);
  const std::vector<float> ones(static_cast<size_t>(B) * T, 1.0f);
  const double plain = a.compute_gradients(tokens.data(), tokens.size(), B, 1, T);
  const double weighted = b.compute_gradients(tokens.data(), tokens.size(), B, 1, T, ones.data(), ones.size());
  CHECK_NEAR(plain, weighted, 1e-12 * std::fabs(plain));
  const auto ga = a.gradients(), gb = b.gradients();
  for (size_t i = 0; i < ga.size(); ++i)
    CHECK_MSG(max_abs_diff(ga[i].values, gb[i].values) < 1e-7, ga[i].name << " differs");
  CHECK_NEAR(a.eval_loss(tokens.data(), tokens.size(), B, T), b.eval_loss(tokens.data(), tokens.size(), B, T,
                                                                          ones.data(), ones.size()),
             1e-12);
}

TEST(weighted_loss_is_the_masked_mean_and_its_gradient_checks) {
  Trainer t(options(4));
  const int B = 3, T = 8;
  const auto tokens = random_tokens(static_cast<size_t>(B) * (T + 1), 6);
  auto w = mask(B, T, 7);
  w[3] = 2.5f;  // non-binary weights too
  // The masked mean by hand from per-row log-probs of single tokens.
  const double loss = t.compute_gradients(tokens.data(), tokens.size(), B, 1, T, w.data(), w.size());
  std::vector<float> unit(w.size(), 0.0f);
  double num = 0, den = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    std::fill(unit.begin(), unit.end(), 0.0f);
    unit[i] = 1.0f;
    const auto lp = t.sequence_log_probs(tokens.data(), tokens.size(), unit.data(), unit.size(), B, B, T);
    num -= w[i] * lp[i / T];
    den += w[i];
  }
  CHECK_NEAR(loss, num / den, 1e-6 * std::fabs(loss));
  CHECK_NEAR(t.eval_loss(tokens.data(), tokens.size(), B, T, w.data(), w.size()), loss, 1e-6 * std::fabs(loss));
  // Micro-batches give the same loss and gradients.
  const auto grads = t.gradients();
  const double again = t.compute_gradients(tokens.data(), tokens.size(), B, B, T, w.data(), w.size());
  CHECK_NEAR(again, loss, 1e-6 * std::fabs(loss));
  const auto grads_full = t.gradients();
  for (size_t i = 0; i < grads.size(); ++i)
    CHECK_MSG(check::rel_error(std::vector<double>(grads[i].values.begin(), grads[i].values.end()),
                               std::vector<double>(grads_full[i].values.begin(), grads_full[i].values.end())) < 1e-5,
              grads[i].name << ": micro-batch split changes the gradient");
  gradcheck(t, [&] { return t.eval_loss(tokens.data(), tokens.size(), B, T, w.data(), w.size()); }, grads);
}

TEST(weights_are_validated) {
  Trainer t(options(4));
  const int B = 2, T = 4;
  const auto tokens = random_tokens(static_cast<size_t>(B) * (T + 1), 6);
  std::vector<float> w(static_cast<size_t>(B) * T, 1.0f);
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), B, 1, T, w.data(), w.size() - 1), "one weight per target token");
  w[5] = -1.0f;
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), B, 1, T, w.data(), w.size()), "step(weights)[5]");
  std::fill(w.begin(), w.end(), 0.0f);
  CHECK_THROWS_WITH(t.step(tokens.data(), tokens.size(), B, 1, T, w.data(), w.size()), "sum to 0");
  CHECK(t.step_count() == 0);
}

namespace {

struct Pairs {
  int P = 4, T = 9;
  std::vector<uint32_t> chosen, rejected;
  std::vector<float> wc, wr;
  std::vector<double> refc, refr;
  PreferenceBatch batch() const {
    PreferenceBatch b;
    b.chosen = chosen.data();
    b.rejected = rejected.data();
    b.chosen_count = chosen.size();
    b.rejected_count = rejected.size();
    b.chosen_weights = wc.data();
    b.rejected_weights = wr.data();
    b.chosen_weight_count = wc.size();
    b.rejected_weight_count = wr.size();
    b.ref_chosen = refc.data();
    b.ref_rejected = refr.data();
    b.ref_chosen_count = refc.size();
    b.ref_rejected_count = refr.size();
    return b;
  }
};

// Pairs sharing a prompt; the reference log-probs come from a differently seeded model.
Pairs make_pairs() {
  Pairs p;
  p.chosen = random_tokens(static_cast<size_t>(p.P) * (p.T + 1), 11);
  p.rejected = random_tokens(p.chosen.size(), 12);
  for (int r = 0; r < p.P; ++r)
    for (int t = 0; t < 3; ++t) p.rejected[r * (p.T + 1) + t] = p.chosen[r * (p.T + 1) + t];
  p.wc.assign(static_cast<size_t>(p.P) * p.T, 0.0f);
  p.wr = p.wc;
  for (int r = 0; r < p.P; ++r)
    for (int t = 2; t < p.T - (r % 2); ++t) p.wc[r * p.T + t] = p.wr[r * p.T + t] = 1.0f;
  Trainer ref(options(77));
  p.refc = ref.sequence_log_probs(p.chosen.data(), p.chosen.size(), p.wc.data(), p.wc.size(), p.P, p.P, p.T);
  p.refr = ref.sequence_log_probs(p.rejected.data(), p.rejected.size(), p.wr.data(), p.wr.size(), p.P, p.P, p.T);
  return p;
}

double host_dpo_loss(Trainer& t, const Pairs& p, double beta, DpoResult* metrics = nullptr) {
  const auto c = t.sequence_log_probs(p.chosen.data(), p.chosen.size(), p.wc.data(), p.wc.size(), p.P, 1, p.T);
  const auto r = t.sequence_log_probs(p.rejected.data(), p.rejected.size(), p.wr.data(), p.wr.size(), p.P, 2, p.T);
  double loss = 0, rc_sum = 0, rr_sum = 0, acc = 0;
  for (int i = 0; i < p.P; ++i) {
    const double rc = beta * (c[i] - p.refc[i]), rr = beta * (r[i] - p.refr[i]);
    loss += std::log1p(std::exp(-(rc - rr)));
    rc_sum += rc;
    rr_sum += rr;
    acc += rc > rr;
  }
  if (metrics) {
    metrics->rewards_chosen = rc_sum / p.P;
    metrics->rewards_rejected = rr_sum / p.P;
    metrics->rewards_accuracy = acc / p.P;
    metrics->rewards_margin = (rc_sum - rr_sum) / p.P;
  }
  return loss / p.P;
}

}  // namespace

TEST(dpo_loss_rewards_and_gradient_check) {
  const Pairs p = make_pairs();
  const double beta = 0.5;
  Trainer t(options(5));
  DpoOptions o{beta, p.P, 2, p.T};
  const DpoResult r = t.dpo_gradients(p.batch(), o);
  DpoResult want{};
  const double loss = host_dpo_loss(t, p, beta, &want);
  CHECK_NEAR(r.step.loss, loss, 1e-6 * loss);
  CHECK_NEAR(r.rewards_chosen, want.rewards_chosen, 1e-6);
  CHECK_NEAR(r.rewards_rejected, want.rewards_rejected, 1e-6);
  CHECK_NEAR(r.rewards_margin, want.rewards_margin, 1e-6);
  CHECK(r.rewards_accuracy == want.rewards_accuracy);
  CHECK(r.step.tokens == 2 * p.P * p.T);
  CHECK(std::fabs(r.rewards_margin) > 1e-3);  // the reference differs, so the check is not at z = 0
  const auto grads = t.gradients();
  // Micro-batch split: one pair at a time gives the same gradients.
  DpoOptions one{beta, p.P, 1, p.T};
  const DpoResult r1 = t.dpo_gradients(p.batch(), one);
  CHECK_NEAR(r1.step.loss, r.step.loss, 1e-6 * loss);
  const auto grads1 = t.gradients();
  for (size_t i = 0; i < grads.size(); ++i)
    CHECK_MSG(check::rel_error(std::vector<double>(grads[i].values.begin(), grads[i].values.end()),
                               std::vector<double>(grads1[i].values.begin(), grads1[i].values.end())) < 1e-5,
              grads[i].name << ": micro-batch split changes the DPO gradient");
  gradcheck(t, [&] { return host_dpo_loss(t, p, beta); }, grads);
  // A DPO step lowers the loss on these pairs and validates its input.
  Trainer s(options(5));
  const DpoResult first = s.dpo_step(p.batch(), o);
  for (int i = 0; i < 5; ++i) s.dpo_step(p.batch(), o);
  CHECK(host_dpo_loss(s, p, beta) < first.step.loss);
  CHECK(s.step_count() == 6);
  Pairs bad = p;
  bad.refc.pop_back();
  CHECK_THROWS_WITH(s.dpo_step(bad.batch(), o), "one value per pair");
  DpoOptions no_beta{0.0, p.P, 2, p.T};
  CHECK_THROWS_WITH(s.dpo_step(p.batch(), no_beta), "beta");
}

TEST(reset_optimizer_matches_a_fresh_trainer_and_resumes_bit_exactly) {
  const int B = 2, T = 8;
  TrainerOptions o = options(8, 0.05);
  Trainer a(o);
  for (int s = 0; s < 3; ++s) {
    const auto tok = random_tokens(static_cast<size_t>(B) * (T + 1), 100 + s);
    a.step(tok.data(), tok.size(), B, 1, T);
  }
  // Post-training stage: fresh moments, warmup from step 3.
  a.reset_optimizer();
  ScheduleConfig post = o.schedule;
  post.start_step = 3;
  a.set_schedule(post);
  const std::string dir = temp_dir("reset");
  a.export_hf(dir + "/hf");
  Trainer fresh(o);  // step 0, start 0: the same lr and bias correction for its first update
  fresh.import_hf(dir + "/hf");
  const auto tok = random_tokens(static_cast<size_t>(B) * (T + 1), 200);
  const StepResult ra = a.step(tok.data(), tok.size(), B, 1, T);
  const StepResult rf = fresh.step(tok.data(), tok.size(), B, 1, T);
  CHECK(ra.lr == rf.lr);
  CHECK(ra.lr == o.schedule.peak_lr / 3);
  CHECK(ra.step == 4);
  const auto pa = a.parameters(), pf = fresh.parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    CHECK_MSG(std::memcmp(pa[i].values.data(), pf[i].values.data(), pa[i].values.size() * 4) == 0,
              pa[i].name << " differs from a fresh optimizer's first update");
  // Save mid-stage, continue; a trainer loaded from the save continues identically.
  a.save_state(dir + "/ckpt");
  std::vector<StepResult> cont;
  for (int s = 0; s < 2; ++s) {
    const auto t2 = random_tokens(static_cast<size_t>(B) * (T + 1), 300 + s);
    cont.push_back(a.step(t2.data(), t2.size(), B, 1, T));
  }
  TrainerOptions o2 = o;
  o2.schedule = post;
  Trainer b(o2);
  b.load_state(dir + "/ckpt");
  CHECK(b.moments_from() == 3);
  for (int s = 0; s < 2; ++s) {
    const auto t2 = random_tokens(static_cast<size_t>(B) * (T + 1), 300 + s);
    const StepResult r = b.step(t2.data(), t2.size(), B, 1, T);
    CHECK(r.loss == cont[s].loss);
    CHECK(r.grad_norm == cont[s].grad_norm);
    CHECK(r.lr == cont[s].lr);
  }
  const auto pa2 = a.parameters(), pb = b.parameters();
  for (size_t i = 0; i < pa2.size(); ++i)
    CHECK(std::memcmp(pa2[i].values.data(), pb[i].values.data(), pa2[i].values.size() * 4) == 0);
  std::filesystem::remove_all(dir);
}

TEST(schedule_start_step_moves_the_warmup) {
  ScheduleConfig s;
  s.peak_lr = 1.0;
  s.warmup_steps = 4;
  s.start_step = 10;
  s.decay_start_step = 20;
  s.decay_steps = 5;
  CHECK(learning_rate(s, 10) == 0.25);
  CHECK(learning_rate(s, 13) == 1.0);
  CHECK(learning_rate(s, 14) == 1.0);
  CHECK(learning_rate(s, 5) == 0.25);  // before the start: the first warmup value
  CHECK_NEAR(learning_rate(s, 21), 0.6, 1e-12);  // decay stays absolute
  s.start_step = -1;
  CHECK_THROWS_WITH(validate_schedule(s), "startStep");
}

TEST(kv_cache_decoding_matches_the_full_forward) {
  Trainer t(options(9, 0.1));
  const int V = 29;
  const auto seq = random_tokens(5, 13);
  // Greedy generation through the KV cache equals re-running the whole sequence each step.
  std::vector<uint32_t> prompt(seq.begin(), seq.begin() + 5);
  GenerateOptions g;
  g.max_new_tokens = 10;
  const GenerateResult r = t.generate(prompt, g);
  CHECK(r.tokens.size() == 10);
  CHECK(r.finish_reason == "length");
  std::vector<uint32_t> ctx = prompt;
  for (int i = 0; i < 10; ++i) {
    const auto lg = t.logits(ctx.data(), ctx.size(), 1, static_cast<int>(ctx.size()));
    Rng unused;
    const uint32_t want = sample_token(lg.data() + (ctx.size() - 1) * V, V, 0.0, 1.0, unused);
    CHECK_MSG(r.tokens[i] == want, "token " << i << ": kv cache " << r.tokens[i] << " vs full forward " << want);
    ctx.push_back(want);
  }
}

TEST(decode_logits_equal_forward_logits_at_every_position) {
  TrainerOptions o = options(10, 0.1);
  auto backend = make_backend("cpu");
  Model m(o.model, *backend);
  Rng rng(1);
  m.init_weights(rng);
  const int L = 11, V = o.model.vocab_size;
  const auto seq = random_tokens(L, 14);
  std::vector<int32_t> ids(seq.begin(), seq.end());
  m.forward(ids.data(), 1, L);
  std::vector<float> full(static_cast<size_t>(L) * V);
  m.logits(full.data());
  m.begin_decode(L);
  std::vector<float> step(V);
  m.decode(ids.data(), 4, step.data());  // prefill
  double worst = 0;
  auto compare = [&](int pos) {
    std::vector<double> a(step.begin(), step.end()), b(full.begin() + pos * V, full.begin() + (pos + 1) * V);
    worst = std::max(worst, check::rel_error(a, b));
  };
  compare(3);
  for (int p = 4; p < L; ++p) {
    m.decode(ids.data() + p, 1, step.data());
    compare(p);
  }
  CHECK_MSG(worst < 1e-5, "decode vs forward logits: relative error " << worst);
  CHECK(m.decode_length() == L);
  CHECK_THROWS_WITH(m.decode(ids.data(), 1, step.data()), "exceed the cache");
  m.end_decode();
  // Training after decoding is unaffected.
  m.forward(ids.data(), 1, L);
  std::vector<float> again(full.size());
  m.logits(again.data());
  CHECK(std::memcmp(again.data(), full.data(), full.size() * 4) == 0);
}

TEST(sampling_seed_top_p_and_stop_ids) {
  Trainer t(options(11, 0.5));
  const std::vector<uint32_t> prompt = {1, 2, 3};
  GenerateOptions g;
  g.max_new_tokens = 12;
  g.temperature = 1.0;
  g.seed = 5;
  const auto a = t.generate(prompt, g), b = t.generate(prompt, g);
  CHECK(a.tokens == b.tokens);
  g.seed = 6;
  const auto c = t.generate(prompt, g);
  CHECK(a.tokens != c.tokens);
  // A tiny nucleus is the argmax.
  g.top_p = 1e-9;
  GenerateOptions greedy;
  greedy.max_new_tokens = 12;
  CHECK(t.generate(prompt, g).tokens == t.generate(prompt, greedy).tokens);
  // Stop at the first generated stop id, which is included.
  const auto full = t.generate(prompt, greedy);
  greedy.stop_ids = {full.tokens[4]};
  const auto stopped = t.generate(prompt, greedy);
  CHECK(stopped.finish_reason == "stop");
  CHECK(stopped.tokens.back() == full.tokens[4]);
  CHECK(stopped.tokens.size() <= 5);
  // Sampling frequencies follow softmax(logits / temperature).
  const float logits[2] = {0.0f, static_cast<float>(std::log(3.0))};
  Rng rng(3);
  int ones = 0;
  for (int i = 0; i < 20000; ++i) ones += sample_token(logits, 2, 1.0, 1.0, rng) == 1;
  CHECK_NEAR(ones / 20000.0, 0.75, 0.02);
  ones = 0;
  for (int i = 0; i < 20000; ++i) ones += sample_token(logits, 2, 0.5, 1.0, rng) == 1;
  CHECK_NEAR(ones / 20000.0, 0.9, 0.02);  // 9 : 1 at temperature 1/2
  GenerateOptions bad = greedy;
  bad.max_new_tokens = 64;
  CHECK_THROWS_WITH(t.generate(prompt, bad), "exceeds maxPositionEmbeddings");
  bad.max_new_tokens = 2;
  bad.top_p = 0;
  CHECK_THROWS_WITH(t.generate(prompt, bad), "topP");
  CHECK_THROWS_WITH(t.generate({40}, greedy), "out of range");
}

namespace {
std::string hf_config(const std::string& eps, const std::string& rope) {
  return "{\"model_type\": \"llama\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
         " \"num_key_value_heads\": 2, \"intermediate_size\": 24, \"vocab_size\": 29,"
         " \"max_position_embeddings\": 64, \"rms_norm_eps\": " + eps + ", \"tie_word_embeddings\": true" + rope + "}";
}
}  // namespace

TEST(hf_config_rope_parameters_and_float_tolerance) {
  const std::string dir = temp_dir("hfconfig");
  write_text(dir + "/config.json", hf_config("9.999999747378752e-06",
                                             ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 100000.0}"));
  const ModelConfig c = read_hf_config(dir);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.rms_norm_eps == 9.999999747378752e-06);
  Trainer t(options(12));
  CHECK(same_architecture(c, t.config()));  // float32-rounded eps is the same 1e-5
  write_text(dir + "/config.json", hf_config("1e-6", ""));
  const std::string msg = check::thrown_message([&] { t.import_hf(dir); });
  CHECK_MSG(msg.find("rmsNormEps: 9.9999999999999995e-07 vs 1.0000000000000001e-05") != std::string::npos, msg);
  write_text(dir + "/config.json", hf_config("1e-5", ", \"rope_theta\": 5.0, \"rope_parameters\": {\"rope_theta\": 7.0}"));
  CHECK_THROWS_WITH(read_hf_config(dir), "disagree");
  write_text(dir + "/config.json", hf_config("1e-5", ", \"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 7.0}"));
  CHECK_THROWS_WITH(read_hf_config(dir), "only \"default\" RoPE");
  std::filesystem::remove_all(dir);
}

TEST(import_sharded_safetensors_with_an_index) {
  Trainer src(options(13));
  const auto params = src.parameters();
  const std::string dir = temp_dir("sharded");
  std::vector<TensorView> first, second;
  std::string map;
  for (size_t i = 0; i < params.size(); ++i) {
    const bool one = i < params.size() / 2;
    (one ? first : second).push_back({params[i].name, params[i].shape, params[i].values.data()});
    map += std::string(map.empty() ? "" : ", ") + "\"" + params[i].name + "\": \"model-0000" + (one ? "1" : "2") +
           "-of-00002.safetensors\"";
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", second);
  write_text(dir + "/model.safetensors.index.json", "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {" + map + "}}");
  write_text(dir + "/config.json", hf_config("1e-05", ""));
  Trainer dst(options(14));
  dst.import_hf(dir);
  const auto got = dst.parameters();
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].values == params[i].values);
  // A map entry pointing at a shard without the tensor is named.
  const std::string wrong = "\"model.embed_tokens.weight\": \"model-00002-of-00002.safetensors\"" + map.substr(map.find(", "));
  write_text(dir + "/model.safetensors.index.json", "{\"weight_map\": {" + wrong + "}}");
  CHECK_THROWS_WITH(dst.import_hf(dir), "has no tensor model.embed_tokens.weight");
  std::filesystem::remove_all(dir);
}
