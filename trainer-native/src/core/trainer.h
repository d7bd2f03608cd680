// Training loop state around a Model: gradient accumulation, clipping, AdamW, the WSD schedule,
// evaluation entry points and checkpoint I/O. Not thread-safe: callers serialize access.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/communicator.h"
#include "core/config.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/schedule.h"

namespace smolstage {

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
  StepResult step(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len);
  double eval_loss(const uint32_t* tokens, size_t count, int batch, int seq_len);
  // Summed log-probability of each choice's tokens following the context.
  std::vector<double> score_choices(const std::vector<uint32_t>& context,
                                    const std::vector<std::vector<uint32_t>>& choices);
  // Logits [batch·seq_len, vocab] for batch rows of seq_len input ids.
  std::vector<float> logits(const uint32_t* tokens, size_t count, int batch, int seq_len);
  // Gradients of the mean loss (as step() would use before clipping, so averaged over ranks when
  // distributed: collective), without updating weights.
  double compute_gradients(const uint32_t* tokens, size_t count, int batch, int micro_batch, int seq_len);

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
  const ModelConfig& config() const { return model_->config(); }
  std::string describe_backend() const { return backend_->describe(); }

 private:
  TrainerOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  float* m_ = nullptr;
  float* v_ = nullptr;
  int64_t step_ = 0;
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
                              StepResult* timing = nullptr);
  void plan_buckets(size_t bucket_bytes);
  std::vector<HostTensor> host_copy(const float* base);
  void write_weights(const std::string& path);
  void read_weights(const std::string& path, bool allow_extra_lm_head);
  std::string hf_config_json() const;
};

}  // namespace smolstage
