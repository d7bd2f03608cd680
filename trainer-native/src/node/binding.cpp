// Node-API binding: argument checking on the JS thread, all training work on libuv's pool
// through promises. C++ exceptions become JS Errors; nothing here aborts the process.
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "core/json.h"
#include "core/trainer.h"

namespace {

using smolstage::ModelConfig;
using smolstage::Trainer;
using smolstage::TrainerOptions;

// ---- argument parsing ---------------------------------------------------------------------

[[noreturn]] void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

Napi::Object object_arg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || v.IsArray()) type_error(env, what + " must be an object");
  return v.As<Napi::Object>();
}

double number_field(const Napi::Object& o, const char* key, const std::string& path) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) type_error(o.Env(), path + "." + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) type_error(o.Env(), path + "." + key + " must be finite");
  return d;
}

int64_t integer_field(const Napi::Object& o, const char* key, const std::string& path, int64_t min, int64_t max) {
  const double d = number_field(o, key, path);
  if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
    type_error(o.Env(), path + "." + key + " must be an integer in [" + std::to_string(min) + ", " +
                            std::to_string(max) + "], got " + smolstage::json_number(d));
  return static_cast<int64_t>(d);
}

bool bool_field(const Napi::Object& o, const char* key, const std::string& path) {
  const Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) type_error(o.Env(), path + "." + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string string_arg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) type_error(env, what + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty()) type_error(env, what + " must not be empty");
  if (s.find('\0') != std::string::npos) type_error(env, what + " must not contain NUL characters");
  return s;
}

constexpr int64_t kIntMax = 2147483647;

ModelConfig parse_model(const Napi::Object& o, const std::string& path) {
  ModelConfig c;
  c.hidden_size = static_cast<int>(integer_field(o, "hiddenSize", path, 1, kIntMax));
  c.num_layers = static_cast<int>(integer_field(o, "numLayers", path, 1, kIntMax));
  c.num_heads = static_cast<int>(integer_field(o, "numHeads", path, 1, kIntMax));
  c.num_kv_heads = static_cast<int>(integer_field(o, "numKvHeads", path, 1, kIntMax));
  c.intermediate_size = static_cast<int>(integer_field(o, "intermediateSize", path, 1, kIntMax));
  c.vocab_size = static_cast<int>(integer_field(o, "vocabSize", path, 1, kIntMax));
  c.rope_theta = number_field(o, "ropeTheta", path);
  c.rms_norm_eps = number_field(o, "rmsNormEps", path);
  c.tie_embeddings = bool_field(o, "tieEmbeddings", path);
  c.max_position_embeddings = static_cast<int>(integer_field(o, "maxPositionEmbeddings", path, 1, kIntMax));
  c.initializer_range = number_field(o, "initializerRange", path);
  return c;
}

Napi::Object model_to_js(Napi::Env env, const ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("hiddenSize", c.hidden_size);
  o.Set("numLayers", c.num_layers);
  o.Set("numHeads", c.num_heads);
  o.Set("numKvHeads", c.num_kv_heads);
  o.Set("intermediateSize", c.intermediate_size);
  o.Set("vocabSize", c.vocab_size);
  o.Set("ropeTheta", c.rope_theta);
  o.Set("rmsNormEps", c.rms_norm_eps);
  o.Set("tieEmbeddings", c.tie_embeddings);
  o.Set("maxPositionEmbeddings", c.max_position_embeddings);
  o.Set("initializerRange", c.initializer_range);
  return o;
}

