// Data-parallel training over real Gloo (TCP over loopback). Each test starts its ranks as
// child processes of this binary (`--child NAME ...`), which write their results into a
// temporary directory; the parent compares them. Children exit 0 on success.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "check.h"
#include "core/communicator.h"
#include "core/rng.h"
#include "core/trainer.h"

using namespace smolstage;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("smolstage-dist-" + name + "-" + std::to_string(getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

pid_t spawn(const std::string& child, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"smolstage_dist_tests", "--child", child};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv("/proc/self/exe", raw.data());
    std::_Exit(127);
  }
  return pid;
}

// Exit statuses of the children, in order; kills everything and fails after `limit` (a hang
// guard so a broken build cannot block ctest forever, not a performance check).
std::vector<int> wait_children(const std::vector<pid_t>& pids, std::chrono::seconds limit) {
  std::vector<int> status(pids.size(), -1);
  const auto deadline = Clock::now() + limit;
  size_t left = pids.size();
  while (left > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (status[i] != -1) continue;
      int st = 0;
      if (::waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        --left;
      }
    }
    if (left > 0 && Clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i)
        if (status[i] == -1) {
          ::kill(pids[i], SIGKILL);
          ::waitpid(pids[i], nullptr, 0);
        }
      throw check::Failure("ranks still running after " + std::to_string(limit.count()) + " s: they hung");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, p);
}

DistributedConfig dist_config(int rank, int world, int port, int64_t timeout_ms) {
  DistributedConfig c;
  c.rank = rank;
  c.world_size = world;
  c.master_addr = "127.0.0.1";
  c.master_port = port;
  c.timeout_ms = timeout_ms;
  return c;
}

// ---- children ----------------------------------------------------------------------------

// args: rank world port. Checks gradient averaging (several buckets in flight) and the host
// reductions against values computed here; exact, since every sum below is exact in fp32.
int child_allreduce(const std::vector<std::string>& a) {
  const int rank = std::stoi(a[0]), world = std::stoi(a[1]), port = std::stoi(a[2]);
  auto comm = make_communicator(dist_config(rank, world, port, 20000), "cpu");
  if (!comm || comm->name() != "gloo" || comm->rank() != rank || comm->world_size() != world) return 10;
  const std::vector<size_t> sizes{1, 3, 1000, 262147};
  std::vector<std::vector<float>> bufs;
  for (size_t n : sizes) {
    std::vector<float> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<float>((rank + 1) * 0.5 + static_cast<double>(i % 7));
    bufs.push_back(std::move(b));
  }
  for (auto& b : bufs) comm->start_average(b.data(), b.size());
  comm->wait_gradients();
  const float inv = 1.0f / static_cast<float>(world);
  for (size_t k = 0; k < sizes.size(); ++k)
    for (size_t i = 0; i < sizes[k]; ++i) {
      float sum = 0;
      for (int r = 0; r < world; ++r) sum += static_cast<float>((r + 1) * 0.5 + static_cast<double>(i % 7));
      if (bufs[k][i] != sum * inv) {
        std::fprintf(stderr, "bucket %zu element %zu: %g, expected %g\n", k, i, bufs[k][i], sum * inv);
        return 11;
      }
    }
  const CommStats stats = comm->take_stats();
  if (stats.buckets != 4 || stats.bytes != static_cast<int64_t>(4 * (1 + 3 + 1000 + 262147))) return 12;
  double d[3] = {0.25 * rank, -1.0 * rank, 3.0};
  comm->all_reduce(d, 3, ReduceOp::Sum);
  if (d[0] != 0.25 * world * (world - 1) / 2 || d[1] != -1.0 * world * (world - 1) / 2 || d[2] != 3.0 * world) return 13;
  double m[2] = {static_cast<double>(rank), -static_cast<double>(rank)};
  comm->all_reduce(m, 2, ReduceOp::Max);
  if (m[0] != world - 1 || m[1] != 0) return 14;
  double n[1] = {static_cast<double>(rank) + 7};
  comm->all_reduce(n, 1, ReduceOp::Min);
  if (n[0] != 7) return 15;
  int64_t big[2] = {(int64_t{1} << 40) + rank, rank == 0 ? 5 : 0};
  comm->all_reduce(big, 2, ReduceOp::Sum);
  if (big[0] != (int64_t{1} << 40) * world + world * (world - 1) / 2 || big[1] != 5) return 16;
  return 0;
}

