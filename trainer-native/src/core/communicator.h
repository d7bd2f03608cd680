// The collective-communication interface beside Backend: data-parallel ranks average their
// gradients and agree on scalars through it. Two engines implement it, chosen by the backend:
// Gloo (TCP) for cpu (src/cpu/gloo_communicator.cpp) and NCCL for cuda
// (src/cuda/nccl_communicator.cu). World size 1 uses neither unless one is asked for by name.
//
// Every call is collective: all ranks make the same calls in the same order with the same sizes.
// Any failure (a peer that died, hung past the timeout, or a rendezvous that never completed)
// throws std::runtime_error naming this rank and the peer or address involved, and leaves the
// communicator failed: every later call throws too (the process is expected to exit and the
// attempt to be retried).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace smolstage {

struct DistributedConfig {
  int rank = 0;
  int world_size = 1;
  // Rank 0 listens on master_port (all interfaces) with the rendezvous store; every rank
  // connects to master_addr:master_port (a host name is resolved again on every retry).
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Bounds the rendezvous and every collective: a peer silent for this long fails the call.
  int64_t timeout_ms = 300000;
  // The address this rank's Gloo transport binds to and advertises; empty: the local address
  // of the route to master_addr (the pod IP in a cluster, 127.0.0.1 on one machine).
  std::string local_addr;
  // "auto": none at world size 1, else gloo for cpu and nccl for cuda; or "gloo", "nccl"
  // (any world size, e.g. a world-size-1 NCCL check on a GPU machine), or "none".
  std::string engine = "auto";
  // Target gradient bucket size for the overlapped all-reduce (whole tensors, so a bucket may
  // be larger when a single tensor is).
  size_t bucket_bytes = size_t{25} << 20;
};

enum class ReduceOp { Sum, Max, Min };

// Wall-clock seconds spent by collectives, for step-time breakdowns.
struct CommStats {
  double busy_seconds = 0;  // time gradient all-reduces were running (comm thread / stream)
  int64_t buckets = 0;      // gradient buckets reduced
  int64_t bytes = 0;        // gradient bytes reduced
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Starts averaging `count` floats of backend memory in place across ranks and returns
  // without waiting; buckets complete in the order started. The memory must not be touched
  // until wait_gradients() returns.
  virtual void start_average(float* data, size_t count) = 0;
  // Blocks until every started average has completed; throws on failure or timeout.
  virtual void wait_gradients() = 0;
  // Synchronous reductions of small host arrays (every rank gets the same result).
  virtual void all_reduce(double* host, size_t count, ReduceOp op) = 0;
  virtual void all_reduce(int64_t* host, size_t count, ReduceOp op) = 0;

  // Totals since the last call (then reset).
  virtual CommStats take_stats() = 0;
};

// Null when the config asks for no communicator (world size 1 with engine "auto" or "none").
// Rendezvous happens here, bounded by timeout_ms. Throws std::invalid_argument for a bad config.
std::unique_ptr<Communicator> make_communicator(const DistributedConfig& config, const std::string& backend_name);
void validate_distributed(const DistributedConfig& config);

// The engine "auto" picks for a backend ("gloo" / "nccl"), or "none" at world size 1.
std::string resolve_engine(const DistributedConfig& config, const std::string& backend_name);

}  // namespace smolstage
