// Data-parallel step time of the native trainer on the cpu backend (Gloo): one process per
// rank, started by scripts/bench-dp.sh. Each rank trains on global-batch / world rows; rank 0
// prints one JSON object with the mean step time split into compute and communication.
//   smolstage_bench_dp --rank 0 --world 2 --port 29555 --preset tiny-gqa --global-batch 16
//     --micro 4 --seq 128 --steps 5 --warmup 1 --threads 1 --bucket-mb 4
// computeMs: forward + backward + optimizer on this rank (the all-reduces run meanwhile on the
// comm thread); commWaitMs: time blocked after the backward until the gradients (and the loss)
// were reduced; commBusyMs: how long the gradient all-reduces ran; hidden = 1 − wait / busy.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/trainer.h"

using namespace smolstage;

int main(int argc, char** argv) {
  std::string preset = "tiny-gqa";
  int rank = 0, world = 1, port = 29555, global = 16, micro = 0, seq = 128, steps = 5, warmup = 1, threads = 1;
  double bucket_mb = 25;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--rank") rank = std::atoi(v);
    else if (k == "--world") world = std::atoi(v);
    else if (k == "--port") port = std::atoi(v);
    else if (k == "--preset") preset = v;
    else if (k == "--global-batch") global = std::atoi(v);
    else if (k == "--micro") micro = std::atoi(v);
    else if (k == "--seq") seq = std::atoi(v);
    else if (k == "--steps") steps = std::atoi(v);
    else if (k == "--warmup") warmup = std::atoi(v);
    else if (k == "--threads") threads = std::atoi(v);
    else if (k == "--bucket-mb") bucket_mb = std::atof(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (global % world != 0) {
    std::fprintf(stderr, "--global-batch %d is not divisible by --world %d\n", global, world);
    return 2;
  }
  const int local = global / world;
  if (micro <= 0 || micro > local) micro = local;
  try {
    TrainerOptions o;
    o.model = preset_config(preset);
    o.optimizer = {0.9, 0.95, 1e-8, 0.01, 1.0};
    o.schedule.peak_lr = 1e-3;
    o.seed = 1;
    o.threads = threads;
    o.distributed.rank = rank;
    o.distributed.world_size = world;
    o.distributed.master_port = port;
    o.distributed.timeout_ms = 120000;
    o.distributed.bucket_bytes = static_cast<size_t>(bucket_mb * (1 << 20));
    Trainer t(o);
    const size_t row = static_cast<size_t>(seq) + 1;
    std::vector<uint32_t> tokens(static_cast<size_t>(global) * row);
    double step_s = 0, compute_s = 0, wait_s = 0, busy_s = 0;
    int64_t bytes = 0;
    for (int s = 0; s < warmup + steps; ++s) {
      Rng rng(77 + s);
      for (auto& id : tokens) id = static_cast<uint32_t>(rng.next() % static_cast<uint64_t>(o.model.vocab_size));
      const auto t0 = std::chrono::steady_clock::now();
      const StepResult r = t.step(tokens.data() + static_cast<size_t>(rank) * local * row, static_cast<size_t>(local) * row,
                                  local, micro, seq);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s < warmup) continue;
      step_s += wall;
      compute_s += r.compute_seconds;
      wait_s += r.comm_wait_seconds;
      busy_s += r.comm_busy_seconds;
      bytes = r.comm_bytes;
    }
    t.verify_parameters();
    if (rank == 0) {
      const double n = steps;
      const double hidden = busy_s > 0 ? std::clamp(1.0 - wait_s / busy_s, 0.0, 1.0) : 0.0;
      std::printf(
          "{\"preset\":\"%s\",\"world\":%d,\"globalBatch\":%d,\"micro\":%d,\"seq\":%d,\"threadsPerRank\":%d,"
          "\"bucketMB\":%g,\"gradMB\":%.2f,\"stepMs\":%.2f,\"computeMs\":%.2f,\"commWaitMs\":%.2f,"
          "\"commBusyMs\":%.2f,\"hiddenShare\":%.3f,\"tokPerSec\":%.1f,\"communicator\":\"%s\"}\n",
          preset.c_str(), world, global, micro, seq, threads, bucket_mb, bytes / 1048576.0, 1e3 * step_s / n,
          1e3 * compute_s / n, 1e3 * wait_s / n, 1e3 * busy_s / n, hidden, global * seq * n / step_s,
          t.describe_communicator().c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}
