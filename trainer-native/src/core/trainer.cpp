#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace smolstage {

void validate_optimizer(const OptimizerConfig& o) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("invalid optimizer config: " + m); };
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail("betas[0] must be in [0, 1)");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail("betas[1] must be in [0, 1)");
  if (!(std::isfinite(o.eps) && o.eps > 0)) fail("eps must be a finite number > 0");
  if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0)) fail("weightDecay must be a finite number >= 0");
  if (!std::isfinite(o.grad_clip)) fail("gradClip must be finite (use 0 to disable clipping)");
}

Trainer::Trainer(const TrainerOptions& options) : options_(options), rng_(options.seed) {
  validate_config(options_.model);
  validate_optimizer(options_.optimizer);
  validate_schedule(options_.schedule);
  validate_distributed(options_.distributed);
  backend_ = make_backend(options_.backend);
  begin_call();
  model_ = std::make_unique<Model>(options_.model, *backend_);
  m_ = backend_->alloc(model_->num_params());
  v_ = backend_->alloc(model_->num_params());
  model_->init_weights(rng_);
  comm_ = make_communicator(options_.distributed, options_.backend);
  if (comm_) {
    plan_buckets(options_.distributed.bucket_bytes);
    // Every rank must start from the same weights (same seed and config): check it now rather
    // than find diverged checkpoints later.
    verify_parameters();
  }
}

// Buckets are runs of whole tensors taken from the end of the flat buffer (the order the
// backward produces them), each at least bucket_bytes unless it is the last.
void Trainer::plan_buckets(size_t bucket_bytes) {
  const size_t target = std::max<size_t>(1, bucket_bytes / sizeof(float));
  const auto& tensors = model_->tensors();
  size_t end = model_->num_params();
  for (size_t i = tensors.size(); i-- > 0;) {
    const size_t begin = tensors[i].offset;
    if (end - begin >= target || i == 0) {
      buckets_.emplace_back(begin, end);
      end = begin;
    }
  }
}

Trainer::~Trainer() {
  comm_.reset();  // first: its thread may still reference the gradients
  model_.reset();
  if (backend_) {
    backend_->release(m_);
    backend_->release(v_);
  }
}

void Trainer::begin_call() { backend_->set_threads(options_.threads); }

void Trainer::check_batch(size_t count, int batch, int micro_batch, int seq_len, int row_len) const {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (batch <= 0) fail("batchSize must be a positive integer, got " + std::to_string(batch));
  if (micro_batch <= 0) fail("microBatchSize must be a positive integer, got " + std::to_string(micro_batch));
  if (batch % micro_batch != 0)
    fail("batchSize (" + std::to_string(batch) + ") must be a multiple of microBatchSize (" +
         std::to_string(micro_batch) + ")");
  if (seq_len <= 0) fail("seqLen must be a positive integer, got " + std::to_string(seq_len));
  if (seq_len > config().max_position_embeddings)
    fail("seqLen " + std::to_string(seq_len) + " exceeds maxPositionEmbeddings " +
         std::to_string(config().max_position_embeddings));
  const size_t expected = static_cast<size_t>(batch) * static_cast<size_t>(row_len);
  if (count != expected)
    fail("token array has " + std::to_string(count) + " ids but batchSize " + std::to_string(batch) + " × " +
         std::to_string(row_len) + " = " + std::to_string(expected) + " were expected" +
         (row_len == seq_len + 1 ? " (each row holds seqLen + 1 ids: inputs plus the shifted target)" : ""));
  if (static_cast<long long>(micro_batch) * seq_len > (1LL << 30))
    fail("microBatchSize × seqLen is too large for one micro-batch");
}

