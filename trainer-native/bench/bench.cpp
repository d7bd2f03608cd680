// Training throughput of the native trainer for one configuration per process (so peak RSS
// belongs to that configuration). Prints one JSON object on stdout.
//   smolstage_bench --preset tiny --seq 256 --batch 4 --micro 4 --steps 5 --warmup 1 --threads 0
//   smolstage_bench --preset smollm2-135m --print-config   (the ModelConfig JSON, for bench_torch.py)
//   smolstage_bench --preset smollm2-135m --backend cuda --seq 1024 --batch 16   (CUDA builds)
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/trainer.h"

using namespace smolstage;

int main(int argc, char** argv) {
  std::string preset = "tiny", backend = "cpu";
  bool print_config = false;
  int seq = 256, batch = 4, micro = 0, steps = 5, warmup = 1, threads = 0;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--print-config") {
      print_config = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", k.c_str());
      return 2;
    }
    const char* v = argv[i + 1];
    if (k == "--preset") preset = v;
    else if (k == "--seq") seq = std::atoi(v);
    else if (k == "--batch") batch = std::atoi(v);
    else if (k == "--micro") micro = std::atoi(v);
    else if (k == "--steps") steps = std::atoi(v);
    else if (k == "--warmup") warmup = std::atoi(v);
    else if (k == "--threads") threads = std::atoi(v);
    else if (k == "--backend") backend = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (micro <= 0) micro = batch;
  try {
    TrainerOptions o;
    o.model = preset_config(preset);
    if (print_config) {
      const ModelConfig& c = o.model;
      std::printf(
          "{\"hiddenSize\":%d,\"numLayers\":%d,\"numHeads\":%d,\"numKvHeads\":%d,\"intermediateSize\":%d,"
          "\"vocabSize\":%d,\"ropeTheta\":%.17g,\"rmsNormEps\":%.17g,\"tieEmbeddings\":%s,"
          "\"maxPositionEmbeddings\":%d,\"initializerRange\":%.17g}\n",
          c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size, c.vocab_size, c.rope_theta,
          c.rms_norm_eps, c.tie_embeddings ? "true" : "false", c.max_position_embeddings, c.initializer_range);
      return 0;
    }
    o.optimizer = {0.9, 0.95, 1e-8, 0.01, 1.0};
    o.schedule.peak_lr = 1e-4;
    o.seed = 1;
    o.threads = threads;
    o.backend = backend;
    Trainer trainer(o);
    std::vector<uint32_t> tokens(static_cast<size_t>(batch) * (seq + 1));
    Rng rng(5);
    for (auto& t : tokens) t = static_cast<uint32_t>(rng.next() % o.model.vocab_size);
    double loss = 0;
    for (int s = 0; s < warmup; ++s) loss = trainer.step(tokens.data(), tokens.size(), batch, micro, seq).loss;
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) loss = trainer.step(tokens.data(), tokens.size(), batch, micro, seq).loss;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "{\"impl\":\"smolstage\",\"preset\":\"%s\",\"seq\":%d,\"batch\":%d,\"micro\":%d,\"steps\":%d,"
        "\"threads\":%d,\"tokensPerSec\":%.2f,\"secPerStep\":%.4f,\"peakMemMB\":%.1f,\"loss\":%.5f,\"backend\":\"%s\"}\n",
        preset.c_str(), seq, batch, micro, steps, threads, static_cast<double>(batch) * seq * steps / secs,
        secs / steps, ru.ru_maxrss / 1024.0, loss, trainer.describe_backend().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
