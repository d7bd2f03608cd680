#include "core/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace smolstage {

DecayShape parse_decay_shape(const std::string& name) {
  if (name == "linear") return DecayShape::Linear;
  if (name == "cosine") return DecayShape::Cosine;
  if (name == "1-sqrt") return DecayShape::OneMinusSqrt;
  throw std::invalid_argument("unknown schedule shape '" + name + "'; valid shapes: linear, cosine, 1-sqrt");
}

void validate_schedule(const ScheduleConfig& s) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("invalid schedule: " + m); };
  if (!(std::isfinite(s.peak_lr) && s.peak_lr >= 0)) fail("peakLr must be a finite number >= 0");
  if (!(std::isfinite(s.min_lr) && s.min_lr >= 0)) fail("minLr must be a finite number >= 0");
  if (s.min_lr > s.peak_lr) fail("minLr must not exceed peakLr");
  if (s.warmup_steps < 0) fail("warmupSteps must be >= 0");
  if (s.start_step < 0) fail("startStep must be >= 0");
  if (s.decay_start_step >= 0 && s.decay_steps <= 0)
    fail("decaySteps must be > 0 when decayStartStep is set");
}

double learning_rate(const ScheduleConfig& s, int64_t k) {
  const int64_t since = k - s.start_step;
  if (s.warmup_steps > 0 && since < s.warmup_steps)
    return s.peak_lr * static_cast<double>(std::max<int64_t>(since, 0) + 1) / static_cast<double>(s.warmup_steps);
  if (s.decay_start_step < 0 || k < s.decay_start_step) return s.peak_lr;
  const double p = std::clamp(static_cast<double>(k - s.decay_start_step + 1) / static_cast<double>(s.decay_steps), 0.0, 1.0);
  double f = 1.0 - p;
  if (s.shape == DecayShape::Cosine) f = 0.5 * (1.0 + std::cos(M_PI * p));
  if (s.shape == DecayShape::OneMinusSqrt) f = 1.0 - std::sqrt(p);
  return s.min_lr + (s.peak_lr - s.min_lr) * f;
}

}  // namespace smolstage