constexpr int kSeq = 16;

TrainerOptions train_options() {
  TrainerOptions o;
  o.model = preset_config("tiny");
  o.optimizer = {0.9, 0.95, 1e-8, 0.01, 1.0};
  o.schedule.peak_lr = 3e-3;
  o.schedule.warmup_steps = 2;
  o.seed = 11;
  o.threads = 1;
  return o;
}

// The global batch of step s: `rows` rows of kSeq + 1 ids, the same on every rank.
std::vector<uint32_t> global_batch(int step, int rows) {
  std::vector<uint32_t> t(static_cast<size_t>(rows) * (kSeq + 1));
  Rng rng(1000 + step);
  // A small id range so the loss actually falls within 20 steps.
  for (auto& id : t) id = static_cast<uint32_t>(rng.next() % 512);
  return t;
}

// Loss weights of global row g (an SFT mask): the second half of the rows weighs far fewer
// tokens, so the ranks' weight sums differ and only a globally summed normalizer agrees.
std::vector<float> global_weights(int step, int rows) {
  std::vector<float> w(static_cast<size_t>(rows) * kSeq, 0.0f);
  for (int g = 0; g < rows; ++g)
    for (int t = 0; t < kSeq; ++t)
      w[static_cast<size_t>(g) * kSeq + t] = (g < rows / 2 ? t >= (g + step) % 4 : t < 3) ? 1.0f : 0.0f;
  return w;
}

// args: rank world port dir global_batch micro steps [mode]. Trains on its slice of every global
// batch (mode plain, weighted: with global_weights, dpo: pairs of two global batches) and writes
// "loss gradNorm tokens [rewardMargin rewardAccuracy]" per step, then the parameter checksum.
int child_train(const std::vector<std::string>& a) {
  const int rank = std::stoi(a[0]), world = std::stoi(a[1]), port = std::stoi(a[2]);
  const fs::path dir = a[3];
  const int global = std::stoi(a[4]), micro = std::stoi(a[5]), steps = std::stoi(a[6]);
  const std::string mode = a.size() > 7 ? a[7] : "plain";
  TrainerOptions o = train_options();
  o.distributed = dist_config(rank, world, port, 30000);
  Trainer t(o);
  const int local = global / world;
  const size_t row = kSeq + 1;
  size_t params = 0;
  for (const auto& p : t.parameters()) params += p.values.size();
  std::ostringstream out;
  out.precision(17);
  for (int s = 0; s < steps; ++s) {
    const std::vector<uint32_t> all = global_batch(s, global);
    const uint32_t* mine = all.data() + static_cast<size_t>(rank) * local * row;
    const std::vector<float> weights = global_weights(s, global);
    const float* my_weights = weights.data() + static_cast<size_t>(rank) * local * kSeq;
    const size_t my_count = static_cast<size_t>(local) * kSeq;
    StepResult r;
    DpoResult d{};
    if (mode == "dpo") {
      const std::vector<uint32_t> other = global_batch(s + 500, global);
      std::vector<double> refs(static_cast<size_t>(global)), refs_rejected(refs.size());
      for (int g = 0; g < global; ++g) {
        refs[g] = -40.0 - 3.0 * g;
        refs_rejected[g] = -45.0 + 2.0 * g;
      }
      PreferenceBatch b;
      b.chosen = mine;
      b.rejected = other.data() + static_cast<size_t>(rank) * local * row;
      b.chosen_count = b.rejected_count = static_cast<size_t>(local) * row;
      b.chosen_weights = b.rejected_weights = my_weights;
      b.chosen_weight_count = b.rejected_weight_count = my_count;
      b.ref_chosen = refs.data() + static_cast<size_t>(rank) * local;
      b.ref_rejected = refs_rejected.data() + static_cast<size_t>(rank) * local;
      b.ref_chosen_count = b.ref_rejected_count = static_cast<size_t>(local);
      d = t.dpo_step(b, DpoOptions{0.5, local, micro, kSeq});
      r = d.step;
    } else {
      r = mode == "weighted" ? t.step(mine, static_cast<size_t>(local) * row, local, micro, kSeq, my_weights, my_count)
                             : t.step(mine, static_cast<size_t>(local) * row, local, micro, kSeq);
    }
    // Reduced once per optimizer step, whatever the number of micro-batches.
    const int64_t expected_bytes = world > 1 ? static_cast<int64_t>(params * sizeof(float)) : 0;
    if (r.comm_bytes != expected_bytes) {
      std::fprintf(stderr, "step %d reduced %lld bytes, expected %lld\n", s, static_cast<long long>(r.comm_bytes),
                   static_cast<long long>(expected_bytes));
      return 20;
    }
    out << r.loss << " " << r.grad_norm << " " << r.tokens;
    if (mode == "dpo") out << " " << d.rewards_margin << " " << d.rewards_accuracy;
    out << "\n";
  }
  const uint64_t sum = t.verify_parameters();
  out << "checksum " << sum << " local " << t.parameter_checksum() << "\n";
  write_file(dir / ("train-" + std::to_string(world) + "-" + std::to_string(rank) + ".txt"), out.str());
  return 0;
}

