#pragma once
#include <memory>

#include "core/backend.h"

namespace smolstage {
std::unique_ptr<Backend> make_cpu_backend();
}
