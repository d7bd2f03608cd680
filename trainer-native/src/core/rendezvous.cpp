#include "core/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace smolstage {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum Op : uint8_t { kSet = 1, kGet = 2, kHas = 3 };

void put_u32(std::vector<char>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
void put_bytes(std::vector<char>& out, const char* data, size_t n) {
  put_u32(out, static_cast<uint32_t>(n));
  out.insert(out.end(), data, data + n);
}

std::string errno_text(int err) { return std::strerror(err); }

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long long>(0, std::min<long long>(left, 1 << 30)));
}

// Waits for `events` on fd until the deadline (nullopt-like: false on timeout).
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) throw std::runtime_error("poll: " + errno_text(errno));
  }
}

// Both return an empty string on success, else the reason.
std::string send_all(int fd, const char* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (!wait_fd(fd, POLLOUT, deadline)) return "send timed out";
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno_text(errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return "";
}

std::string recv_all(int fd, char* data, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (!wait_fd(fd, POLLIN, deadline)) return "timed out waiting for a reply";
    const ssize_t r = ::recv(fd, data, n, 0);
    if (r == 0) return "connection closed by the store (rank 0 exited?)";
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno_text(errno);
    }
    data += r;
    n -= static_cast<size_t>(r);
  }
  return "";
}

std::string format_host_port(const std::string& host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

// ---- server (rank 0) -----------------------------------------------------------------------

class RendezvousStore::Server {
 public:
  Server(int port, const std::string& where) {
    listen_fd_ = ::socket(AF_INET6, SOCK_STREAM, 0);
    bool v6 = listen_fd_ >= 0;
    if (!v6) listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error(where + ": socket: " + errno_text(errno));
    const int one = 1, zero = 0;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
      ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // v4 and v6
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(static_cast<uint16_t>(port));
      rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0 || ::listen(listen_fd_, 1024) != 0) {
      const int err = errno;
      ::close(listen_fd_);
      throw std::runtime_error(where + ": cannot listen on port " + std::to_string(port) + " (" + errno_text(err) +
                               "); is another job using masterPort " + std::to_string(port) + "?");
    }
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~Server() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_thread_.join();
    ::close(listen_fd_);
    for (auto& t : workers_) t.join();
  }

 private:
  int listen_fd_ = -1;
  std::thread accept_thread_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<int> conns_;
  std::map<std::string, std::vector<char>> data_;

  void accept_loop() {
    for (;;) {
      pollfd p{listen_fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, 200);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      if (r <= 0) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      conns_.push_back(fd);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  // One client connection: requests answered in order until it closes.
  void serve(int fd) {
    const auto forever = Clock::now() + std::chrono::hours(24 * 365);
    auto read_bytes = [&](std::string& out) {
      char len[4];
      if (!recv_all(fd, len, 4, forever).empty()) return false;
      out.resize(get_u32(len));
      return out.empty() || recv_all(fd, &out[0], out.size(), forever).empty();
    };
    for (;;) {
      char op;
      std::string key;
      if (!recv_all(fd, &op, 1, forever).empty() || !read_bytes(key)) break;
      std::vector<char> reply;
      if (op == kSet) {
        std::string value;
        if (!read_bytes(value)) break;
        {
          std::lock_guard<std::mutex> lock(mu_);
          data_[key] = std::vector<char>(value.begin(), value.end());
        }
        cv_.notify_all();
        reply.push_back(1);
      } else if (op == kGet || op == kHas) {
        uint32_t wait_ms = 0;
        if (op == kGet) {
          char t[4];
          if (!recv_all(fd, t, 4, forever).empty()) break;
          wait_ms = get_u32(t);
        }
        std::unique_lock<std::mutex> lock(mu_);
        const auto until = Clock::now() + milliseconds(wait_ms);
        cv_.wait_until(lock, until, [&] { return stopping_ || data_.count(key) > 0; });
        if (stopping_) break;
        const auto it = data_.find(key);
        reply.push_back(it != data_.end() ? 1 : 0);
        if (op == kGet && it != data_.end()) put_bytes(reply, it->second.data(), it->second.size());
      } else {
        break;  // not our protocol
      }
      if (!send_all(fd, reply.data(), reply.size(), Clock::now() + std::chrono::seconds(30)).empty()) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    conns_.erase(std::remove(conns_.begin(), conns_.end(), fd), conns_.end());
    ::close(fd);
  }
};

// ---- client ---------------------------------------------------------------------------------

RendezvousStore::RendezvousStore(const DistributedConfig& config)
    : rank_(config.rank),
      world_size_(config.world_size),
      address_(format_host_port(config.master_addr, config.master_port)),
      timeout_(milliseconds(config.timeout_ms)) {
  const std::string me = "rank " + std::to_string(rank_);
  if (rank_ == 0) server_ = std::make_unique<Server>(config.master_port, me);
  const auto deadline = Clock::now() + timeout_;
  std::string last_error = "no attempt";
  const std::string port = std::to_string(config.master_port);
  while (fd_ < 0) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int g = ::getaddrinfo(config.master_addr.c_str(), port.c_str(), &hints, &found);
    if (g != 0) {
      last_error = std::string("cannot resolve ") + config.master_addr + ": " + ::gai_strerror(g);
    } else {
      for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
          const auto attempt = std::min(deadline, Clock::now() + std::chrono::seconds(2));
          if (wait_fd(fd, POLLOUT, attempt)) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err;
          } else {
            errno = ETIMEDOUT;
          }
        }
        if (rc == 0) {
          const int one = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          fd_ = fd;
        } else {
          last_error = errno_text(errno);
          ::close(fd);
        }
      }
      ::freeaddrinfo(found);
    }
    if (fd_ >= 0) break;
    if (Clock::now() >= deadline)
      throw std::runtime_error(me + " of " + std::to_string(world_size_) + ": could not reach the rendezvous store at " +
                               address_ + " (rank 0, masterAddr:masterPort) within " +
                               std::to_string(config.timeout_ms) + " ms; last error: " + last_error);
    std::this_thread::sleep_for(milliseconds(std::min(100, remaining_ms(deadline))));
  }
}