void Trainer::load_rows(const uint32_t* tokens, int first_row, int rows, int seq_len, int row_len) {
  const size_t n = static_cast<size_t>(rows) * seq_len;
  inputs_.resize(n);
  targets_.resize(n);
  const uint32_t vocab = static_cast<uint32_t>(config().vocab_size);
  for (int r = 0; r < rows; ++r) {
    const uint32_t* row = tokens + static_cast<size_t>(first_row + r) * row_len;
    for (int t = 0; t < row_len; ++t) {
      if (row[t] >= vocab)
        throw std::invalid_argument("token id " + std::to_string(row[t]) + " at index " +
                                    std::to_string(static_cast<size_t>(first_row + r) * row_len + t) +
                                    " is out of range: vocabSize is " + std::to_string(vocab));
    }
    for (int t = 0; t < seq_len; ++t) {
      inputs_[static_cast<size_t>(r) * seq_len + t] = static_cast<int32_t>(row[t]);
      if (row_len > seq_len) targets_[static_cast<size_t>(r) * seq_len + t] = static_cast<int32_t>(row[t + 1]);
    }
  }
}

void Trainer::check_weights(const float* weights, size_t count, int batch, int seq_len, const std::string& what) const {
  const size_t expected = static_cast<size_t>(batch) * seq_len;
  if (count != expected)
    throw std::invalid_argument(what + " has " + std::to_string(count) + " values but batchSize " + std::to_string(batch) +
                                " × seqLen " + std::to_string(seq_len) + " = " + std::to_string(expected) +
                                " were expected (one weight per target token)");
  for (size_t i = 0; i < count; ++i)
    if (!(std::isfinite(weights[i]) && weights[i] >= 0.0f))
      throw std::invalid_argument(what + "[" + std::to_string(i) + "] is " + std::to_string(weights[i]) +
                                  "; loss weights must be finite and >= 0");
}

void Trainer::run_accumulation(int batch, int micro_batch, const std::function<void(int)>& micro,
                               const std::function<void()>& finalize, double* values, size_t count,
                               StepResult* timing) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  backend_->fill(model_->grads(), model_->num_params(), 0.0f);
  size_t next_bucket = 0;
  float* grads = model_->grads();
  // Called as the backward finishes layers: starts every bucket whose tensors are all final.
  const std::function<void(size_t)> launch = [&](size_t ready_from) {
    while (next_bucket < buckets_.size() && buckets_[next_bucket].first >= ready_from) {
      const auto& b = buckets_[next_bucket++];
      comm_->start_average(grads + b.first, b.second - b.first);
    }
  };
  static const std::function<void(size_t)> none;
  try {
    for (int r0 = 0; r0 < batch; r0 += micro_batch) {
      micro(r0);
      // Gradients accumulate locally over micro-batches; only the last backward reduces them.
      const bool last = r0 + micro_batch >= batch;
      model_->backward(comm_ && last ? launch : none);
    }
  } catch (...) {
    // Buckets already started still write into the gradients: let them finish (or fail).
    if (comm_ && next_bucket > 0) {
      try {
        comm_->wait_gradients();
      } catch (const std::exception&) {
      }
    }
    throw;
  }
  finalize();
  const auto t1 = Clock::now();
  if (comm_) {
    comm_->wait_gradients();
    if (count) comm_->all_reduce(values, count, ReduceOp::Sum);
    const CommStats stats = comm_->take_stats();
    if (timing) {
      timing->comm_wait_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
      timing->comm_busy_seconds = stats.busy_seconds;
      timing->comm_bytes = stats.bytes;
    }
  }
  if (timing) timing->compute_seconds = std::chrono::duration<double>(t1 - t0).count();
}

