#include "core/backend.h"

#include <stdexcept>

#include "cpu/cpu_backend.h"
#ifdef SMOLSTAGE_HAVE_CUDA
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_backend.h"
#endif

namespace smolstage {

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
#ifdef SMOLSTAGE_HAVE_CUDA
  // SMOLSTAGE_CUDA_TF32=0 keeps GEMMs in full fp32 (slower, closest to the cpu backend).
  if (name == "cuda") {
    const char* tf32 = std::getenv("SMOLSTAGE_CUDA_TF32");
    return make_cuda_backend(!(tf32 && std::strcmp(tf32, "0") == 0));
  }
#else
  if (name == "cuda")
    throw std::invalid_argument(
        "backend 'cuda' is not built into this trainer (it was compiled without nvcc); use backend 'cpu'");
#endif
  throw std::invalid_argument("unknown backend '" + name + "'; valid backends: cpu, cuda");
}

}  // namespace smolstage