// args: rank world port dir timeout_ms victim mode. Trains until an error; the victim rank
// SIGKILLs (mode kill) or SIGSTOPs (mode hang) itself after two steps. The others record the
// error and exit 3; reaching the end without an error exits 0 (which the parent rejects).
int child_fault(const std::vector<std::string>& a) {
  const int rank = std::stoi(a[0]), world = std::stoi(a[1]), port = std::stoi(a[2]);
  const fs::path dir = a[3];
  const int64_t timeout_ms = std::stoll(a[4]);
  const int victim = std::stoi(a[5]);
  const std::string mode = a[6];
  TrainerOptions o = train_options();
  o.distributed = dist_config(rank, world, port, timeout_ms);
  o.distributed.bucket_bytes = 64 << 10;  // many buckets: the failure hits one mid-backward
  Trainer t(o);
  const int local = 2;
  for (int s = 0; s < 100000; ++s) {
    if (rank == victim && s == 2) {
      write_file(dir / "victim-stopping", "");
      ::raise(mode == "kill" ? SIGKILL : SIGSTOP);
    }
    const std::vector<uint32_t> all = global_batch(s, local * world);
    try {
      t.step(all.data() + static_cast<size_t>(rank) * local * (kSeq + 1), static_cast<size_t>(local) * (kSeq + 1), local,
             local, kSeq);
    } catch (const std::exception& e) {
      // A later collective must fail at once too, naming the first failure.
      std::string again;
      try {
        t.verify_parameters();
      } catch (const std::exception& e2) {
        again = e2.what();
      }
      write_file(dir / ("error-" + std::to_string(rank) + ".txt"), std::string(e.what()) + "\n" + again + "\n");
      return 3;
    }
  }
  return 0;
}

check::RegisterChild register_allreduce("allreduce", child_allreduce);
check::RegisterChild register_train("train", child_train);
check::RegisterChild register_fault("fault", child_fault);

struct TrainRun {
  std::vector<double> loss, norm, tokens, margin;
  std::string checksum;
};

