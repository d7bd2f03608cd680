// Finite-difference check of the whole model's backward pass: for every parameter kind, a
// sample of coordinates is perturbed and the change in loss compared with the analytic
// gradient. Float32 forward passes with a large step keep round-off well below the tolerance.
#include <cmath>

#include "check.h"
#include "core/model.h"
#include "cpu/parallel.h"

using namespace smolstage;

namespace {

ModelConfig grad_config(bool tie) {
  ModelConfig c;
  c.hidden_size = 16;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.intermediate_size = 24;
  c.vocab_size = 29;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_embeddings = tie;
  c.max_position_embeddings = 64;
  c.initializer_range = 0.3;  // larger than HF's default so gradients are well above round-off
  return c;
}

void run_gradcheck(bool tie) {
  cpu::set_threads(2);
  const ModelConfig c = grad_config(tie);
  auto backend = make_backend("cpu");
  Model model(c, *backend);
  Rng rng(7);
  model.init_weights(rng);
  // Norm weights start at 1; perturb them so their gradients are generic.
  for (const auto& t : model.tensors())
    if (t.shape.size() == 1)
      for (size_t i = 0; i < t.numel; ++i) model.params()[t.offset + i] = 1.0f + 0.3f * static_cast<float>(rng.normal());
  const int B = 2, T = 9, N = B * T;
  std::vector<int32_t> inputs(N), targets(N);
  for (int i = 0; i < N; ++i) {
    inputs[i] = static_cast<int32_t>(rng.next() % c.vocab_size);
    targets[i] = static_cast<int32_t>(rng.next() % c.vocab_size);
  }
  std::vector<float> rows(N);
  auto loss = [&]() {
    model.forward(inputs.data(), B, T);
    return model.head_loss(targets.data(), 0.0f, false, rows.data()) / N;
  };
  std::fill(model.grads(), model.grads() + model.num_params(), 0.0f);
  model.forward(inputs.data(), B, T);
  model.head_loss(targets.data(), 1.0f / N, true, rows.data());
  model.backward();

  // One tensor of each kind: embedding, every per-layer tensor of the last and first layer,
  // the final norm and (untied) the LM head.
  int checked = 0;
  for (const auto& t : model.tensors()) {
    const bool wanted = t.name.find("layers.1.") != std::string::npos || t.name.find("layers.0.") != std::string::npos ||
                        t.name.find("layers.") == std::string::npos;
    if (!wanted) continue;
    std::vector<double> analytic, numeric;
    for (int sample = 0; sample < 12; ++sample) {
      const size_t i = t.offset + static_cast<size_t>(rng.next() % t.numel);
      // Tokens that never appear have zero embedding gradient; prefer rows that are used.
      float& w = model.params()[i];
      const float saved = w;
      const float h = 1e-2f;
      w = saved + h;
      const double up = loss();
      w = saved - h;
      const double down = loss();
      w = saved;
      analytic.push_back(model.grads()[i]);
      numeric.push_back((up - down) / (2.0 * h));
    }
    double norm = 0;
    for (double g : numeric) norm += g * g;
    const double err = check::rel_error(analytic, numeric);
    CHECK_MSG(norm > 1e-12, t.name << ": sampled gradients are all ~0, the check would be vacuous");
    CHECK_MSG(err < 1e-2, t.name << ": analytic vs finite-difference relative error " << err);
    ++checked;
  }
  CHECK(checked == 2 + 2 * 9 + (tie ? 0 : 1));
}

}  // namespace

TEST(gradcheck_every_parameter_kind_tied) { run_gradcheck(true); }
TEST(gradcheck_every_parameter_kind_untied) { run_gradcheck(false); }
