// Training loop state around a Model: gradient accumulation, clipping, AdamW, the WSD schedule,
// evaluation entry points and checkpoint I/O. Not thread-safe: callers serialize access.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/communicator.h"
#include "core/config.h"
#include "core/generate.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/schedule.h"

namespace smolstage {

class SafeTensorsReader;

struct OptimizerConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // <= 0 disables clipping
};

struct TrainerOptions {
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  uint64_t seed = 0;
  int threads = 0;  // 0 = all hardware threads
  std::string backend = "cpu";
  // Data parallelism: world_size 1 (the default) trains alone. With more ranks every rank
  // holds the full model, trains on its own batch rows, and gradients are averaged.
  DistributedConfig distributed;
};

struct StepResult {
  double loss;       // mean cross-entropy over all batch tokens (of every rank)
  double grad_norm;  // global L2 norm before clipping (of the averaged gradient)
  double lr;
  int64_t step;    // optimizer steps completed, including this one
  int64_t tokens;  // tokens trained on in this step, summed over ranks
  // Wall-clock split of the step on this rank: compute (forward, backward, optimizer) and the
  // time spent waiting for gradient all-reduces after the backward (the part not hidden behind
  // it); comm_busy is how long the all-reduces ran in total, overlapped or not.
  double compute_seconds = 0;
  double comm_wait_seconds = 0;
  double comm_busy_seconds = 0;
  int64_t comm_bytes = 0;  // gradient bytes all-reduced in this step (once per step, not per micro-batch)
};

// DPO (sigmoid loss, TRL's definitions) on one rank's pairs. Each of `batch` pairs has a chosen and
// a rejected row of seq_len + 1 ids (padded to the same length), per-target-token weights
// (batch × seq_len; 1 on completion tokens, 0 on prompt and padding), and the frozen reference
// model's log-probability sums of both (sequence_log_probs of the reference weights).
struct PreferenceBatch {
  const uint32_t* chosen = nullptr;
  const uint32_t* rejected = nullptr;
  size_t chosen_count = 0, rejected_count = 0;
  const float* chosen_weights = nullptr;
  const float* rejected_weights = nullptr;
  size_t chosen_weight_count = 0, rejected_weight_count = 0;
  const double* ref_chosen = nullptr;
  const double* ref_rejected = nullptr;
  size_t ref_chosen_count = 0, ref_rejected_count = 0;
};

struct DpoOptions {
  double beta = 0.1;
  int batch = 0;        // pairs on this rank
  int micro_batch = 0;  // pairs per forward/backward (2 × micro_batch rows)
  int seq_len = 0;
};

// Means over all pairs of every rank. reward = β·(logπ − logπ_ref); loss = −log σ(r_chosen − r_rejected).
struct DpoResult {
  StepResult step;  // loss = the DPO loss; tokens = 2 · pairs · seq_len summed over ranks
  double rewards_chosen = 0;
  double rewards_rejected = 0;
  double rewards_accuracy = 0;  // share of pairs with r_chosen > r_rejected
  double rewards_margin = 0;
};

struct HostTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

void validate_optimizer(const OptimizerConfig& o);
// Reads a Hugging Face config.json (LlamaForCausalLM) into a ModelConfig and validates it.
ModelConfig read_hf_config(const std::string& dir);

class Trainer {
 public:
  explicit Trainer(const TrainerOptions& options);  // validates everything, HF-style random init
  ~Trainer();

  // tokens: batch rows of seq_len + 1 ids; inputs are row[0, seq_len), targets row[1, seq_len].
  // weights (optional, batch × seq_len, finite, >= 0): per-target-token loss weights; the loss is
  // then Σ w·CE / Σ w over the whole global batch (Σ w summed over ranks). Without them the loss is
  // the plain mean, bit-identical to a trainer without weight support. Distributed, every rank
  // must pass weights or none.
  StepResult step(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len,
                  const float* weights = nullptr, size_t weight_count = 0);
  double eval_loss(const uint32_t* tokens, size_t count, int batch, int seq_len, const float* weights = nullptr,
                   size_t weight_count = 0);
  // Σ_t w[r,t] · log p(target[r,t]) for each of `batch` rows (forward only, local, no gradients).
  std::vector<double> sequence_log_probs(const uint32_t* tokens, size_t count, const float* weights,
                                         size_t weight_count, int batch, int micro_batch, int seq_len);
  // DPO: gradients of the mean sigmoid DPO loss over all pairs (averaged over ranks), then the same
  // clipping / AdamW update as step(). dpo_gradients stops before the update (collective too).
  DpoResult dpo_step(const PreferenceBatch& pairs, const DpoOptions& options);
  DpoResult dpo_gradients(const PreferenceBatch& pairs, const DpoOptions& options);
  // Fresh AdamW state for a post-training stage: moments zeroed, bias correction counts from the
  // current step (the step count itself continues; the schedule's start_step moves warmup).
  void reset_optimizer();
  // Generation with a KV cache from one prompt (local; does not touch the trainer's RNG).
  GenerateResult generate(const std::vector<uint32_t>& prompt, const GenerateOptions& options);
  void set_schedule(const ScheduleConfig& schedule);
  // Summed log-probability of each choice's tokens following the context.
  std::vector<double> score_choices(const std::vector<uint32_t>& context,
                                    const std::vector<std::vector<uint32_t>>& choices);
  // Logits [batch·seq_len, vocab] for batch rows of seq_len input ids.
  std::vector<float> logits(const uint32_t* tokens, size_t count, int batch, int seq_len);
  // Gradients of the mean loss (as step() would use before clipping, so averaged over ranks when
  // distributed: collective), without updating weights.
  double compute_gradients(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len,
                           const float* weights = nullptr, size_t weight_count = 0);

