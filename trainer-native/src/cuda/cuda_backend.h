#pragma once
#include <memory>

#include "core/backend.h"

namespace smolstage {
// tf32: let cuBLAS use TF32 tensor cores for fp32 GEMMs (10-bit mantissa products, fp32 sums).
std::unique_ptr<Backend> make_cuda_backend(bool tf32);
}  // namespace smolstage
