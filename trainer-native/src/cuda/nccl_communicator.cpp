// NCCL communicator for the cuda backend (host code; compiled by the C++ compiler against the
// CUDA runtime and NCCL headers). The cuda backend runs on the legacy default stream; gradient
// buckets are reduced on a separate non-blocking stream that waits for an event recorded on
// the default stream when the bucket's gradients are complete, so the all-reduce of the later
// layers runs while the default stream computes the earlier ones. The communicator is
// non-blocking (ncclConfig_t.blocking = 0) and every wait polls ncclCommGetAsyncError with a
// deadline, so a dead or hung peer aborts the communicator after timeoutMs instead of hanging.
#include "cuda/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/rendezvous.h"

namespace smolstage {
namespace {

using Clock = std::chrono::steady_clock;

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
    case ReduceOp::Sum:
      break;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const DistributedConfig& c)
      : rank_(c.rank), world_(c.world_size), timeout_(c.timeout_ms), where_("rank " + std::to_string(c.rank)) {
    store_ = std::make_unique<RendezvousStore>(c);
    store_->barrier("the rendezvous", timeout_);
    ncclUniqueId id;
    if (rank_ == 0) {
      nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      store_->set("nccl/id", std::vector<char>(id.internal, id.internal + sizeof id.internal));
    } else {
      const std::vector<char> bytes = store_->get("nccl/id", timeout_, "rank 0's NCCL unique id");
      if (bytes.size() != sizeof id.internal) fail("rank 0 published an NCCL unique id of the wrong size");
      std::memcpy(id.internal, bytes.data(), sizeof id.internal);
    }
    cuda(cudaGetDevice(&device_), "cudaGetDevice");
    cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreate");
    cuda(cudaMallocHost(&host_scratch_, kScratchBytes), "cudaMallocHost");
    cuda(cudaMalloc(&device_scratch_, kScratchBytes), "cudaMalloc");
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    nccl(ncclCommInitRankConfig(&comm_, world_, id, rank_, &config), "ncclCommInitRankConfig");
    settle("ncclCommInitRankConfig (waiting for all ranks to join NCCL)");
    store_->barrier("the post-connect barrier", timeout_);
  }

  ~NcclCommunicator() override {
    if (comm_) {
      bool clean = error_.empty();
      if (clean) {
        try {
          wait_gradients();
          nccl(ncclCommFinalize(comm_), "ncclCommFinalize");
          settle("ncclCommFinalize");
        } catch (const std::exception&) {
          clean = false;
        }
      }
      if (comm_) {
        if (clean) ncclCommDestroy(comm_);
        else ncclCommAbort(comm_);
      }
    }
    for (auto& p : timers_) {
      cudaEventDestroy(p.first);
      cudaEventDestroy(p.second);
    }
    if (ready_) cudaEventDestroy(ready_);
    if (done_) cudaEventDestroy(done_);
    if (stream_) cudaStreamDestroy(stream_);
    if (host_scratch_) cudaFreeHost(host_scratch_);
    if (device_scratch_) cudaFree(device_scratch_);
  }

