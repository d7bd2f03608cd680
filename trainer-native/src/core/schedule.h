// Warmup-stable-decay learning-rate schedule, a pure function of the global optimizer step so
// it continues unchanged across stages and resumes.
#pragma once
#include <cstdint>
#include <string>

namespace smolstage {

enum class DecayShape { Linear, Cosine, OneMinusSqrt };

struct ScheduleConfig {
  double peak_lr = 1e-3;
  // Absolute step the warmup counts from (a post-training stage's first step); 0 for pretraining.
  int64_t start_step = 0;
  int64_t warmup_steps = 0;
  int64_t decay_start_step = -1;  // < 0: never decays
  int64_t decay_steps = 0;
  DecayShape shape = DecayShape::Linear;
  double min_lr = 0.0;
};

DecayShape parse_decay_shape(const std::string& name);  // throws on unknown names
void validate_schedule(const ScheduleConfig& s);

// Learning rate for the update that follows `completed_steps` optimizer steps.
//  - warmup: step k with j = k - start_step < warmup_steps uses peak * (max(j, 0) + 1) / warmup_steps
//    (start_step 0: the first warmup_steps steps of the run);
//  - decay: progress p = (k - decay_start + 1) / decay_steps, clamped to [0, 1], so the update
//    at decay_start + decay_steps - 1 is the first to reach min_lr;
//  - otherwise peak.
double learning_rate(const ScheduleConfig& s, int64_t completed_steps);

}  // namespace smolstage
