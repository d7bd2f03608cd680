// Each CPU kernel against a straightforward double-precision reference. Backward kernels are
// checked against central differences of the double reference (exact enough in double).
#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>

#include "check.h"
#include "core/rng.h"
#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

using namespace smolstage;
using Vec = std::vector<double>;

namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}
Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// d<dout, f(x)>/dx by central differences, with f evaluated in double.
Vec numeric_grad(const std::function<Vec(const Vec&)>& f, Vec x, const Vec& dout) {
  Vec g(x.size());
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const Vec up = f(x);
    x[i] = saved - h;
    const Vec down = f(x);
    x[i] = saved;
    double s = 0.0;
    for (size_t j = 0; j < dout.size(); ++j) s += dout[j] * (up[j] - down[j]);
    g[i] = s / (2 * h);
  }
  return g;
}

void expect_close(const Vec& got, const Vec& want, double tol, const char* what) {
  const double err = check::rel_error(got, want);
  CHECK_MSG(err < tol, what << ": relative error " << err << " >= " << tol);
}

struct ThreadsForTest {
  ThreadsForTest() { cpu::set_threads(2); }
};

}  // namespace

TEST(op_gemm_all_transpositions_blas_and_builtin) {
  ThreadsForTest threads;
  // Small odd sizes hit every edge of the register tile; the large one crosses the K and N
  // blocking of the built-in GEMM.
  for (auto [m, n, k] : {std::tuple{37, 29, 53}, std::tuple{13, 2100, 300}})
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const auto a = random_floats(static_cast<size_t>(m) * k, 1);
      const auto b = random_floats(static_cast<size_t>(k) * n, 2);
      const auto c0 = random_floats(static_cast<size_t>(m) * n, 3);
      const int lda = ta ? m : k, ldb = tb ? k : n;
      Vec want(static_cast<size_t>(m) * n);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double s = 0;
          for (int p = 0; p < k; ++p)
            s += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
          want[i * n + j] = 0.5 * s + 2.0 * c0[i * n + j];
        }
      auto c = c0;
      cpu::gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c.data(), n);
      expect_close(to_double(c), want, 1e-6, "gemm");
      c = c0;
      cpu::gemm_builtin(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, c.data(), n);
      expect_close(to_double(c), want, 1e-6, "gemm_builtin");
    }
  }
}

TEST(op_embedding_forward_and_backward_with_repeated_ids) {
  ThreadsForTest threads;
  const int V = 11, C = 70, N = 9;
  const std::vector<int32_t> ids = {3, 0, 3, 10, 7, 3, 0, 1, 10};
  const auto table = random_floats(static_cast<size_t>(V) * C, 4);
  std::vector<float> out(static_cast<size_t>(N) * C);
  cpu::embedding_forward(out.data(), ids.data(), table.data(), N, C);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) CHECK(out[n * C + c] == table[ids[n] * C + c]);
  const auto dout = random_floats(out.size(), 5);
  std::vector<float> dtable(table.size(), 1.0f);
  cpu::embedding_backward(dtable.data(), dout.data(), ids.data(), N, C);
  Vec want(table.size(), 1.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) want[ids[n] * C + c] += dout[n * C + c];
  expect_close(to_double(dtable), want, 1e-7, "embedding_backward");
}

TEST(op_rmsnorm_forward_and_backward) {
  ThreadsForTest threads;
  const int N = 5, C = 24;
  const double eps = 1e-5;
  const auto x = random_floats(static_cast<size_t>(N) * C, 6);
  const auto w = random_floats(C, 7);
  auto ref = [&](const Vec& in) {  // in = x ++ w
    Vec y(static_cast<size_t>(N) * C);
    for (int n = 0; n < N; ++n) {
      double ss = 0;
      for (int c = 0; c < C; ++c) ss += in[n * C + c] * in[n * C + c];
      const double r = 1.0 / std::sqrt(ss / C + eps);
      for (int c = 0; c < C; ++c) y[n * C + c] = in[N * C + c] * in[n * C + c] * r;
    }
    return y;
  };
  Vec in = to_double(x);
  in.insert(in.end(), w.begin(), w.end());
  std::vector<float> y(x.size()), rstd(N);
  cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, static_cast<float>(eps));
  expect_close(to_double(y), ref(in), 1e-6, "rmsnorm_forward");
  const auto dy = random_floats(y.size(), 8);
  std::vector<float> dx(x.size(), 0.0f), dw(C, 0.0f);
  cpu::Workspace ws;
  cpu::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C, ws);
  const Vec g = numeric_grad(ref, in, to_double(dy));
  expect_close(to_double(dx), Vec(g.begin(), g.begin() + N * C), 1e-5, "rmsnorm dinp");
  expect_close(to_double(dw), Vec(g.begin() + N * C, g.end()), 1e-5, "rmsnorm dweight");
}