RendezvousStore::~RendezvousStore() {
  if (fd_ >= 0) ::close(fd_);
  server_.reset();
}

void RendezvousStore::fail(const std::string& what) const {
  throw std::runtime_error("rank " + std::to_string(rank_) + ": rendezvous store " + address_ + ": " + what);
}

void RendezvousStore::request(const std::vector<char>& message, std::vector<char>& reply, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout + std::chrono::seconds(10);
  std::string err = send_all(fd_, message.data(), message.size(), deadline);
  if (err.empty()) {
    reply.assign(1, 0);
    err = recv_all(fd_, reply.data(), 1, deadline);
  }
  if (!err.empty()) fail(err);
}

void RendezvousStore::set(const std::string& key, const std::vector<char>& value) {
  std::vector<char> m{static_cast<char>(kSet)}, reply;
  put_bytes(m, key.data(), key.size());
  put_bytes(m, value.data(), value.size());
  request(m, reply, milliseconds(0));
}

bool RendezvousStore::has(const std::string& key) {
  std::vector<char> m{static_cast<char>(kHas)}, reply;
  put_bytes(m, key.data(), key.size());
  request(m, reply, milliseconds(0));
  return reply[0] == 1;
}

bool RendezvousStore::fetch(const std::string& key, milliseconds wait, std::vector<char>& value) {
  std::vector<char> m{static_cast<char>(kGet)}, reply;
  put_bytes(m, key.data(), key.size());
  put_u32(m, static_cast<uint32_t>(std::min<long long>(wait.count(), 0xffffffffLL)));
  request(m, reply, wait);
  if (reply[0] != 1) return false;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  char len[4];
  std::string err = recv_all(fd_, len, 4, deadline);
  value.assign(err.empty() ? get_u32(len) : 0, 0);
  if (err.empty() && !value.empty()) err = recv_all(fd_, value.data(), value.size(), deadline);
  if (!err.empty()) fail(err);
  return true;
}

std::vector<char> RendezvousStore::get(const std::string& key, milliseconds timeout, const std::string& what) {
  std::vector<char> value;
  if (!fetch(key, timeout, value))
    fail("timed out after " + std::to_string(timeout.count()) + " ms waiting for " + what + " (key '" + key + "')");
  return value;
}

void RendezvousStore::barrier(const std::string& name, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto key = [&](int r) { return name + "/" + std::to_string(r); };
  set(key(rank_), {'1'});
  std::vector<char> value;
  for (int r = 0; r < world_size_; ++r) {
    if (r == rank_ || fetch(key(r), milliseconds(remaining_ms(deadline)), value)) continue;
    std::string missing;
    for (int q = r; q < world_size_; ++q)
      if (q != rank_ && !has(key(q))) missing += (missing.empty() ? "" : ", ") + std::to_string(q);
    fail("timed out after " + std::to_string(timeout.count()) + " ms waiting for rank(s) " + missing + " of " +
         std::to_string(world_size_) + " to reach " + name +
         "; are they running and pointed at this masterAddr:masterPort?");
  }
}

std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string out;
  for (addrinfo* a = found; a && out.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    // A UDP connect sends nothing; it only picks the route and with it the source address.
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      sockaddr_storage local{};
      socklen_t len = sizeof local;
      char text[NI_MAXHOST];
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
          ::getnameinfo(reinterpret_cast<sockaddr*>(&local), len, text, sizeof text, nullptr, 0, NI_NUMERICHOST) == 0)
        out = text;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return out;
}

}  // namespace smolstage
