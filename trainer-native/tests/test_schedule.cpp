#include <cmath>

#include "check.h"
#include "core/schedule.h"

using namespace smolstage;

TEST(schedule_warmup_constant_and_linear_decay) {
  ScheduleConfig s;
  s.peak_lr = 1e-3;
  s.warmup_steps = 4;
  s.decay_start_step = 10;
  s.decay_steps = 5;
  s.min_lr = 1e-4;
  CHECK_NEAR(learning_rate(s, 0), 0.25e-3, 1e-15);
  CHECK_NEAR(learning_rate(s, 3), 1e-3, 1e-15);
  CHECK_NEAR(learning_rate(s, 4), 1e-3, 1e-15);
  CHECK_NEAR(learning_rate(s, 9), 1e-3, 1e-15);
  CHECK_NEAR(learning_rate(s, 10), 1e-4 + 0.9e-3 * 0.8, 1e-15);
  CHECK_NEAR(learning_rate(s, 14), 1e-4, 1e-15);
  CHECK_NEAR(learning_rate(s, 1000), 1e-4, 1e-15);
}

TEST(schedule_decay_shapes) {
  ScheduleConfig s;
  s.peak_lr = 1.0;
  s.decay_start_step = 0;
  s.decay_steps = 4;
  s.min_lr = 0.0;
  s.shape = DecayShape::Cosine;
  CHECK_NEAR(learning_rate(s, 1), 0.5, 1e-12);  // p = 0.5
  CHECK_NEAR(learning_rate(s, 0), 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  s.shape = DecayShape::OneMinusSqrt;
  CHECK_NEAR(learning_rate(s, 0), 0.5, 1e-12);  // 1 - sqrt(0.25)
  CHECK_NEAR(learning_rate(s, 3), 0.0, 1e-12);
  s.shape = DecayShape::Linear;
  CHECK_NEAR(learning_rate(s, 2), 0.25, 1e-12);
}

TEST(schedule_without_decay_stays_at_peak) {
  ScheduleConfig s;
  s.peak_lr = 3e-4;
  s.warmup_steps = 0;
  CHECK_NEAR(learning_rate(s, 0), 3e-4, 1e-18);
  CHECK_NEAR(learning_rate(s, 1000000), 3e-4, 1e-18);
}

TEST(schedule_validation) {
  ScheduleConfig s;
  s.decay_start_step = 5;
  s.decay_steps = 0;
  CHECK_THROWS_WITH(validate_schedule(s), "decaySteps must be > 0");
  CHECK_THROWS_WITH(parse_decay_shape("exp"), "valid shapes: linear, cosine, 1-sqrt");
  s = ScheduleConfig{};
  s.min_lr = 1.0;
  s.peak_lr = 0.5;
  CHECK_THROWS_WITH(validate_schedule(s), "minLr must not exceed peakLr");
}