TEST(op_rope_matches_hf_rotate_half_and_backward_is_transpose) {
  ThreadsForTest threads;
  const int B = 2, T = 5, H = 3, D = 8, half = D / 2;
  const double theta = 10000.0;
  std::vector<float> cs(static_cast<size_t>(T) * half), sn(cs.size());
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double a = t / std::pow(theta, 2.0 * i / D);
      cs[t * half + i] = static_cast<float>(std::cos(a));
      sn[t * half + i] = static_cast<float>(std::sin(a));
    }
  const auto x = random_floats(static_cast<size_t>(B) * T * H * D, 9);
  auto y = x;
  cpu::rope_forward(y.data(), cs.data(), sn.data(), B, T, H, D);
  Vec want(x.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) {
          const size_t base = ((static_cast<size_t>(b) * T + t) * H + h) * D;
          const int i = d % half;
          const double a = t / std::pow(theta, 2.0 * i / D);
          // HF: q·cos + rotate_half(q)·sin, rotate_half(q) = cat(-q2, q1)
          const double rot = d < half ? -x[base + d + half] : x[base + d - half];
          want[base + d] = x[base + d] * std::cos(a) + rot * std::sin(a);
        }
  expect_close(to_double(y), want, 1e-6, "rope_forward");
  const auto g = random_floats(x.size(), 10);
  auto gt = g;
  cpu::rope_backward(gt.data(), cs.data(), sn.data(), B, T, H, D);
  double lhs = 0, rhs = 0;  // <R x, g> == <x, Rᵀ g>
  for (size_t i = 0; i < x.size(); ++i) {
    lhs += static_cast<double>(y[i]) * g[i];
    rhs += static_cast<double>(x[i]) * gt[i];
  }
  CHECK_NEAR(lhs, rhs, 1e-4);
}

TEST(op_attention_causal_gqa_forward_and_backward) {
  ThreadsForTest threads;
  // T crosses the 64-row query block; H/KV = 2 exercises grouped heads.
  const AttentionShape s{2, 67, 4, 2, 4};
  const int B = s.batch, T = s.seq_len, H = s.num_heads, KV = s.num_kv_heads, D = s.head_dim;
  const size_t nq = static_cast<size_t>(B) * T * H * D, nk = static_cast<size_t>(B) * T * KV * D;
  const auto q = random_floats(nq, 11), k = random_floats(nk, 12), v = random_floats(nk, 13);
  auto ref = [&](const Vec& in) {  // in = q ++ k ++ v
    const double* Q = in.data();
    const double* K = Q + nq;
    const double* Vv = K + nk;
    Vec out(nq, 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h) {
        const int g = h / (H / KV);
        for (int i = 0; i < T; ++i) {
          std::vector<double> p(i + 1);
          double mx = -1e300;
          for (int j = 0; j <= i; ++j) {
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += Q[((b * T + i) * H + h) * D + d] * K[((b * T + j) * KV + g) * D + d];
            p[j] = dot * scale;
            mx = std::max(mx, p[j]);
          }
          double sum = 0;
          for (auto& e : p) sum += (e = std::exp(e - mx));
          for (int j = 0; j <= i; ++j)
            for (int d = 0; d < D; ++d) out[((b * T + i) * H + h) * D + d] += p[j] / sum * Vv[((b * T + j) * KV + g) * D + d];
        }
      }
    return out;
  };
  Vec in = to_double(q);
  in.insert(in.end(), k.begin(), k.end());
  in.insert(in.end(), v.begin(), v.end());
  std::vector<float> out(nq), lse(static_cast<size_t>(B) * H * T);
  cpu::Workspace ws;
  cpu::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s, ws);
  expect_close(to_double(out), ref(in), 1e-6, "attention_forward");
  const auto dout = random_floats(nq, 14);
  std::vector<float> dq(nq), dk(nk), dv(nk);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(), q.data(), k.data(),
                          v.data(), s, ws);
  const Vec g = numeric_grad(ref, in, to_double(dout));
  expect_close(to_double(dq), Vec(g.begin(), g.begin() + nq), 1e-5, "attention dq");
  expect_close(to_double(dk), Vec(g.begin() + nq, g.begin() + nq + nk), 1e-5, "attention dk");
  expect_close(to_double(dv), Vec(g.begin() + nq + nk, g.end()), 1e-5, "attention dv");
}

TEST(op_swiglu_forward_and_backward) {
  ThreadsForTest threads;
  const size_t n = 40;
  const auto gate = random_floats(n, 15, 3.0), up = random_floats(n, 16);
  auto ref = [&](const Vec& in) {
    Vec y(n);
    for (size_t i = 0; i < n; ++i) y[i] = in[i] / (1 + std::exp(-in[i])) * in[n + i];
    return y;
  };
  Vec in = to_double(gate);
  in.insert(in.end(), up.begin(), up.end());
  std::vector<float> out(n), dg(n), du(n);
  cpu::swiglu_forward(out.data(), gate.data(), up.data(), n);
  expect_close(to_double(out), ref(in), 1e-6, "swiglu_forward");
  const auto dout = random_floats(n, 17);
  cpu::swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
  const Vec g = numeric_grad(ref, in, to_double(dout));
  expect_close(to_double(dg), Vec(g.begin(), g.begin() + n), 1e-5, "swiglu dgate");
  expect_close(to_double(du), Vec(g.begin() + n, g.end()), 1e-5, "swiglu dup");
}