TrainRun parse_train(const std::string& text) {
  TrainRun r;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    if (line.rfind("checksum ", 0) == 0) {
      std::string word, global, local_word, local;
      l >> word >> global >> local_word >> local;
      CHECK_MSG(global == local, "verify_parameters returned " << global << " but the local checksum is " << local);
      r.checksum = global;
      continue;
    }
    double loss, norm, tokens, margin = 0;
    l >> loss >> norm >> tokens;
    if (l >> margin) r.margin.push_back(margin);
    r.loss.push_back(loss);
    r.norm.push_back(norm);
    r.tokens.push_back(tokens);
  }
  return r;
}

std::vector<TrainRun> run_world(const fs::path& dir, int world, int global, int micro, int steps,
                                const std::string& mode = "plain") {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r)
    pids.push_back(spawn("train", {std::to_string(r), std::to_string(world), std::to_string(port), dir.string(),
                                   std::to_string(global), std::to_string(micro), std::to_string(steps), mode}));
  const std::vector<int> status = wait_children(pids, std::chrono::seconds(600));
  std::vector<TrainRun> runs;
  for (int r = 0; r < world; ++r) {
    CHECK_MSG(status[r] == 0, "world " << world << " rank " << r << " exited with " << status[r]);
    runs.push_back(parse_train(read_file(dir / ("train-" + std::to_string(world) + "-" + std::to_string(r) + ".txt"))));
  }
  return runs;
}

}  // namespace

TEST(gloo_allreduce_averages_buckets_and_reduces_host_values) {
  for (int world : {2, 3}) {
    const int port = free_port();
    std::vector<pid_t> pids;
    for (int r = 0; r < world; ++r)
      pids.push_back(spawn("allreduce", {std::to_string(r), std::to_string(world), std::to_string(port)}));
    const std::vector<int> status = wait_children(pids, std::chrono::seconds(120));
    for (int r = 0; r < world; ++r) CHECK_MSG(status[r] == 0, "world " << world << " rank " << r << " exited with " << status[r]);
  }
}

// Same global batch (8 rows) on 1, 2 and 4 ranks, with two micro-batches per rank: the same
// losses to 1e-5 relative over 20 steps, and bit-identical parameters on every rank.
TEST(data_parallel_1_2_4_ranks_train_the_same_model) {
  TempDir dir("train");
  const int global = 8, steps = 20;
  const TrainRun single = run_world(dir.path, 1, global, 4, steps)[0];
  CHECK(single.loss.size() == static_cast<size_t>(steps));
  CHECK_MSG(single.loss.back() < single.loss.front() - 0.5, "loss did not fall: " << single.loss.front() << " → "
                                                                                << single.loss.back());
  for (int world : {2, 4}) {
    const std::vector<TrainRun> runs = run_world(dir.path, world, global, global / world / 2, steps);
    for (int r = 0; r < world; ++r) {
      const TrainRun& run = runs[r];
      CHECK(run.loss.size() == single.loss.size());
      CHECK_MSG(run.checksum == runs[0].checksum, "world " << world << ": rank " << r << " parameters differ from rank 0's");
      for (int s = 0; s < steps; ++s) {
        CHECK_MSG(run.loss[s] == runs[0].loss[s], "world " << world << " rank " << r << " step " << s
                                                          << " reports another loss than rank 0");
        CHECK_MSG(run.norm[s] == runs[0].norm[s], "world " << world << " rank " << r << " step " << s << " grad norm");
        CHECK_MSG(std::fabs(run.loss[s] - single.loss[s]) <= 1e-5 * single.loss[s],
                  "world " << world << " step " << s << " loss " << run.loss[s] << " vs one rank " << single.loss[s]);
        CHECK_MSG(std::fabs(run.norm[s] - single.norm[s]) <= 1e-4 * single.norm[s],
                  "world " << world << " step " << s << " grad norm " << run.norm[s] << " vs " << single.norm[s]);
        CHECK(run.tokens[s] == global * kSeq);
      }
    }
  }
}

