// The cuda backend's communicator: NCCL (PyPI's nvidia-nccl-cu13, or a system libnccl-dev).
#pragma once
#include <memory>

#include "core/communicator.h"

namespace smolstage {
// Uses the current CUDA device (one process per GPU: the worker sets CUDA_VISIBLE_DEVICES).
std::unique_ptr<Communicator> make_nccl_communicator(const DistributedConfig& config);
}  // namespace smolstage