double Trainer::accumulate_gradients(const uint32_t* tokens, int batch, int micro_batch, int seq_len,
                                     StepResult* timing, const float* weights) {
  row_losses_.resize(static_cast<size_t>(micro_batch) * seq_len);
  const size_t micro_tokens = static_cast<size_t>(micro_batch) * seq_len;
  if (!weights) {
    const double total_tokens = static_cast<double>(batch) * seq_len;
    const float grad_scale = static_cast<float>(1.0 / total_tokens);
    double loss_sum = 0.0, loss = 0.0;
    run_accumulation(
        batch, micro_batch,
        [&](int r0) {
          load_rows(tokens, r0, micro_batch, seq_len, seq_len + 1);
          model_->forward(inputs_.data(), micro_batch, seq_len);
          loss_sum += model_->head_loss(targets_.data(), grad_scale, true, row_losses_.data());
        },
        [&] { loss = loss_sum / total_tokens; }, &loss, 1, timing);
    // Equal batches per rank: the global mean is the mean of the ranks' means.
    if (comm_) loss /= comm_->world_size();
    return loss;
  }
  // Weighted: Σ w·CE / W with W = Σ w over every rank's batch, so the gradient scale of token i
  // is w_i / W; the ranks' gradients are averaged (× 1/world), hence world · w_i / W here.
  const size_t n = static_cast<size_t>(batch) * seq_len;
  double total_weight = 0.0;
  for (size_t i = 0; i < n; ++i) total_weight += weights[i];
  if (comm_) comm_->all_reduce(&total_weight, 1, ReduceOp::Sum);
  if (!(total_weight > 0.0))
    throw std::invalid_argument("the loss weights of the whole batch" + std::string(comm_ ? " (all ranks)" : "") +
                                " sum to 0: no token to train on");
  const double factor = static_cast<double>(world_size()) / total_weight;
  std::vector<float> scales(micro_tokens);
  double weighted_sum = 0.0, loss = 0.0;
  run_accumulation(
      batch, micro_batch,
      [&](int r0) {
        load_rows(tokens, r0, micro_batch, seq_len, seq_len + 1);
        const float* w = weights + static_cast<size_t>(r0) * seq_len;
        for (size_t i = 0; i < micro_tokens; ++i) scales[i] = static_cast<float>(w[i] * factor);
        model_->forward(inputs_.data(), micro_batch, seq_len);
        model_->head_loss(targets_.data(), 0.0f, true, row_losses_.data(), scales.data());
        for (size_t i = 0; i < micro_tokens; ++i) weighted_sum += static_cast<double>(w[i]) * row_losses_[i];
      },
      [&] { loss = weighted_sum / total_weight; }, &loss, 1, timing);
  return loss;
}

void Trainer::apply_update(double loss, StepResult& result) {
  const auto update_start = std::chrono::steady_clock::now();
  const size_t P = model_->num_params();
  const double norm = std::sqrt(backend_->sum_squares(model_->grads(), P));
  if (!std::isfinite(norm) || !std::isfinite(loss))
    throw std::runtime_error("non-finite loss (" + std::to_string(loss) + ") or gradient norm (" +
                             std::to_string(norm) + ") at step " + std::to_string(step_ + 1) +
                             "; the weights were not updated");
  const OptimizerConfig& o = options_.optimizer;
  // Same rule as torch.nn.utils.clip_grad_norm_: scale by clip / (norm + 1e-6) when below 1.
  if (o.grad_clip > 0) {
    const double coef = o.grad_clip / (norm + 1e-6);
    if (coef < 1.0) backend_->scale(model_->grads(), P, static_cast<float>(coef));
  }
  const double lr = learning_rate(options_.schedule, step_);
  ++step_;
  for (const auto& t : model_->tensors()) {
    AdamWHyper h{static_cast<float>(lr), static_cast<float>(o.beta1), static_cast<float>(o.beta2),
                 static_cast<float>(o.eps), t.decay ? static_cast<float>(o.weight_decay) : 0.0f,
                 step_ - moments_from_};
    backend_->adamw_update(model_->params() + t.offset, model_->grads() + t.offset, m_ + t.offset, v_ + t.offset,
                           t.numel, h);
  }
  result.loss = loss;
  result.grad_norm = norm;
  result.lr = lr;
  result.step = step_;
  result.compute_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - update_start).count();
}

StepResult Trainer::step(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len,
                         const float* weights, size_t weight_count) {
  check_batch(count, batch, micro_batch, seq_len, seq_len + 1);
  if (weights) check_weights(weights, weight_count, batch, seq_len, "step(weights)");
  begin_call();
  // Validate every id before touching gradients so a bad batch leaves the state unchanged.
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  StepResult result{};
  const double loss = accumulate_gradients(tokens, batch, micro_batch, seq_len, &result, weights);
  apply_update(loss, result);
  result.tokens = static_cast<int64_t>(batch) * seq_len * world_size();
  return result;
}

