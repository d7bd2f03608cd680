// Text generation with a KV cache: the sampling rule (pure, host side) and its options. The
// decoding forward itself is Model::begin_decode / decode (generate.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace smolstage {

struct GenerateOptions {
  int max_new_tokens = 16;
  double temperature = 0.0;  // 0 = greedy (argmax, lowest id on ties)
  double top_p = 1.0;        // nucleus sampling: the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;         // sampling stream (independent of the trainer's RNG)
  std::vector<uint32_t> stop_ids;
};

struct GenerateResult {
  std::vector<uint32_t> tokens;  // generated ids only (a stop id that ended generation included)
  std::string finish_reason;     // "stop" (a stop id was generated) or "length" (max_new_tokens reached)
};

void validate_generate(const GenerateOptions& o);

// Next token from one row of logits: argmax when temperature is 0; otherwise softmax(logits /
// temperature) restricted to the top-p nucleus (probabilities sorted descending, ties by id, the
// shortest prefix whose sum reaches top_p, at least one token), renormalized, one draw from rng.
uint32_t sample_token(const float* logits, int vocab, double temperature, double top_p, Rng& rng);

}  // namespace smolstage