TrainerOptions parse_options(Napi::Env env, const Napi::Value& v) {
  const Napi::Object o = object_arg(env, v, "Trainer options");
  TrainerOptions t;
  t.model = parse_model(object_arg(env, o.Get("model"), "options.model"), "options.model");
  const Napi::Object opt = object_arg(env, o.Get("optimizer"), "options.optimizer");
  const Napi::Value betas = opt.Get("betas");
  if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2)
    type_error(env, "options.optimizer.betas must be an array of two numbers");
  const Napi::Array b = betas.As<Napi::Array>();
  for (uint32_t i = 0; i < 2; ++i)
    if (!b.Get(i).IsNumber()) type_error(env, "options.optimizer.betas must be an array of two numbers");
  t.optimizer.beta1 = b.Get(0u).As<Napi::Number>().DoubleValue();
  t.optimizer.beta2 = b.Get(1u).As<Napi::Number>().DoubleValue();
  t.optimizer.eps = number_field(opt, "eps", "options.optimizer");
  t.optimizer.weight_decay = number_field(opt, "weightDecay", "options.optimizer");
  t.optimizer.grad_clip = number_field(opt, "gradClip", "options.optimizer");
  const Napi::Object s = object_arg(env, o.Get("schedule"), "options.schedule");
  constexpr int64_t kStepMax = 1LL << 50;
  t.schedule.peak_lr = number_field(s, "peakLr", "options.schedule");
  if (!s.Get("startStep").IsUndefined())
    t.schedule.start_step = integer_field(s, "startStep", "options.schedule", 0, kStepMax);
  t.schedule.warmup_steps = integer_field(s, "warmupSteps", "options.schedule", 0, kStepMax);
  const Napi::Value start = s.Get("decayStartStep");
  t.schedule.decay_start_step =
      start.IsNull() || start.IsUndefined() ? -1 : integer_field(s, "decayStartStep", "options.schedule", 0, kStepMax);
  t.schedule.decay_steps = integer_field(s, "decaySteps", "options.schedule", 0, kStepMax);
  const Napi::Value shape = s.Get("shape");
  if (!shape.IsString()) type_error(env, "options.schedule.shape must be 'linear', 'cosine' or '1-sqrt'");
  t.schedule.shape = smolstage::parse_decay_shape(shape.As<Napi::String>().Utf8Value());
  t.schedule.min_lr = number_field(s, "minLr", "options.schedule");
  t.seed = static_cast<uint64_t>(integer_field(o, "seed", "options", 0, (1LL << 53) - 1));
  if (!o.Get("threads").IsUndefined()) t.threads = static_cast<int>(integer_field(o, "threads", "options", 0, 4096));
  const Napi::Value backend = o.Get("backend");
  if (!backend.IsUndefined()) {
    if (!backend.IsString()) type_error(env, "options.backend must be 'cpu' or 'cuda'");
    t.backend = backend.As<Napi::String>().Utf8Value();
  }
  const Napi::Value dist = o.Get("distributed");
  if (!dist.IsUndefined()) {
    const std::string path = "options.distributed";
    const Napi::Object d = object_arg(env, dist, path);
    auto& c = t.distributed;
    c.world_size = static_cast<int>(integer_field(d, "worldSize", path, 1, 1 << 20));
    c.rank = static_cast<int>(integer_field(d, "rank", path, 0, c.world_size - 1));
    c.master_addr = string_arg(env, d.Get("masterAddr"), path + ".masterAddr");
    c.master_port = static_cast<int>(integer_field(d, "masterPort", path, 1, 65535));
    if (!d.Get("timeoutMs").IsUndefined())
      c.timeout_ms = integer_field(d, "timeoutMs", path, 1, 1LL << 40);
    if (!d.Get("localAddr").IsUndefined()) c.local_addr = string_arg(env, d.Get("localAddr"), path + ".localAddr");
    if (!d.Get("engine").IsUndefined()) c.engine = string_arg(env, d.Get("engine"), path + ".engine");
    if (!d.Get("bucketBytes").IsUndefined())
      c.bucket_bytes = static_cast<size_t>(integer_field(d, "bucketBytes", path, 1, 1LL << 40));
  }
  return t;
}

// Whether creating this trainer involves a rendezvous (which may wait for the other ranks).
bool needs_rendezvous(const TrainerOptions& t) {
  return smolstage::resolve_engine(t.distributed, t.backend) != "none";
}

std::vector<uint32_t> token_array(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    type_error(env, what + " must be a Uint32Array of token ids");
  const Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  return std::vector<uint32_t>(a.Data(), a.Data() + a.ElementLength());
}

// Optional per-token weights: undefined/null = none.
std::optional<std::vector<float>> weights_arg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(env, what + " must be a Float32Array of per-target-token weights (batchSize × seqLen)");
  const Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<double> doubles_arg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    const Napi::Float64Array a = v.As<Napi::Float64Array>();
    return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
  }
  if (!v.IsArray()) type_error(env, what + " must be a Float64Array or an array of numbers");
  const Napi::Array a = v.As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value x = a.Get(i);
    if (!x.IsNumber()) type_error(env, what + "[" + std::to_string(i) + "] must be a number");
    out.push_back(x.As<Napi::Number>().DoubleValue());
  }
  return out;
}

Napi::Object step_to_js(Napi::Env e, const smolstage::StepResult& r) {
  Napi::Object out = Napi::Object::New(e);
  out.Set("loss", r.loss);
  out.Set("gradNorm", r.grad_norm);
  out.Set("lr", r.lr);
  out.Set("step", static_cast<double>(r.step));
  out.Set("tokens", static_cast<double>(r.tokens));
  return out;
}