  std::vector<HostTensor> parameters();
  std::vector<HostTensor> gradients();

  // Checkpoint directory: model.safetensors (fp32, HF names), optimizer.bin, config.json.
  void save_state(const std::string& dir);
  void load_state(const std::string& dir);
  // Hugging Face model directory: model.safetensors + config.json.
  void export_hf(const std::string& dir);
  // Replaces the weights from dir/model.safetensors (F32/BF16/F16); optimizer state and step
  // count are left as they are.
  void import_hf(const std::string& dir);

  // Collective (every rank calls them in the same order). Single-rank trainers reduce over
  // themselves: the values come back unchanged, and the checksum list has one entry.
  void all_reduce(double* values, size_t count, ReduceOp op);
  // A 64-bit hash of the parameter bits (fixed chunking, so independent of thread counts).
  uint64_t parameter_checksum();
  // Every rank's parameter_checksum(), indexed by rank.
  std::vector<uint64_t> parameter_checksums();
  // Throws naming the ranks whose parameters differ from rank 0's; returns the shared checksum.
  uint64_t verify_parameters();
  int rank() const { return comm_ ? comm_->rank() : 0; }
  int world_size() const { return comm_ ? comm_->world_size() : 1; }
  std::string describe_communicator() const { return comm_ ? comm_->describe() : "none (single rank)"; }

  void set_rope_theta(double theta);
  int64_t step_count() const { return step_; }
  int64_t moments_from() const { return moments_from_; }
  const ModelConfig& config() const { return model_->config(); }
  std::string describe_backend() const { return backend_->describe(); }

 private:
  TrainerOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  float* m_ = nullptr;
  float* v_ = nullptr;
  int64_t step_ = 0;
  int64_t moments_from_ = 0;  // step at which the AdamW moments were last reset (bias correction base)
  Rng rng_;
  std::vector<int32_t> inputs_, targets_;
  std::vector<float> row_losses_;
  std::unique_ptr<Communicator> comm_;
  std::vector<std::pair<size_t, size_t>> buckets_;  // [begin, end) float ranges, in backward order

  void begin_call();
  void check_batch(size_t count, int batch, int micro_batch, int seq_len, int row_len) const;
  void load_rows(const uint32_t* tokens, int first_row, int rows, int seq_len, int row_len);
  // Mean loss of this rank's rows; with a communicator the gradients are averaged over ranks
  // (buckets start during the last micro-batch's backward; waits for them) and so is the loss.
  double accumulate_gradients(const uint32_t* tokens, int batch, int micro_batch, int seq_len,
                              StepResult* timing = nullptr, const float* weights = nullptr);
  // Zeroes the gradients; for each micro-batch start row r0, micro(r0) runs the forward and
  // head_loss(want_grad), then the backward runs (the last one starting the gradient buckets).
  // After the loop finalize() fills `values`, which are summed over ranks after the gradients.
  void run_accumulation(int batch, int micro_batch, const std::function<void(int)>& micro,
                        const std::function<void()>& finalize, double* values, size_t count, StepResult* timing);
  // Norm, clipping, schedule and AdamW on the accumulated gradients.
  void apply_update(double loss, StepResult& result);
  void check_weights(const float* weights, size_t count, int batch, int seq_len, const std::string& what) const;
  DpoResult dpo_accumulate(const PreferenceBatch& pairs, const DpoOptions& options, StepResult* timing);
  void plan_buckets(size_t bucket_bytes);
  std::vector<HostTensor> host_copy(const float* base);
  void write_weights(const std::string& path);
  void read_weights(const std::string& path, bool allow_extra_lm_head);
  void read_weights_from(const std::vector<std::unique_ptr<SafeTensorsReader>>& files,
                         const std::vector<std::pair<std::string, size_t>>& weight_map, const std::string& where,
                         bool allow_extra_lm_head);
  std::string hf_config_json() const;
};

}  // namespace smolstage
