// Rendezvous for the communicators: a small TCP key-value store. Rank 0 serves it on
// master_port (all interfaces); every rank, rank 0 included, is a client of
// master_addr:master_port. Gloo exchanges its transport addresses through it (as a
// gloo::rendezvous::Store) and NCCL its unique id. Debian's Gloo (2022) has no TCP store of its
// own, only file and Redis stores, neither of which fits a set of pods without shared storage.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace smolstage {

class RendezvousStore {
 public:
  // Starts the server on rank 0, then connects (retrying until the timeout: rank 0 may start
  // last, a Service name may not resolve yet). Throws naming the rank and the address.
  explicit RendezvousStore(const DistributedConfig& config);
  ~RendezvousStore();
  RendezvousStore(const RendezvousStore&) = delete;
  RendezvousStore& operator=(const RendezvousStore&) = delete;

  void set(const std::string& key, const std::vector<char>& value);
  // Waits up to `timeout` for the key; throws "rank R: timed out after T ms waiting for
  // <what> (key 'K') at the rendezvous store HOST:PORT".
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout, const std::string& what);
  // True when the key exists now.
  bool has(const std::string& key);

  // Every rank registers, then waits for all others; a timeout names the ranks that never came.
  void barrier(const std::string& name, std::chrono::milliseconds timeout);

  const std::string& address() const { return address_; }  // "host:port"
  int rank() const { return rank_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  class Server;
  int rank_;
  int world_size_;
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Server> server_;
  int fd_ = -1;

  bool fetch(const std::string& key, std::chrono::milliseconds wait, std::vector<char>& value);
  void request(const std::vector<char>& message, std::vector<char>& reply, std::chrono::milliseconds timeout);
  [[noreturn]] void fail(const std::string& what) const;
};

// The local address of the route to `host` (e.g. the pod IP; 127.0.0.1 for a loopback master).
std::string local_address_towards(const std::string& host, int port);

}  // namespace smolstage