double Trainer::compute_gradients(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len,
                                  const float* weights, size_t weight_count) {
  check_batch(count, batch, micro_batch, seq_len, seq_len + 1);
  if (weights) check_weights(weights, weight_count, batch, seq_len, "gradients(weights)");
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  return accumulate_gradients(tokens, batch, micro_batch, seq_len, nullptr, weights);
}

double Trainer::eval_loss(const uint32_t* tokens, size_t count, int batch, int seq_len, const float* weights,
                          size_t weight_count) {
  check_batch(count, batch, batch, seq_len, seq_len + 1);
  if (weights) check_weights(weights, weight_count, batch, seq_len, "evalLoss(weights)");
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  row_losses_.resize(static_cast<size_t>(batch) * seq_len);
  model_->forward(inputs_.data(), batch, seq_len);
  const double sum = model_->head_loss(targets_.data(), 0.0f, false, row_losses_.data());
  if (!weights) return sum / (static_cast<double>(batch) * seq_len);
  double weighted = 0.0, total = 0.0;
  for (size_t i = 0; i < row_losses_.size(); ++i) {
    weighted += static_cast<double>(weights[i]) * row_losses_[i];
    total += weights[i];
  }
  if (!(total > 0.0)) throw std::invalid_argument("evalLoss(weights) sum to 0: no token to score");
  return weighted / total;
}

std::vector<double> Trainer::sequence_log_probs(const uint32_t* tokens, size_t count, const float* weights,
                                                size_t weight_count, int batch, int micro_batch, int seq_len) {
  check_batch(count, batch, micro_batch, seq_len, seq_len + 1);
  if (!weights) throw std::invalid_argument("sequenceLogProbs(weights) is required");
  check_weights(weights, weight_count, batch, seq_len, "sequenceLogProbs(weights)");
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  std::vector<double> out(static_cast<size_t>(batch), 0.0);
  row_losses_.resize(static_cast<size_t>(micro_batch) * seq_len);
  for (int r0 = 0; r0 < batch; r0 += micro_batch) {
    load_rows(tokens, r0, micro_batch, seq_len, seq_len + 1);
    model_->forward(inputs_.data(), micro_batch, seq_len);
    model_->head_loss(targets_.data(), 0.0f, false, row_losses_.data());
    for (int r = 0; r < micro_batch; ++r) {
      const float* w = weights + static_cast<size_t>(r0 + r) * seq_len;
      const float* l = row_losses_.data() + static_cast<size_t>(r) * seq_len;
      double s = 0.0;
      for (int t = 0; t < seq_len; ++t) s -= static_cast<double>(w[t]) * l[t];
      out[static_cast<size_t>(r0 + r)] = s;
    }
  }
  return out;
}

