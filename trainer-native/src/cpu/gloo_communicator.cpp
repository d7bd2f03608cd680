// Gloo (TCP transport) communicator for the cpu backend. Gloo's collectives block the calling
// thread, so every collective runs on one comm thread in submission order: gradient buckets
// queued during the backward pass are reduced while the compute thread keeps going, and the
// small synchronous reductions go through the same queue (one op at a time on the context).
#include "cpu/gloo_communicator.h"

#include <gloo/allreduce.h>
#include <gloo/common/error.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/rendezvous.h"

namespace smolstage {
namespace {

using Clock = std::chrono::steady_clock;

// Gloo asks for its keys through this adapter; numeric keys are ranks' transport addresses,
// so a timeout names the rank that never published one.
class StoreAdapter : public gloo::rendezvous::Store {
 public:
  explicit StoreAdapter(RendezvousStore& store) : store_(store) {}
  void set(const std::string& key, const std::vector<char>& data) override { store_.set("gloo/" + key, data); }
  std::vector<char> get(const std::string& key) override {
    return store_.get("gloo/" + key, store_.timeout(), describe(key));
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, store_.timeout()); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (const auto& k : keys) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      store_.get("gloo/" + k, std::max(left, std::chrono::milliseconds(0)), describe(k));
    }
  }

 private:
  RendezvousStore& store_;
  static std::string describe(const std::string& key) {
    const bool numeric = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) { return std::isdigit(c); });
    return numeric ? "rank " + key + "'s Gloo address" : "Gloo's rendezvous key";
  }
};

template <typename T>
gloo::AllreduceOptions::Func reducer(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max:
      return [](void* c, const void* a, const void* b, size_t n) { gloo::max<T>(c, a, b, n); };
    case ReduceOp::Min:
      return [](void* c, const void* a, const void* b, size_t n) { gloo::min<T>(c, a, b, n); };
    case ReduceOp::Sum:
      break;
  }
  return [](void* c, const void* a, const void* b, size_t n) { gloo::sum<T>(c, a, b, n); };
}

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(const DistributedConfig& c)
      : rank_(c.rank), world_(c.world_size), timeout_(c.timeout_ms), where_("rank " + std::to_string(c.rank)) {
    // A peer that dies mid-write would otherwise kill this process with SIGPIPE inside Gloo's
    // socket writes (Node already ignores it; plain C++ programs do not).
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
    store_ = std::make_unique<RendezvousStore>(c);
    store_->barrier("the rendezvous", timeout_);
    local_ = c.local_addr.empty() ? local_address_towards(c.master_addr, c.master_port) : c.local_addr;
    if (local_.empty()) local_ = "127.0.0.1";
    try {
      gloo::transport::tcp::attr attr;
      attr.hostname = local_;
      device_ = gloo::transport::tcp::CreateDevice(attr);
      auto context = std::make_shared<gloo::rendezvous::Context>(rank_, world_);
      context->setTimeout(timeout_);
      StoreAdapter adapter(*store_);
      context->connectFullMesh(adapter, device_);
      context_ = context;
    } catch (const std::exception& e) {
      throw std::runtime_error(where_ + " of " + std::to_string(world_) + ": Gloo could not connect to its peers (local address " +
                               local_ + ", rendezvous " + store_->address() + "): " + e.what());
    }
    // Everyone is connected: the store is no longer needed by the peers, but rank 0 keeps
    // serving it until this communicator goes (a late reader must not see it vanish).
    store_->barrier("the post-connect barrier", timeout_);
    worker_ = std::thread([this] { run(); });
  }

  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    context_.reset();
    device_.reset();
  }

  std::string name() const override { return "gloo"; }
  std::string describe() const override {
    return "gloo (tcp " + local_ + ", rank " + std::to_string(rank_) + " of " + std::to_string(world_) +
           ", rendezvous " + store_->address() + ", timeout " + std::to_string(timeout_.count()) + " ms)";
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void start_average(float* data, size_t count) override {
    if (count == 0) return;
    const float inv = 1.0f / static_cast<float>(world_);
    const int64_t bytes = static_cast<int64_t>(count * sizeof(float));
    submit([this, data, count, inv, bytes] {
      const auto t0 = Clock::now();
      reduce<float>(data, count, ReduceOp::Sum, "gradient bucket of " + std::to_string(count) + " floats");
      if (world_ > 1)
        for (size_t i = 0; i < count; ++i) data[i] *= inv;
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(mu_);
      stats_.busy_seconds += seconds;
      stats_.buckets += 1;
      stats_.bytes += bytes;
    });
  }

  void wait_gradients() override { wait_idle(); }

  void all_reduce(double* host, size_t count, ReduceOp op) override {
    if (count == 0) return;
    submit([this, host, count, op] { reduce<double>(host, count, op, "all-reduce of " + std::to_string(count) + " doubles"); });
    wait_idle();
  }
  void all_reduce(int64_t* host, size_t count, ReduceOp op) override {
    if (count == 0) return;
    submit([this, host, count, op] { reduce<int64_t>(host, count, op, "all-reduce of " + std::to_string(count) + " int64s"); });
    wait_idle();
  }

  CommStats take_stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    CommStats s = stats_;
    stats_ = CommStats{};
    return s;
  }

 private:
  const int rank_, world_;
  const std::chrono::milliseconds timeout_;
  const std::string where_;
  std::string local_;
  std::unique_ptr<RendezvousStore> store_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  uint32_t tag_ = 0;  // the same sequence on every rank, since every call is collective

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t pending_ = 0;  // queued + running
  bool stop_ = false;
  std::string error_;  // set once; the communicator is unusable afterwards
  bool reported_ = false;
  CommStats stats_;

  template <typename T>
  void reduce(T* data, size_t count, ReduceOp op, const std::string& what) {
    if (world_ == 1) return;
    gloo::AllreduceOptions opts(context_);
    opts.setOutput(data, count);
    opts.setReduceFunction(reducer<T>(op));
    opts.setTag(tag_++);
    opts.setTimeout(timeout_);
    try {
      gloo::allreduce(opts);
    } catch (const std::exception& e) {
      throw std::runtime_error(where_ + " of " + std::to_string(world_) + ": " + what + " failed (a peer died, or hung past timeoutMs = " +
                               std::to_string(timeout_.count()) + "): " + e.what());
    }
  }

  // The first caller to see a failure gets its message as is; later calls say it is old news.
  [[noreturn]] void raise_failure() {
    const bool first = !reported_;
    reported_ = true;
    throw std::runtime_error(first ? error_ : "communicator failed earlier: " + error_);
  }

  void submit(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty()) raise_failure();
    queue_.push_back(std::move(task));
    ++pending_;
    cv_.notify_all();
  }

  void wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return pending_ == 0; });
    if (!error_.empty()) raise_failure();
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      const bool skip = !error_.empty();
      lock.unlock();
      std::string failure;
      if (!skip) {
        try {
          task();
        } catch (const std::exception& e) {
          failure = e.what();
        }
      }
      lock.lock();
      if (!failure.empty() && error_.empty()) {
        error_ = failure;
        // Close every connection now, so peers blocked on this rank fail at once instead of
        // waiting out their timeout.
        lock.unlock();
        context_.reset();
        lock.lock();
      }
      --pending_;
      cv_.notify_all();
    }
  }
};

}  // namespace

std::unique_ptr<Communicator> make_gloo_communicator(const DistributedConfig& config) {
  return std::make_unique<GlooCommunicator>(config);
}

}  // namespace smolstage