// ---- shared trainer state and async work ----------------------------------------------------

struct Shared {
  std::mutex mu;  // serializes calls: one operation on the trainer at a time
  std::unique_ptr<Trainer> trainer;
  std::atomic<bool> disposed{false};
  std::atomic<int64_t> step_count{0};
  std::mutex pending_mu;
  std::optional<double> pending_theta;
  std::optional<smolstage::StepResult> last_timing;  // under pending_mu
};

// Runs `work` on the pool with the trainer locked; `result` converts its output on the JS thread.
template <typename T>
class TrainerWork : public Napi::AsyncWorker {
 public:
  TrainerWork(Napi::Env env, std::shared_ptr<Shared> shared, std::function<T(Trainer&)> work,
              std::function<Napi::Value(Napi::Env, T&)> result)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), shared_(std::move(shared)),
        work_(std::move(work)), result_(std::move(result)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!shared_->trainer) {
      SetError("Trainer has been disposed");
      return;
    }
    try {
      {
        std::lock_guard<std::mutex> pending(shared_->pending_mu);
        if (shared_->pending_theta) {
          shared_->trainer->set_rope_theta(*shared_->pending_theta);
          shared_->pending_theta.reset();
        }
      }
      value_ = work_(*shared_->trainer);
      shared_->step_count = shared_->trainer->step_count();
    } catch (const std::bad_alloc&) {
      SetError("out of memory (reduce microBatchSize or seqLen)");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    if (shared_->disposed) shared_->trainer.reset();
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(result_(Env(), value_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Shared> shared_;
  std::function<T(Trainer&)> work_;
  std::function<Napi::Value(Napi::Env, T&)> result_;
  T value_{};
};

struct Unit {};

Napi::Object tensors_to_js(Napi::Env env, const std::vector<smolstage::HostTensor>& tensors) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& t : tensors) {
    Napi::Float32Array a = Napi::Float32Array::New(env, t.values.size());
    std::copy(t.values.begin(), t.values.end(), a.Data());
    out.Set(t.name, a);
  }
  return out;
}

