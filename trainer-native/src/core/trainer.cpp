#include "core/trainer.h"

#include <cmath>
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
  backend_ = make_backend(options_.backend);
  begin_call();
  model_ = std::make_unique<Model>(options_.model, *backend_);
  m_ = backend_->alloc(model_->num_params());
  v_ = backend_->alloc(model_->num_params());
  model_->init_weights(rng_);
}

Trainer::~Trainer() {
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

double Trainer::accumulate_gradients(const uint32_t* tokens, int batch, int micro_batch, int seq_len) {
  backend_->fill(model_->grads(), model_->num_params(), 0.0f);
  const double total_tokens = static_cast<double>(batch) * seq_len;
  const float grad_scale = static_cast<float>(1.0 / total_tokens);
  row_losses_.resize(static_cast<size_t>(micro_batch) * seq_len);
  double loss_sum = 0.0;
  for (int r0 = 0; r0 < batch; r0 += micro_batch) {
    load_rows(tokens, r0, micro_batch, seq_len, seq_len + 1);
    model_->forward(inputs_.data(), micro_batch, seq_len);
    loss_sum += model_->head_loss(targets_.data(), grad_scale, true, row_losses_.data());
    model_->backward();
  }
  return loss_sum / total_tokens;
}

StepResult Trainer::step(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len) {
  check_batch(count, batch, micro_batch, seq_len, seq_len + 1);
  begin_call();
  // Validate every id before touching gradients so a bad batch leaves the state unchanged.
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  const double loss = accumulate_gradients(tokens, batch, micro_batch, seq_len);
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
                 static_cast<float>(o.eps), t.decay ? static_cast<float>(o.weight_decay) : 0.0f, step_};
    backend_->adamw_update(model_->params() + t.offset, model_->grads() + t.offset, m_ + t.offset, v_ + t.offset,
                           t.numel, h);
  }
  return {loss, norm, lr, step_, static_cast<int64_t>(batch) * seq_len};
}

double Trainer::compute_gradients(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len) {
  check_batch(count, batch, micro_batch, seq_len, seq_len + 1);
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  return accumulate_gradients(tokens, batch, micro_batch, seq_len);
}

double Trainer::eval_loss(const uint32_t* tokens, size_t count, int batch, int seq_len) {
  check_batch(count, batch, batch, seq_len, seq_len + 1);
  begin_call();
  load_rows(tokens, 0, batch, seq_len, seq_len + 1);
  row_losses_.resize(static_cast<size_t>(batch) * seq_len);
  model_->forward(inputs_.data(), batch, seq_len);
  return model_->head_loss(targets_.data(), 0.0f, false, row_losses_.data()) / (static_cast<double>(batch) * seq_len);
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

void Trainer::set_rope_theta(double theta) {
  if (!(std::isfinite(theta) && theta > 1.0))
    throw std::invalid_argument("ropeTheta must be a finite number > 1, got " + std::to_string(theta));
  model_->set_rope_theta(theta);
}

}  // namespace smolstage