// Weighted (SFT-masked) steps and DPO steps: 1, 2 and 4 ranks agree on the loss (the weight
// normalizer and the pair count are global), the reported rewards and the parameters.
TEST(weighted_and_dpo_steps_agree_across_1_2_4_ranks) {
  TempDir dir("post");
  const int global = 8, steps = 6;
  for (const std::string mode : {"weighted", "dpo"}) {
    const TrainRun single = run_world(dir.path, 1, global, 2, steps, mode)[0];
    CHECK(single.loss.size() == static_cast<size_t>(steps));
    CHECK_MSG(single.loss.back() < single.loss.front(), mode << ": loss did not fall");
    for (int world : {2, 4}) {
      const std::vector<TrainRun> runs = run_world(dir.path, world, global, global / world / 2, steps, mode);
      for (int r = 0; r < world; ++r) {
        CHECK_MSG(runs[r].checksum == runs[0].checksum, mode << " world " << world << ": rank " << r << " diverged");
        for (int s = 0; s < steps; ++s) {
          CHECK(runs[r].loss[s] == runs[0].loss[s]);
          CHECK_MSG(std::fabs(runs[r].loss[s] - single.loss[s]) <= 1e-5 * std::fabs(single.loss[s]),
                    mode << " world " << world << " step " << s << " loss " << runs[r].loss[s] << " vs one rank "
                         << single.loss[s]);
          CHECK_MSG(std::fabs(runs[r].norm[s] - single.norm[s]) <= 1e-4 * single.norm[s],
                    mode << " world " << world << " step " << s << " grad norm " << runs[r].norm[s] << " vs "
                         << single.norm[s]);
          if (mode == "dpo")
            CHECK_MSG(std::fabs(runs[r].margin[s] - single.margin[s]) <= 1e-5 * (1 + std::fabs(single.margin[s])),
                      "dpo world " << world << " step " << s << " reward margin");
          CHECK(runs[r].tokens[s] == (mode == "dpo" ? 2 : 1) * global * kSeq);
        }
      }
    }
  }
}

namespace {

// Starts `world` fault children; returns the error texts of the surviving ranks.
std::vector<std::string> run_fault(const std::string& mode, int world, int victim, int64_t timeout_ms) {
  TempDir dir("fault-" + mode);
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r)
    pids.push_back(spawn("fault", {std::to_string(r), std::to_string(world), std::to_string(port), dir.path.string(),
                                   std::to_string(timeout_ms), std::to_string(victim), mode}));
  std::vector<pid_t> survivors;
  for (int r = 0; r < world; ++r)
    if (r != victim) survivors.push_back(pids[r]);
  std::vector<int> status;
  try {
    status = wait_children(survivors, std::chrono::seconds(120 + timeout_ms / 1000 * 3));
  } catch (...) {
    ::kill(pids[victim], SIGKILL);
    ::waitpid(pids[victim], nullptr, 0);
    throw;
  }
  // A stopped victim is still there: remove it now.
  ::kill(pids[victim], SIGKILL);
  int st = 0;
  ::waitpid(pids[victim], &st, 0);
  CHECK_MSG(fs::exists(dir.path / "victim-stopping"), "the victim never reached its step");
  std::vector<std::string> errors;
  for (size_t i = 0, r = 0; r < static_cast<size_t>(world); ++r) {
    if (static_cast<int>(r) == victim) continue;
    CHECK_MSG(status[i] == 3, "rank " << r << " exited with " << status[i] << " instead of failing its step");
    errors.push_back(read_file(dir.path / ("error-" + std::to_string(r) + ".txt")));
    ++i;
  }
  return errors;
}

}  // namespace