class NativeTrainer : public Napi::ObjectWrap<NativeTrainer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTrainer",
                       {
                           InstanceMethod<&NativeTrainer::Step>("step"),
                           InstanceMethod<&NativeTrainer::EvalLoss>("evalLoss"),
                           InstanceMethod<&NativeTrainer::SequenceLogProbs>("sequenceLogProbs"),
                           InstanceMethod<&NativeTrainer::DpoStep>("dpoStep"),
                           InstanceMethod<&NativeTrainer::DpoGradients>("dpoGradients"),
                           InstanceMethod<&NativeTrainer::ResetOptimizer>("resetOptimizer"),
                           InstanceMethod<&NativeTrainer::Generate>("generate"),
                           InstanceMethod<&NativeTrainer::ScoreChoices>("scoreChoices"),
                           InstanceMethod<&NativeTrainer::Logits>("logits"),
                           InstanceMethod<&NativeTrainer::Gradients>("gradients"),
                           InstanceMethod<&NativeTrainer::Parameters>("parameters"),
                           InstanceMethod<&NativeTrainer::SaveState>("saveState"),
                           InstanceMethod<&NativeTrainer::LoadState>("loadState"),
                           InstanceMethod<&NativeTrainer::ExportHF>("exportHF"),
                           InstanceMethod<&NativeTrainer::ImportHF>("importHF"),
                           InstanceMethod<&NativeTrainer::SetRopeTheta>("setRopeTheta"),
                           InstanceMethod<&NativeTrainer::Dispose>("dispose"),
                           InstanceAccessor<&NativeTrainer::StepCount>("stepCount"),
                           InstanceAccessor<&NativeTrainer::Config>("config"),
                           InstanceAccessor<&NativeTrainer::BackendInfo>("backendInfo"),
                           InstanceMethod<&NativeTrainer::AllReduce>("allReduce"),
                           InstanceMethod<&NativeTrainer::VerifyParameters>("verifyParameters"),
                           InstanceMethod<&NativeTrainer::ParameterChecksums>("parameterChecksums"),
                           InstanceAccessor<&NativeTrainer::Rank>("rank"),
                           InstanceAccessor<&NativeTrainer::StepTiming>("lastStepTiming"),
                           InstanceAccessor<&NativeTrainer::WorldSize>("worldSize"),
                           InstanceAccessor<&NativeTrainer::CommunicatorInfo>("communicatorInfo"),
                       });
  }

  // new NativeTrainer(options) creates a single-rank trainer; connect() creates the trainer on
  // the pool (the rendezvous waits for the other ranks) and hands it over as an External.
  explicit NativeTrainer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTrainer>(info) {
    shared_ = std::make_shared<Shared>();
    if (info[0].IsExternal()) {
      auto* made = info[0].As<Napi::External<std::unique_ptr<Trainer>>>().Data();
      shared_->trainer = std::move(*made);
      config_ = shared_->trainer->config();
      backend_info_ = shared_->trainer->describe_backend();
      rank_ = shared_->trainer->rank();
      world_size_ = shared_->trainer->world_size();
      comm_info_ = shared_->trainer->describe_communicator();
      return;
    }
    try {
      TrainerOptions options = parse_options(info.Env(), info[0]);
      if (needs_rendezvous(options))
        throw Napi::TypeError::New(info.Env(),
                                   "a distributed trainer (options.distributed with worldSize " +
                                       std::to_string(options.distributed.world_size) +
                                       " or an explicit engine) is created with Trainer.connect(), which waits for "
                                       "the other ranks off the event loop");
      shared_->trainer = std::make_unique<Trainer>(options);
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(info.Env(), "out of memory creating the model");
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    config_ = shared_->trainer->config();
    backend_info_ = shared_->trainer->describe_backend();
    comm_info_ = shared_->trainer->describe_communicator();
  }

 private:
  std::shared_ptr<Shared> shared_;
  ModelConfig config_;
  std::string backend_info_;
  int rank_ = 0, world_size_ = 1;
  std::string comm_info_;

  void ensure_alive(Napi::Env env) const {
    if (shared_->disposed) throw Napi::Error::New(env, "Trainer has been disposed");
  }

  template <typename T>
  Napi::Value queue(Napi::Env env, std::function<T(Trainer&)> work, std::function<Napi::Value(Napi::Env, T&)> result) {
    ensure_alive(env);
    auto* w = new TrainerWork<T>(env, shared_, std::move(work), std::move(result));
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  static Napi::Value undefined_result(Napi::Env env, Unit&) { return env.Undefined(); }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = token_array(env, info[0], "step(tokens)");
    const Napi::Object o = object_arg(env, info[1], "step options");
    const int batch = static_cast<int>(integer_field(o, "batchSize", "step options", 1, kIntMax));
    const int micro = static_cast<int>(integer_field(o, "microBatchSize", "step options", 1, kIntMax));
    const int seq = static_cast<int>(integer_field(o, "seqLen", "step options", 1, kIntMax));
    auto weights = weights_arg(env, info[2], "step(weights)");
    return queue<smolstage::StepResult>(
        env,
        [tokens = std::move(tokens), weights = std::move(weights), batch, micro, seq, shared = shared_](Trainer& t) {
          smolstage::StepResult r = t.step(tokens.data(), tokens.size(), batch, micro, seq,
                                           weights ? weights->data() : nullptr, weights ? weights->size() : 0);
          std::lock_guard<std::mutex> lock(shared->pending_mu);
          shared->last_timing = r;
          return r;
        },
        [](Napi::Env e, smolstage::StepResult& r) -> Napi::Value { return step_to_js(e, r); });
  }

  static void parse_pairs(Napi::Env env, const Napi::CallbackInfo& info, const std::string& what,
                          std::vector<uint32_t>& chosen, std::vector<uint32_t>& rejected, std::vector<float>& cw,
                          std::vector<float>& rw, std::vector<double>& refc, std::vector<double>& refr,
                          smolstage::DpoOptions& options) {
    chosen = token_array(env, info[0], what + "(chosen)");
    rejected = token_array(env, info[1], what + "(rejected)");
    auto c = weights_arg(env, info[2], what + "(chosenWeights)");
    auto r = weights_arg(env, info[3], what + "(rejectedWeights)");
    if (!c || !r) type_error(env, what + ": chosenWeights and rejectedWeights are required Float32Arrays");
    cw = std::move(*c);
    rw = std::move(*r);
    refc = doubles_arg(env, info[4], what + "(refChosenLogps)");
    refr = doubles_arg(env, info[5], what + "(refRejectedLogps)");
    const std::string path = what + " options";
    const Napi::Object o = object_arg(env, info[6], path);
    options.beta = number_field(o, "beta", path);
    options.batch = static_cast<int>(integer_field(o, "batchSize", path, 1, kIntMax));
    options.micro_batch = static_cast<int>(integer_field(o, "microBatchSize", path, 1, kIntMax));
    options.seq_len = static_cast<int>(integer_field(o, "seqLen", path, 1, kIntMax));
  }

  struct DpoCall {
    std::vector<uint32_t> chosen, rejected;
    std::vector<float> cw, rw;
    std::vector<double> refc, refr;
    smolstage::DpoOptions options;
    smolstage::PreferenceBatch batch() const {
      smolstage::PreferenceBatch b;
      b.chosen = chosen.data();
      b.rejected = rejected.data();
      b.chosen_count = chosen.size();
      b.rejected_count = rejected.size();
      b.chosen_weights = cw.data();
      b.rejected_weights = rw.data();
      b.chosen_weight_count = cw.size();
      b.rejected_weight_count = rw.size();
      b.ref_chosen = refc.data();
      b.ref_rejected = refr.data();
      b.ref_chosen_count = refc.size();
      b.ref_rejected_count = refr.size();
      return b;
    }
  };

  static Napi::Object dpo_to_js(Napi::Env e, const smolstage::DpoResult& r) {
    Napi::Object out = step_to_js(e, r.step);
    out.Set("rewardsChosen", r.rewards_chosen);
    out.Set("rewardsRejected", r.rewards_rejected);
    out.Set("rewardsAccuracy", r.rewards_accuracy);
    out.Set("rewardsMargin", r.rewards_margin);
    return out;
  }

  Napi::Value DpoStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto call = std::make_shared<DpoCall>();
    parse_pairs(env, info, "dpoStep", call->chosen, call->rejected, call->cw, call->rw, call->refc, call->refr,
                call->options);
    return queue<smolstage::DpoResult>(
        env,
        [call, shared = shared_](Trainer& t) {
          smolstage::DpoResult r = t.dpo_step(call->batch(), call->options);
          std::lock_guard<std::mutex> lock(shared->pending_mu);
          shared->last_timing = r.step;
          return r;
        },
        [](Napi::Env e, smolstage::DpoResult& r) -> Napi::Value { return dpo_to_js(e, r); });
  }

  struct DpoGradientResult {
    smolstage::DpoResult result;
    std::vector<smolstage::HostTensor> grads;
  };

  Napi::Value DpoGradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto call = std::make_shared<DpoCall>();
    parse_pairs(env, info, "dpoGradients", call->chosen, call->rejected, call->cw, call->rw, call->refc, call->refr,
                call->options);
    return queue<DpoGradientResult>(
        env,
        [call](Trainer& t) {
          DpoGradientResult r;
          r.result = t.dpo_gradients(call->batch(), call->options);
          r.grads = t.gradients();
          return r;
        },
        [](Napi::Env e, DpoGradientResult& r) -> Napi::Value {
          Napi::Object out = dpo_to_js(e, r.result);
          out.Set("grads", tensors_to_js(e, r.grads));
          return out;
        });
  }

  Napi::Value SequenceLogProbs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = token_array(env, info[0], "sequenceLogProbs(tokens)");
    auto weights = weights_arg(env, info[1], "sequenceLogProbs(weights)");
    if (!weights) type_error(env, "sequenceLogProbs(weights) must be a Float32Array of per-target-token weights");
    const std::string path = "sequenceLogProbs options";
    const Napi::Object o = object_arg(env, info[2], path);
    const int batch = static_cast<int>(integer_field(o, "batchSize", path, 1, kIntMax));
    const int seq = static_cast<int>(integer_field(o, "seqLen", path, 1, kIntMax));
    const int micro = o.Get("microBatchSize").IsUndefined()
                          ? batch
                          : static_cast<int>(integer_field(o, "microBatchSize", path, 1, kIntMax));
    return queue<std::vector<double>>(
        env,
        [tokens = std::move(tokens), weights = std::move(*weights), batch, micro, seq](Trainer& t) {
          return t.sequence_log_probs(tokens.data(), tokens.size(), weights.data(), weights.size(), batch, micro, seq);
        },
        [](Napi::Env e, std::vector<double>& v) -> Napi::Value {
          Napi::Float64Array out = Napi::Float64Array::New(e, v.size());
          std::copy(v.begin(), v.end(), out.Data());
          return out;
        });
  }

  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto prompt = token_array(env, info[0], "generate(promptIds)");
    const std::string path = "generate options";
    const Napi::Object o = object_arg(env, info[1], path);
    smolstage::GenerateOptions g;
    g.max_new_tokens = static_cast<int>(integer_field(o, "maxNewTokens", path, 1, kIntMax));
    if (!o.Get("temperature").IsUndefined()) g.temperature = number_field(o, "temperature", path);
    if (!o.Get("topP").IsUndefined()) g.top_p = number_field(o, "topP", path);
    if (!o.Get("seed").IsUndefined()) g.seed = static_cast<uint64_t>(integer_field(o, "seed", path, 0, (1LL << 53) - 1));
    const Napi::Value stops = o.Get("stopIds");
    if (!stops.IsUndefined()) {
      if (!stops.IsArray()) type_error(env, path + ".stopIds must be an array of token ids");
      const Napi::Array a = stops.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) {
        const Napi::Value x = a.Get(i);
        const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 0 && d <= 4294967295.0 && d == std::floor(d)))
          type_error(env, path + ".stopIds[" + std::to_string(i) + "] must be a token id (integer >= 0)");
        g.stop_ids.push_back(static_cast<uint32_t>(d));
      }
    }
    return queue<smolstage::GenerateResult>(
        env, [prompt = std::move(prompt), g](Trainer& t) { return t.generate(prompt, g); },
        [](Napi::Env e, smolstage::GenerateResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          Napi::Uint32Array ids = Napi::Uint32Array::New(e, r.tokens.size());
          std::copy(r.tokens.begin(), r.tokens.end(), ids.Data());
          out.Set("tokens", ids);
          out.Set("finishReason", r.finish_reason);
          return out;
        });
  }

  Napi::Value ResetOptimizer(const Napi::CallbackInfo& info) {
    return queue<Unit>(
        info.Env(),
        [](Trainer& t) {
          t.reset_optimizer();
          return Unit{};
        },
        undefined_result);
  }

  Napi::Value EvalLoss(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = token_array(env, info[0], "evalLoss(tokens)");
    const Napi::Object o = object_arg(env, info[1], "evalLoss options");
    const int batch = static_cast<int>(integer_field(o, "batchSize", "evalLoss options", 1, kIntMax));
    const int seq = static_cast<int>(integer_field(o, "seqLen", "evalLoss options", 1, kIntMax));
    auto weights = weights_arg(env, info[2], "evalLoss(weights)");
    return queue<double>(
        env,
        [tokens = std::move(tokens), weights = std::move(weights), batch, seq](Trainer& t) {
          return t.eval_loss(tokens.data(), tokens.size(), batch, seq, weights ? weights->data() : nullptr,
                             weights ? weights->size() : 0);
        },
        [](Napi::Env e, double& loss) -> Napi::Value { return Napi::Number::New(e, loss); });
  }

  Napi::Value ScoreChoices(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto context = token_array(env, info[0], "scoreChoices(context)");
    if (!info[1].IsArray()) type_error(env, "scoreChoices(choices) must be an array of Uint32Array");
    const Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<std::vector<uint32_t>> choices;
    for (uint32_t i = 0; i < arr.Length(); ++i)
      choices.push_back(token_array(env, arr.Get(i), "scoreChoices(choices)[" + std::to_string(i) + "]"));
    return queue<std::vector<double>>(
        env,
        [context = std::move(context), choices = std::move(choices)](Trainer& t) { return t.score_choices(context, choices); },
        [](Napi::Env e, std::vector<double>& scores) -> Napi::Value {
          Napi::Array out = Napi::Array::New(e, scores.size());
          for (uint32_t i = 0; i < scores.size(); ++i) out.Set(i, scores[i]);
          return out;
        });
  }

  Napi::Value Logits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = token_array(env, info[0], "logits(tokens)");
    const Napi::Object o = object_arg(env, info[1], "logits options");
    const int batch = static_cast<int>(integer_field(o, "batchSize", "logits options", 1, kIntMax));
    const int seq = static_cast<int>(integer_field(o, "seqLen", "logits options", 1, kIntMax));
    return queue<std::vector<float>>(
        env, [tokens = std::move(tokens), batch, seq](Trainer& t) { return t.logits(tokens.data(), tokens.size(), batch, seq); },
        [](Napi::Env e, std::vector<float>& v) -> Napi::Value {
          Napi::Float32Array a = Napi::Float32Array::New(e, v.size());
          std::copy(v.begin(), v.end(), a.Data());
          return a;
        });
  }

  struct GradientResult {
    double loss = 0;
    std::vector<smolstage::HostTensor> grads;
  };

  Napi::Value Gradients(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto tokens = token_array(env, info[0], "gradients(tokens)");
    const Napi::Object o = object_arg(env, info[1], "gradients options");
    const int batch = static_cast<int>(integer_field(o, "batchSize", "gradients options", 1, kIntMax));
    const int micro = static_cast<int>(integer_field(o, "microBatchSize", "gradients options", 1, kIntMax));
    const int seq = static_cast<int>(integer_field(o, "seqLen", "gradients options", 1, kIntMax));
    auto weights = weights_arg(env, info[2], "gradients(weights)");
    return queue<GradientResult>(
        env,
        [tokens = std::move(tokens), weights = std::move(weights), batch, micro, seq](Trainer& t) {
          GradientResult r;
          r.loss = t.compute_gradients(tokens.data(), tokens.size(), batch, micro, seq,
                                       weights ? weights->data() : nullptr, weights ? weights->size() : 0);
          r.grads = t.gradients();
          return r;
        },
        [](Napi::Env e, GradientResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          out.Set("loss", r.loss);
          out.Set("grads", tensors_to_js(e, r.grads));
          return out;
        });
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    return queue<std::vector<smolstage::HostTensor>>(
        info.Env(), [](Trainer& t) { return t.parameters(); },
        [](Napi::Env e, std::vector<smolstage::HostTensor>& p) -> Napi::Value { return tensors_to_js(e, p); });
  }

  Napi::Value DirOp(const Napi::CallbackInfo& info, const char* what, void (Trainer::*op)(const std::string&)) {
    const std::string dir = string_arg(info.Env(), info[0], std::string(what) + "(dir)");
    return queue<Unit>(
        info.Env(),
        [dir, op](Trainer& t) {
          (t.*op)(dir);
          return Unit{};
        },
        undefined_result);
  }
  Napi::Value SaveState(const Napi::CallbackInfo& info) { return DirOp(info, "saveState", &Trainer::save_state); }
  Napi::Value LoadState(const Napi::CallbackInfo& info) { return DirOp(info, "loadState", &Trainer::load_state); }
  Napi::Value ExportHF(const Napi::CallbackInfo& info) { return DirOp(info, "exportHF", &Trainer::export_hf); }
  Napi::Value ImportHF(const Napi::CallbackInfo& info) { return DirOp(info, "importHF", &Trainer::import_hf); }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      type_error(env, "allReduce(values) must be a Float64Array");
    const Napi::Float64Array a = info[0].As<Napi::Float64Array>();
    if (a.ElementLength() > (1u << 17)) type_error(env, "allReduce(values) takes at most 131072 values");
    std::vector<double> values(a.Data(), a.Data() + a.ElementLength());
    std::string op_name = info[1].IsUndefined() ? "sum" : string_arg(env, info[1], "allReduce(op)");
    smolstage::ReduceOp op;
    if (op_name == "sum") op = smolstage::ReduceOp::Sum;
    else if (op_name == "max") op = smolstage::ReduceOp::Max;
    else if (op_name == "min") op = smolstage::ReduceOp::Min;
    else type_error(env, "allReduce(op) must be 'sum', 'max' or 'min', got '" + op_name + "'");
    return queue<std::vector<double>>(
        env,
        [values = std::move(values), op](Trainer& t) mutable {
          t.all_reduce(values.data(), values.size(), op);
          return values;
        },
        [](Napi::Env e, std::vector<double>& v) -> Napi::Value {
          Napi::Float64Array out = Napi::Float64Array::New(e, v.size());
          std::copy(v.begin(), v.end(), out.Data());
          return out;
        });
  }

  static std::string hex(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
  }

  Napi::Value VerifyParameters(const Napi::CallbackInfo& info) {
    return queue<uint64_t>(
        info.Env(), [](Trainer& t) { return t.verify_parameters(); },
        [](Napi::Env e, uint64_t& v) -> Napi::Value { return Napi::String::New(e, hex(v)); });
  }

  Napi::Value ParameterChecksums(const Napi::CallbackInfo& info) {
    return queue<std::vector<uint64_t>>(
        info.Env(), [](Trainer& t) { return t.parameter_checksums(); },
        [](Napi::Env e, std::vector<uint64_t>& v) -> Napi::Value {
          Napi::Array out = Napi::Array::New(e, v.size());
          for (uint32_t i = 0; i < v.size(); ++i) out.Set(i, hex(v[i]));
          return out;
        });
  }

  // Timing of the last completed step (timings are not part of the deterministic step result).
  Napi::Value StepTiming(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(shared_->pending_mu);
    if (!shared_->last_timing) return env.Null();
    const smolstage::StepResult& r = *shared_->last_timing;
    Napi::Object out = Napi::Object::New(env);
    out.Set("step", static_cast<double>(r.step));
    out.Set("computeMs", r.compute_seconds * 1e3);
    out.Set("commWaitMs", r.comm_wait_seconds * 1e3);
    out.Set("commBusyMs", r.comm_busy_seconds * 1e3);
    out.Set("commBytes", static_cast<double>(r.comm_bytes));
    return out;
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rank_); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), world_size_); }
  Napi::Value CommunicatorInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), comm_info_); }

  // Takes effect for the next call (a call in flight finishes with the old θ).
  Napi::Value SetRopeTheta(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ensure_alive(env);
    if (!info[0].IsNumber()) type_error(env, "setRopeTheta(theta) must be given a number");
    const double theta = info[0].As<Napi::Number>().DoubleValue();
    if (!(std::isfinite(theta) && theta > 1.0))
      throw Napi::RangeError::New(env, "ropeTheta must be a finite number > 1, got " + smolstage::json_number(theta));
    std::lock_guard<std::mutex> lock(shared_->pending_mu);
    shared_->pending_theta = theta;
    config_.rope_theta = theta;
    return env.Undefined();
  }

  // Frees the model now, or as soon as the call in flight finishes.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    shared_->disposed = true;
    std::unique_lock<std::mutex> lock(shared_->mu, std::try_to_lock);
    if (lock.owns_lock()) shared_->trainer.reset();
    return info.Env().Undefined();
  }

  Napi::Value StepCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(shared_->step_count.load()));
  }
  Napi::Value Config(const Napi::CallbackInfo& info) { return model_to_js(info.Env(), config_); }
  Napi::Value BackendInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), backend_info_); }
};