DpoResult Trainer::dpo_accumulate(const PreferenceBatch& b, const DpoOptions& o, StepResult* timing) {
  const int P = o.batch, M = o.micro_batch, S = o.seq_len;
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (!(std::isfinite(o.beta) && o.beta > 0)) fail("dpo: beta must be a finite number > 0");
  check_batch(b.chosen_count, P, M, S, S + 1);
  check_batch(b.rejected_count, P, M, S, S + 1);
  if (static_cast<long long>(M) * 2 * S > (1LL << 30)) fail("dpo: 2 × microBatchSize × seqLen is too large");
  if (!b.chosen_weights || !b.rejected_weights) fail("dpo: chosenWeights and rejectedWeights are required");
  check_weights(b.chosen_weights, b.chosen_weight_count, P, S, "dpo(chosenWeights)");
  check_weights(b.rejected_weights, b.rejected_weight_count, P, S, "dpo(rejectedWeights)");
  if (!b.ref_chosen || !b.ref_rejected || b.ref_chosen_count != static_cast<size_t>(P) ||
      b.ref_rejected_count != static_cast<size_t>(P))
    fail("dpo: refChosenLogps and refRejectedLogps must hold one value per pair (" + std::to_string(P) + ")");
  for (int p = 0; p < P; ++p)
    if (!std::isfinite(b.ref_chosen[p]) || !std::isfinite(b.ref_rejected[p]))
      fail("dpo: reference log-probs of pair " + std::to_string(p) + " are not finite");
  begin_call();
  load_rows(b.chosen, 0, P, S, S + 1);
  load_rows(b.rejected, 0, P, S, S + 1);
  const size_t half = static_cast<size_t>(M) * S;
  std::vector<int32_t> inputs(2 * half), targets(2 * half);
  std::vector<float> losses(2 * half), scales(2 * half);
  double sums[5] = {0, 0, 0, 0, 0};  // loss, chosen reward, rejected reward, accuracy, margin
  const double beta = o.beta;
  run_accumulation(
      P, M,
      [&](int r0) {
        // Rows [0, M) chosen, [M, 2M) rejected: one forward, like TRL's concatenated forward.
        load_rows(b.chosen, r0, M, S, S + 1);
        std::copy(inputs_.begin(), inputs_.end(), inputs.begin());
        std::copy(targets_.begin(), targets_.end(), targets.begin());
        load_rows(b.rejected, r0, M, S, S + 1);
        std::copy(inputs_.begin(), inputs_.end(), inputs.begin() + half);
        std::copy(targets_.begin(), targets_.end(), targets.begin() + half);
        model_->forward(inputs.data(), 2 * M, S);
        model_->head_loss(targets.data(), 0.0f, false, losses.data());
        for (int p = 0; p < M; ++p) {
          const size_t row = static_cast<size_t>(r0 + p) * S;
          const float* wc = b.chosen_weights + row;
          const float* wr = b.rejected_weights + row;
          const float* lc = losses.data() + static_cast<size_t>(p) * S;
          const float* lr = losses.data() + half + static_cast<size_t>(p) * S;
          double logp_c = 0.0, logp_r = 0.0;
          for (int t = 0; t < S; ++t) {
            logp_c -= static_cast<double>(wc[t]) * lc[t];
            logp_r -= static_cast<double>(wr[t]) * lr[t];
          }
          const double reward_c = beta * (logp_c - b.ref_chosen[r0 + p]);
          const double reward_r = beta * (logp_r - b.ref_rejected[r0 + p]);
          const double z = reward_c - reward_r;
          // −log σ(z) = softplus(−z), and d/dz = −σ(−z); both in a form stable for large |z|.
          sums[0] += std::max(-z, 0.0) + std::log1p(std::exp(-std::fabs(z)));
          sums[1] += reward_c;
          sums[2] += reward_r;
          sums[3] += reward_c > reward_r ? 1.0 : 0.0;
          sums[4] += z;
          const double sig = z >= 0 ? std::exp(-z) / (1.0 + std::exp(-z)) : 1.0 / (1.0 + std::exp(z));
          // logπ = −Σ w·CE, so ∂L/∂CE_t = β·σ(−z)·w_t / N on chosen tokens and −β·σ(−z)·w_t / N on
          // rejected ones, N = P·world pairs; the ranks' average supplies the 1/world.
          const double coef = beta * sig / P;
          for (int t = 0; t < S; ++t) {
            scales[static_cast<size_t>(p) * S + t] = static_cast<float>(coef * wc[t]);
            scales[half + static_cast<size_t>(p) * S + t] = static_cast<float>(-coef * wr[t]);
          }
        }
        model_->head_loss(targets.data(), 0.0f, true, losses.data(), scales.data());
      },
      [] {}, sums, 5, timing);
  const double pairs = static_cast<double>(P) * world_size();
  DpoResult r{};
  r.step.loss = sums[0] / pairs;
  r.rewards_chosen = sums[1] / pairs;
  r.rewards_rejected = sums[2] / pairs;
  r.rewards_accuracy = sums[3] / pairs;
  r.rewards_margin = sums[4] / pairs;
  r.step.tokens = 2 * static_cast<int64_t>(P) * S * world_size();
  return r;
}

DpoResult Trainer::dpo_step(const PreferenceBatch& pairs, const DpoOptions& options) {
  StepResult timing{};
  DpoResult r = dpo_accumulate(pairs, options, &timing);
  r.step.compute_seconds = timing.compute_seconds;
  r.step.comm_wait_seconds = timing.comm_wait_seconds;
  r.step.comm_busy_seconds = timing.comm_busy_seconds;
  r.step.comm_bytes = timing.comm_bytes;
  apply_update(r.step.loss, r.step);
  return r;
}