TEST(op_cross_entropy_loss_and_gradient) {
  ThreadsForTest threads;
  const int N = 6, V = 50;
  const auto logits = random_floats(static_cast<size_t>(N) * V, 18, 4.0);
  const std::vector<int32_t> targets = {0, 49, 7, 7, 23, 1};
  auto z = logits;
  std::vector<float> losses(N);
  const float scale = 0.25f;
  cpu::cross_entropy(losses.data(), z.data(), targets.data(), N, V, scale, nullptr, true);
  for (int n = 0; n < N; ++n) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < V; ++j) mx = std::max(mx, static_cast<double>(logits[n * V + j]));
    for (int j = 0; j < V; ++j) sum += std::exp(logits[n * V + j] - mx);
    CHECK_NEAR(losses[n], std::log(sum) + mx - logits[n * V + targets[n]], 1e-5);
    for (int j = 0; j < V; ++j) {
      const double p = std::exp(logits[n * V + j] - mx) / sum;
      CHECK_NEAR(z[n * V + j], scale * (p - (j == targets[n] ? 1.0 : 0.0)), 1e-7);
    }
  }
}

TEST(op_adamw_matches_torch_formula_over_three_steps) {
  ThreadsForTest threads;
  const size_t n = 33;
  auto p = random_floats(n, 19);
  std::vector<float> m(n, 0), v(n, 0);
  Vec rp = to_double(p), rm(n, 0), rv(n, 0);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
  for (int step = 1; step <= 3; ++step) {
    const auto g = random_floats(n, 100 + step);
    cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n,
                      {static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2), static_cast<float>(eps),
                       static_cast<float>(wd), step});
    for (size_t i = 0; i < n; ++i) {
      rp[i] *= 1 - lr * wd;
      rm[i] = b1 * rm[i] + (1 - b1) * g[i];
      rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
      const double mhat = rm[i] / (1 - std::pow(b1, step)), vhat = rv[i] / (1 - std::pow(b2, step));
      rp[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
  expect_close(to_double(p), rp, 1e-6, "adamw params");
  expect_close(to_double(m), rm, 1e-6, "adamw m");
  expect_close(to_double(v), rv, 1e-6, "adamw v");
}

TEST(op_cross_entropy_per_row_gradient_scale) {
  ThreadsForTest threads;
  const int N = 5, V = 37;
  const auto logits = random_floats(static_cast<size_t>(N) * V, 21, 3.0);
  const std::vector<int32_t> targets = {3, 0, 36, 5, 5};
  const std::vector<float> row_scale = {0.5f, 0.0f, -1.25f, 2.0f, 1e-3f};  // weights and DPO's signed coefficients
  auto z = logits;
  std::vector<float> losses(N);
  cpu::cross_entropy(losses.data(), z.data(), targets.data(), N, V, 7.0f /* ignored */, row_scale.data(), true);
  for (int n = 0; n < N; ++n) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < V; ++j) mx = std::max(mx, static_cast<double>(logits[n * V + j]));
    for (int j = 0; j < V; ++j) sum += std::exp(logits[n * V + j] - mx);
    CHECK_NEAR(losses[n], std::log(sum) + mx - logits[n * V + targets[n]], 1e-5);
    for (int j = 0; j < V; ++j) {
      const double p = std::exp(logits[n * V + j] - mx) / sum;
      CHECK_NEAR(z[n * V + j], row_scale[n] * (p - (j == targets[n] ? 1.0 : 0.0)), 1e-6);
    }
  }
}

TEST(op_attention_decode_matches_double_reference) {
  ThreadsForTest threads;
  cpu::Workspace ws;
  const int H = 4, KV = 2, D = 8;
  for (auto [past, n_new] : {std::tuple{0, 5}, std::tuple{6, 1}, std::tuple{3, 4}}) {
    const int len = past + n_new;
    const auto q = random_floats(static_cast<size_t>(n_new) * H * D, 30 + past);
    const auto k = random_floats(static_cast<size_t>(len) * KV * D, 40 + past);
    const auto v = random_floats(static_cast<size_t>(len) * KV * D, 50 + past);
    std::vector<float> out(q.size());
    cpu::attention_decode(out.data(), q.data(), k.data(), v.data(), n_new, past, H, KV, D, ws);
    Vec want(q.size());
    for (int i = 0; i < n_new; ++i)
      for (int h = 0; h < H; ++h) {
        const int g = h / (H / KV), keys = past + i + 1;
        Vec s(keys);
        double mx = -1e300, sum = 0;
        for (int j = 0; j < keys; ++j) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += static_cast<double>(q[(i * H + h) * D + d]) * k[(j * KV + g) * D + d];
          s[j] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j < keys; ++j) sum += s[j] = std::exp(s[j] - mx);
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int j = 0; j < keys; ++j) o += s[j] / sum * v[(j * KV + g) * D + d];
          want[(i * H + h) * D + d] = o;
        }
      }
    expect_close(to_double(out), want, 1e-6, "attention_decode");
  }
}
