#include "core/communicator.h"

#include <stdexcept>

#ifdef SMOLSTAGE_HAVE_GLOO
#include "cpu/gloo_communicator.h"
#endif
#ifdef SMOLSTAGE_HAVE_NCCL
#include "cuda/nccl_communicator.h"
#endif

namespace smolstage {

void validate_distributed(const DistributedConfig& c) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("invalid distributed config: " + m); };
  if (c.world_size < 1) fail("worldSize must be a positive integer, got " + std::to_string(c.world_size));
  if (c.rank < 0 || c.rank >= c.world_size)
    fail("rank must be in [0, worldSize), got rank " + std::to_string(c.rank) + " with worldSize " +
         std::to_string(c.world_size));
  if (c.master_port < 1 || c.master_port > 65535)
    fail("masterPort must be in [1, 65535], got " + std::to_string(c.master_port));
  if (c.master_addr.empty()) fail("masterAddr must not be empty");
  if (c.timeout_ms < 1) fail("timeoutMs must be at least 1, got " + std::to_string(c.timeout_ms));
  if (c.bucket_bytes < 1) fail("bucketBytes must be positive");
  if (c.engine != "auto" && c.engine != "gloo" && c.engine != "nccl" && c.engine != "none")
    fail("engine must be 'auto', 'gloo', 'nccl' or 'none', got '" + c.engine + "'");
  if (c.engine == "none" && c.world_size > 1) fail("engine 'none' needs worldSize 1");
}

std::string resolve_engine(const DistributedConfig& c, const std::string& backend_name) {
  if (c.engine != "auto") return c.engine;
  if (c.world_size == 1) return "none";
  return backend_name == "cuda" ? "nccl" : "gloo";
}

std::unique_ptr<Communicator> make_communicator(const DistributedConfig& c, const std::string& backend_name) {
  validate_distributed(c);
  const std::string engine = resolve_engine(c, backend_name);
  if (engine == "none") return nullptr;
  if (engine == "gloo") {
    if (backend_name != "cpu")
      throw std::invalid_argument("engine 'gloo' reduces host memory: it serves backend 'cpu', not '" + backend_name +
                                  "' (use 'nccl')");
#ifdef SMOLSTAGE_HAVE_GLOO
    return make_gloo_communicator(c);
#else
    throw std::invalid_argument(
        "engine 'gloo' is not built into this trainer (Gloo was not found at build time; Debian: apt-get install "
        "libgloo-dev, then rebuild)");
#endif
  }
  // nccl
  if (backend_name != "cuda")
    throw std::invalid_argument("engine 'nccl' reduces GPU memory: it serves backend 'cuda', not '" + backend_name +
                                "' (use 'gloo')");
#ifdef SMOLSTAGE_HAVE_NCCL
  return make_nccl_communicator(c);
#else
  throw std::invalid_argument(
      "engine 'nccl' is not built into this trainer (NCCL was not found at build time, or the CUDA backend is not "
      "built)");
#endif
}

}  // namespace smolstage