template <typename Fn>
Napi::Value guarded(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value PresetConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = string_arg(env, info[0], "presetConfig(name)");
  return guarded(env, [&] { return model_to_js(env, smolstage::preset_config(name)); });
}

Napi::Value PresetNames(const Napi::CallbackInfo& info) {
  const auto names = smolstage::preset_names();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (uint32_t i = 0; i < names.size(); ++i) out.Set(i, names[i]);
  return out;
}

Napi::Value ValidateConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ModelConfig c = parse_model(object_arg(env, info[0], "model config"), "model");
  return guarded(env, [&] {
    smolstage::validate_config(c);
    return env.Undefined();
  });
}

Napi::Value ReadHFConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = string_arg(env, info[0], "readHFConfig(dir)");
  return guarded(env, [&] { return model_to_js(env, smolstage::read_hf_config(dir)); });
}

// connect(options): creates a trainer whose rendezvous (and the check that every rank holds
// the same initial weights) runs on the pool; resolves to a NativeTrainer.
class ConnectWork : public Napi::AsyncWorker {
 public:
  ConnectWork(Napi::Env env, TrainerOptions options, Napi::FunctionReference* ctor)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), options_(std::move(options)), ctor_(ctor) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      trainer_ = std::make_unique<Trainer>(options_);
    } catch (const std::bad_alloc&) {
      SetError("out of memory creating the model");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      auto handle = Napi::External<std::unique_ptr<Trainer>>::New(Env(), &trainer_);
      deferred_.Resolve(ctor_->New({handle}));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  TrainerOptions options_;
  Napi::FunctionReference* ctor_;
  std::unique_ptr<Trainer> trainer_;
};

Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TrainerOptions options = parse_options(env, info[0]);
  auto* w = new ConnectWork(env, std::move(options), env.GetInstanceData<Napi::FunctionReference>());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeTrainer::Define(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  exports.Set("NativeTrainer", ctor);
  exports.Set("connect", Napi::Function::New<Connect>(env, "connect"));
  exports.Set("presetConfig", Napi::Function::New<PresetConfig>(env, "presetConfig"));
  exports.Set("presetNames", Napi::Function::New<PresetNames>(env, "presetNames"));
  exports.Set("validateConfig", Napi::Function::New<ValidateConfig>(env, "validateConfig"));
  exports.Set("readHFConfig", Napi::Function::New<ReadHFConfig>(env, "readHFConfig"));
  return exports;
}

}  // namespace

NODE_API_MODULE(smolstage_trainer, Init)