// kill -9 of one rank: the others fail (their connection to it breaks, no waiting for the
// timeout) with an error naming their rank, and every later collective fails too.
TEST(a_killed_rank_makes_every_other_rank_fail) {
  const auto errors = run_fault("kill", 3, 1, 60000);
  for (const auto& e : errors) {
    CHECK_MSG(e.find("rank ") != std::string::npos && e.find(" of 3: ") != std::string::npos, e);
    CHECK_MSG(e.find("failed") != std::string::npos, e);
    CHECK_MSG(e.find("communicator failed earlier") != std::string::npos, "a later call did not fail at once: " << e);
  }
}

// A hung rank (SIGSTOP: its sockets stay open) makes the others fail by the per-op timeout.
TEST(a_hung_rank_makes_every_other_rank_fail_after_the_timeout) {
  const auto errors = run_fault("hang", 3, 2, 3000);
  for (const auto& e : errors) {
    CHECK_MSG(e.find("timeoutMs = 3000") != std::string::npos, e);
    CHECK_MSG(e.find("communicator failed earlier") != std::string::npos, e);
  }
}

TEST(rendezvous_errors_name_the_rank_and_the_address) {
  const int port = free_port();
  // Rank 1 with nobody listening at the master address.
  CHECK_THROWS_WITH(make_communicator(dist_config(1, 2, port, 800), "cpu"),
                    "rank 1 of 2: could not reach the rendezvous store at 127.0.0.1:" + std::to_string(port));
  // Rank 0 alone: it names the rank that never came.
  CHECK_THROWS_WITH(make_communicator(dist_config(0, 3, port, 800), "cpu"), "waiting for rank(s) 1, 2 of 3 to reach the rendezvous");
  CHECK_THROWS_WITH(make_communicator(dist_config(0, 3, port, 800), "cpu"), "127.0.0.1:" + std::to_string(port));
}

TEST(distributed_config_is_validated) {
  CHECK_THROWS_WITH(make_communicator(dist_config(2, 2, 1234, 1000), "cpu"), "rank must be in [0, worldSize)");
  CHECK_THROWS_WITH(make_communicator(dist_config(0, 2, 0, 1000), "cpu"), "masterPort must be in [1, 65535]");
  DistributedConfig c = dist_config(0, 2, 1234, 1000);
  c.engine = "nccl";
  CHECK_THROWS_WITH(make_communicator(c, "cpu"), "engine 'nccl' reduces GPU memory");
  c.engine = "mpi";
  CHECK_THROWS_WITH(make_communicator(c, "cpu"), "engine must be 'auto', 'gloo', 'nccl' or 'none'");
  CHECK(make_communicator(dist_config(0, 1, 1234, 1000), "cpu") == nullptr);
}

// Ranks created with different seeds do not start from the same weights: creation fails.
TEST(ranks_with_different_weights_fail_at_creation) {
  TempDir dir("seed");
  const int port = free_port();
  const pid_t other = spawn("seed", {"1", std::to_string(port), dir.path.string()});
  TrainerOptions o = train_options();
  o.seed = 1;
  o.distributed = dist_config(0, 2, port, 20000);
  CHECK_THROWS_WITH(Trainer t(o), "parameters diverged across ranks at step 0: rank 0 has");
  const std::vector<int> status = wait_children({other}, std::chrono::seconds(60));
  CHECK(status[0] == 3);
  CHECK_MSG(read_file(dir.path / "seed-error.txt").find("rank(s) 1 (") != std::string::npos,
            read_file(dir.path / "seed-error.txt"));
}

namespace {
// args: rank port dir: rank 1 of 2 with seed 2.
int child_seed(const std::vector<std::string>& a) {
  TrainerOptions o = train_options();
  o.seed = 2;
  o.distributed = dist_config(std::stoi(a[0]), 2, std::stoi(a[1]), 20000);
  try {
    Trainer t(o);
  } catch (const std::exception& e) {
    write_file(fs::path(a[2]) / "seed-error.txt", e.what());
    return 3;
  }
  return 0;
}
check::RegisterChild register_seed("seed", child_seed);
}  // namespace