  std::string name() const override { return "nccl"; }
  std::string describe() const override {
    int version = 0;
    ncclGetVersion(&version);
    return "nccl " + std::to_string(version) + " (cuda device " + std::to_string(device_) + ", rank " +
           std::to_string(rank_) + " of " + std::to_string(world_) + ", rendezvous " + store_->address() +
           ", timeout " + std::to_string(timeout_.count()) + " ms)";
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void start_average(float* data, size_t count) override {
    check_usable();
    if (count == 0) return;
    // The bucket's gradients are complete once the default stream reaches this point.
    cuda(cudaEventRecord(ready_, cudaStreamLegacy), "cudaEventRecord");
    cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
    if (in_flight_ == timers_.size()) {
      cudaEvent_t a, b;
      cuda(cudaEventCreate(&a), "cudaEventCreate");
      cuda(cudaEventCreate(&b), "cudaEventCreate");
      timers_.emplace_back(a, b);
    }
    cuda(cudaEventRecord(timers_[in_flight_].first, stream_), "cudaEventRecord");
    // ncclAvg: the sum divided by the world size, in the precision the gradients are kept in.
    nccl(ncclAllReduce(data, data, count, ncclFloat32, ncclAvg, comm_, stream_), "ncclAllReduce (gradient bucket)");
    settle("ncclAllReduce enqueue");
    cuda(cudaEventRecord(timers_[in_flight_].second, stream_), "cudaEventRecord");
    ++in_flight_;
    stats_.buckets += 1;
    stats_.bytes += static_cast<int64_t>(count * sizeof(float));
  }

  void wait_gradients() override {
    check_usable();
    if (in_flight_ == 0) return;
    wait_stream("gradient all-reduce");
    // Later work on the default stream is ordered after the reduced gradients.
    cuda(cudaStreamWaitEvent(cudaStreamLegacy, done_, 0), "cudaStreamWaitEvent");
    for (size_t i = 0; i < in_flight_; ++i) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, timers_[i].first, timers_[i].second) == cudaSuccess) stats_.busy_seconds += ms / 1e3;
    }
    in_flight_ = 0;
  }

  void all_reduce(double* host, size_t count, ReduceOp op) override { host_reduce(host, count, ncclFloat64, op); }
  void all_reduce(int64_t* host, size_t count, ReduceOp op) override { host_reduce(host, count, ncclInt64, op); }

  CommStats take_stats() override {
    CommStats s = stats_;
    stats_ = CommStats{};
    return s;
  }

 private:
  static constexpr size_t kScratchBytes = size_t{1} << 20;
  const int rank_, world_;
  const std::chrono::milliseconds timeout_;
  const std::string where_;
  std::unique_ptr<RendezvousStore> store_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> timers_;
  size_t in_flight_ = 0;
  void* host_scratch_ = nullptr;
  void* device_scratch_ = nullptr;
  std::string error_;
  CommStats stats_;

  [[noreturn]] void fail(const std::string& what) {
    if (error_.empty()) error_ = where_ + " of " + std::to_string(world_) + ": " + what;
    // Abort now: the peers' pending NCCL operations then fail instead of waiting out a timeout.
    if (comm_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    throw std::runtime_error(error_);
  }
  void check_usable() {
    if (!error_.empty()) throw std::runtime_error("communicator failed earlier: " + error_);
  }
  void cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess) fail(std::string(what) + " failed: " + cudaGetErrorString(e));
  }
  void nccl(ncclResult_t r, const char* what) {
    if (r == ncclSuccess || r == ncclInProgress) return;
    std::string detail = ncclGetErrorString(r);
    const char* last = comm_ ? ncclGetLastError(comm_) : nullptr;
    if (last && *last) detail += std::string(" (") + last + ")";
    fail(std::string(what) + " failed: " + detail);
  }
  // Non-blocking communicator: waits until the last call's asynchronous part has finished.
  void settle(const char* what) {
    const auto deadline = Clock::now() + timeout_;
    for (;;) {
      ncclResult_t state = ncclSuccess;
      nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) nccl(state, what);
      if (Clock::now() > deadline)
        fail(std::string(what) + " did not complete within timeoutMs = " + std::to_string(timeout_.count()) +
             " (a peer is missing or hung)");
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // Polls the comm stream to completion, checking NCCL's asynchronous error and the deadline.
  void wait_stream(const char* what) {
    cuda(cudaEventRecord(done_, stream_), "cudaEventRecord");
    const auto deadline = Clock::now() + timeout_;
    for (;;) {
      const cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) cuda(q, what);
      ncclResult_t state = ncclSuccess;
      nccl(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
      if (state != ncclSuccess && state != ncclInProgress) nccl(state, what);
      if (Clock::now() > deadline)
        fail(std::string(what) + " did not complete within timeoutMs = " + std::to_string(timeout_.count()) +
             " (a peer died or hung)");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void host_reduce(void* host, size_t count, ncclDataType_t type, ReduceOp op) {
    check_usable();
    const size_t bytes = count * 8;
    if (count == 0) return;
    if (bytes > kScratchBytes) fail("all_reduce of more than 1 MiB of host values is not supported");
    std::memcpy(host_scratch_, host, bytes);
    cuda(cudaMemcpyAsync(device_scratch_, host_scratch_, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    nccl(ncclAllReduce(device_scratch_, device_scratch_, count, type, nccl_op(op), comm_, stream_), "ncclAllReduce");
    settle("ncclAllReduce enqueue");
    cuda(cudaMemcpyAsync(host_scratch_, device_scratch_, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait_stream("all-reduce of host values");
    std::memcpy(host, host_scratch_, bytes);
  }
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const DistributedConfig& config) {
  return std::make_unique<NcclCommunicator>(config);
}

}  // namespace smolstage