DpoResult Trainer::dpo_gradients(const PreferenceBatch& pairs, const DpoOptions& options) {
  DpoResult r = dpo_accumulate(pairs, options, nullptr);
  r.step.step = step_;
  return r;
}

void Trainer::reset_optimizer() {
  begin_call();
  backend_->fill(m_, model_->num_params(), 0.0f);
  backend_->fill(v_, model_->num_params(), 0.0f);
  moments_from_ = step_;
}

void Trainer::set_schedule(const ScheduleConfig& schedule) {
  validate_schedule(schedule);
  options_.schedule = schedule;
}

GenerateResult Trainer::generate(const std::vector<uint32_t>& prompt, const GenerateOptions& o) {
  validate_generate(o);
  const uint32_t vocab = static_cast<uint32_t>(config().vocab_size);
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt must hold at least one token id");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] >= vocab)
      throw std::invalid_argument("generate: prompt token id " + std::to_string(prompt[i]) + " at index " +
                                  std::to_string(i) + " is out of range: vocabSize is " + std::to_string(vocab));
  for (uint32_t id : o.stop_ids)
    if (id >= vocab)
      throw std::invalid_argument("generate: stop id " + std::to_string(id) + " is out of range: vocabSize is " +
                                  std::to_string(vocab));
  const long long total = static_cast<long long>(prompt.size()) + o.max_new_tokens;
  if (total > config().max_position_embeddings)
    throw std::invalid_argument("generate: prompt length " + std::to_string(prompt.size()) + " + maxNewTokens " +
                                std::to_string(o.max_new_tokens) + " exceeds maxPositionEmbeddings " +
                                std::to_string(config().max_position_embeddings));
  begin_call();
  struct Release {
    Model& m;
    ~Release() { m.end_decode(); }
  } release{*model_};
  model_->begin_decode(static_cast<int>(total));
  std::vector<float> logits(vocab);
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  model_->decode(ids.data(), static_cast<int>(ids.size()), logits.data());
  Rng rng(o.seed);
  GenerateResult result;
  result.finish_reason = "length";
  for (int i = 0; i < o.max_new_tokens; ++i) {
    const uint32_t next = sample_token(logits.data(), static_cast<int>(vocab), o.temperature, o.top_p, rng);
    result.tokens.push_back(next);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) {
      result.finish_reason = "stop";
      break;
    }
    if (i + 1 == o.max_new_tokens) break;
    const int32_t id = static_cast<int32_t>(next);
    model_->decode(&id, 1, logits.data());
  }
  return result;
}

std::vector<float> Trainer::logits(const uint32_t* tokens, size_t count, int batch, int seq_len) {
  check_batch(count, batch, batch, seq_len, seq_len);
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len);
  model_->forward(inputs_.data(), batch, seq_len);
  std::vector<float> out(static_cast<size_t>(batch) * seq_len * config().vocab_size);
  model_->logits(out.data());
  return out;
}

std::vector<double> Trainer::score_choices(const std::vector<uint32_t>& context,
                                           const std::vector<std::vector<uint32_t>>& choices) {
  if (context.empty()) throw std::invalid_argument("scoreChoices: context must hold at least one token id");
  std::vector<double> scores;
  for (size_t c = 0; c < choices.size(); ++c) {
    if (choices[c].empty()) throw std::invalid_argument("scoreChoices: choice " + std::to_string(c) + " is empty");
    std::vector<uint32_t> row(context);
    row.insert(row.end(), choices[c].begin(), choices[c].end());
    const int seq_len = static_cast<int>(row.size()) - 1;
    if (seq_len > config().max_position_embeddings)
      throw std::invalid_argument("scoreChoices: context + choice " + std::to_string(c) + " has " +
                                  std::to_string(row.size()) + " tokens, more than maxPositionEmbeddings + 1");
    check_batch(row.size(), 1, 1, seq_len, seq_len + 1);
    begin_call();
    load_rows(row.data(), 0, 1, seq_len, seq_len + 1);
    row_losses_.resize(static_cast<size_t>(seq_len));
    model_->forward(inputs_.data(), 1, seq_len);
    model_->head_loss(targets_.data(), 0.0f, false, row_losses_.data());
    // Position t predicts row[t+1]; the choice tokens are predicted from positions
    // context.size()-1 onwards.
    double logprob = 0.0;
    for (int t = static_cast<int>(context.size()) - 1; t < seq_len; ++t) logprob -= row_losses_[t];
    scores.push_back(logprob);
  }
  return scores;
}

