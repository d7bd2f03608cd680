// The cpu backend's communicator: Gloo over TCP (Debian's libgloo-dev).
#pragma once
#include <memory>

#include "core/communicator.h"

namespace smolstage {
std::unique_ptr<Communicator> make_gloo_communicator(const DistributedConfig& config);
}  // namespace smolstage
