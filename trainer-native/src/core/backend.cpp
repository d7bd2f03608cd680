#include "core/backend.h"

#include <stdexcept>

#include "cpu/cpu_backend.h"

namespace smolstage {

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda")
    throw std::invalid_argument("backend 'cuda' is not built into this trainer (the CUDA backend is not available yet); use backend 'cpu'");
  throw std::invalid_argument("unknown backend '" + name + "'; valid backends: cpu, cuda");
}

}  // namespace smolstage