std::vector<HostTensor> Trainer::host_copy(const float* base) {
  std::vector<HostTensor> out;
  for (const auto& t : model_->tensors()) {
    HostTensor h{t.name, t.shape, std::vector<float>(t.numel)};
    backend_->download(h.values.data(), base + t.offset, t.numel);
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<HostTensor> Trainer::parameters() { return host_copy(model_->params()); }
std::vector<HostTensor> Trainer::gradients() { return host_copy(model_->grads()); }

void Trainer::all_reduce(double* values, size_t count, ReduceOp op) {
  if (comm_) comm_->all_reduce(values, count, op);
}

uint64_t Trainer::parameter_checksum() {
  // FNV-1a over the bits of each 1M-float chunk, then over the chunk hashes in order.
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t P = model_->num_params();
  const size_t chunks = (P + kChunk - 1) / kChunk;
  std::vector<uint64_t> hashes(chunks);
  std::vector<float> host(std::min(P, kChunk * 8));
  constexpr uint64_t kOffset = 1469598103934665603ULL, kPrime = 1099511628211ULL;
  for (size_t first = 0; first < chunks; first += 8) {
    const size_t last = std::min(chunks, first + 8);
    const size_t begin = first * kChunk, end = std::min(P, last * kChunk);
    backend_->download(host.data(), model_->params() + begin, end - begin);
#pragma omp parallel for schedule(static, 1)
    for (size_t c = first; c < last; ++c) {
      const size_t b = c * kChunk, e = std::min(P, b + kChunk);
      uint64_t h = kOffset;
      for (size_t i = b; i < e; ++i) {
        uint32_t bits;
        std::memcpy(&bits, &host[i - begin], sizeof bits);
        h = (h ^ bits) * kPrime;
      }
      hashes[c] = h;
    }
  }
  uint64_t h = kOffset ^ P;
  for (uint64_t c : hashes) h = (h ^ c) * kPrime;
  return h;
}

std::vector<uint64_t> Trainer::parameter_checksums() {
  const uint64_t mine = parameter_checksum();
  const int world = world_size();
  // Each rank fills its own slot; a sum then gathers them exactly (the others add zero).
  std::vector<int64_t> slots(static_cast<size_t>(world), 0);
  int64_t as_signed;
  std::memcpy(&as_signed, &mine, sizeof as_signed);
  slots[static_cast<size_t>(rank())] = as_signed;
  if (comm_) comm_->all_reduce(slots.data(), slots.size(), ReduceOp::Sum);
  std::vector<uint64_t> out(slots.size());
  std::memcpy(out.data(), slots.data(), slots.size() * sizeof(uint64_t));
  return out;
}

uint64_t Trainer::verify_parameters() {
  const std::vector<uint64_t> all = parameter_checksums();
  auto hex = [](uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  std::string differing;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r) + " (" + hex(all[r]) + ")";
  if (!differing.empty())
    throw std::runtime_error("parameters diverged across ranks at step " + std::to_string(step_) + ": rank 0 has " +
                             hex(all[0]) + ", rank(s) " + differing +
                             " differ (same seed, config and checkpoint on every rank?)");
  return all[0];
}

void Trainer::set_rope_theta(double theta) {
  if (!(std::isfinite(theta) && theta > 1.0))
    throw std::invalid_argument("ropeTheta must be a finite number > 1, got " + std::to_string(theta));
  model_->set_rope_theta(theta);
}

}  // namespace smolstage
