// The cuda backend against the cpu backend (itself checked against double references in
// test_ops.cpp): every op on the same random inputs through the Backend interface, then whole
// training steps. Needs a GPU; built only when the CUDA backend is.
//
// Tolerances (relative L2 error unless noted). With TF32 off both sides are fp32 and differ only
// in summation order and expf vs the CPU's exp: 1e-5 for elementwise ops and GEMMs, 1e-4 for
// attention and cross-entropy over long rows; sum_squares (double) 1e-9. TF32 GEMMs round their
// inputs to a 10-bit mantissa: 5e-3 for one GEMM. Training steps with TF32 off: loss and
// gradient norm 1e-4 relative, weights after 3 steps 1e-3 (Adam's first steps move a weight by
// ±lr whatever the gradient's size, so a near-zero gradient whose sign differs in rounding moves
// it the other way); with TF32 on: loss 2e-3, gradient norm 2e-2, weights 2e-2.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "check.h"
#include "core/rng.h"
#include "core/trainer.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"

using namespace smolstage;

namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

std::vector<int32_t> random_ids(size_t n, int bound, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(bound));
  return v;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  return check::rel_error(std::vector<double>(got.begin(), got.end()), std::vector<double>(want.begin(), want.end()));
}

#define EXPECT_CLOSE(got, want, tol, what)                                                          \
  do {                                                                                              \
    const double err_ = rel_error(got, want);                                                       \
    CHECK_MSG(err_ <= (tol), what << ": relative error " << err_ << " > " << (tol));               \
  } while (0)

// The two backends side by side, and buffers mirrored on both with the same contents.
struct Backends {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<Backend> gpu;
  explicit Backends(bool tf32 = false) : gpu(make_cuda_backend(tf32)) { cpu->set_threads(2); gpu->set_threads(0); }
};

struct Mirror {
  Backends& be;
  size_t n;
  float* c;
  float* g;
  Mirror(Backends& b, const std::vector<float>& host) : be(b), n(host.size()), c(b.cpu->alloc(n)), g(b.gpu->alloc(n)) {
    be.cpu->upload(c, host.data(), n);
    be.gpu->upload(g, host.data(), n);
  }
  Mirror(Backends& b, size_t count) : Mirror(b, std::vector<float>(count, 0.0f)) {}
  ~Mirror() {
    be.cpu->release(c);
    be.gpu->release(g);
  }
  std::vector<float> cpu() const {
    std::vector<float> h(n);
    be.cpu->download(h.data(), c, n);
    return h;
  }
  std::vector<float> gpu() const {
    std::vector<float> h(n);
    be.gpu->download(h.data(), g, n);
    return h;
  }
};

struct MirrorIds {
  Backends& be;
  int32_t* c;
  int32_t* g;
  MirrorIds(Backends& b, const std::vector<int32_t>& host)
      : be(b), c(b.cpu->alloc_ids(host.size())), g(b.gpu->alloc_ids(host.size())) {
    be.cpu->upload_ids(c, host.data(), host.size());
    be.gpu->upload_ids(g, host.data(), host.size());
  }
  ~MirrorIds() {
    be.cpu->release(c);
    be.gpu->release(g);
  }
};

void expect_same(const Mirror& m, double tol, const char* what) { EXPECT_CLOSE(m.gpu(), m.cpu(), tol, what); }

void check_matmul(bool tf32, double tol) {
  Backends be(tf32);
  const int N = 67, C = 96, OC = 130;
  Mirror inp(be, random_floats(static_cast<size_t>(N) * C, 1)), w(be, random_floats(static_cast<size_t>(OC) * C, 2));
  Mirror out(be, random_floats(static_cast<size_t>(N) * OC, 3));
  Mirror dout(be, random_floats(static_cast<size_t>(N) * OC, 4));
  Mirror dinp(be, random_floats(static_cast<size_t>(N) * C, 5)), dw(be, random_floats(static_cast<size_t>(OC) * C, 6));
  for (bool accumulate : {true, false}) {
    be.cpu->matmul_forward(out.c, inp.c, w.c, N, C, OC, accumulate);
    be.gpu->matmul_forward(out.g, inp.g, w.g, N, C, OC, accumulate);
    expect_same(out, tol, accumulate ? "matmul_forward +=" : "matmul_forward =");
    be.cpu->matmul_backward(dinp.c, dw.c, dout.c, inp.c, w.c, N, C, OC, accumulate);
    be.gpu->matmul_backward(dinp.g, dw.g, dout.g, inp.g, w.g, N, C, OC, accumulate);
    expect_same(dinp, tol, "matmul_backward dinp");
    expect_same(dw, tol, "matmul_backward dweight");
  }
}

}  // namespace

TEST(cuda_matmul_fp32) { check_matmul(false, 1e-5); }
TEST(cuda_matmul_tf32) { check_matmul(true, 5e-3); }

TEST(cuda_embedding) {
  Backends be;
  const int rows = 300, dim = 72, vocab = 17;  // few ids: many repeats in the backward
  MirrorIds ids(be, random_ids(rows, vocab, 7));
  Mirror table(be, random_floats(static_cast<size_t>(vocab) * dim, 8)), out(be, static_cast<size_t>(rows) * dim);
  be.cpu->embedding_forward(out.c, ids.c, table.c, rows, dim);
  be.gpu->embedding_forward(out.g, ids.g, table.g, rows, dim);
  CHECK(out.gpu() == out.cpu());
  Mirror dout(be, random_floats(static_cast<size_t>(rows) * dim, 9));
  be.cpu->embedding_backward(table.c, dout.c, ids.c, rows, dim);
  be.gpu->embedding_backward(table.g, dout.g, ids.g, rows, dim);
  expect_same(table, 1e-6, "embedding_backward");
}

TEST(cuda_rmsnorm) {
  Backends be;
  const int rows = 300, dim = 200;  // rows span several weight-gradient chunks
  Mirror inp(be, random_floats(static_cast<size_t>(rows) * dim, 10)), w(be, random_floats(dim, 11));
  Mirror out(be, static_cast<size_t>(rows) * dim), rstd(be, rows);
  be.cpu->rmsnorm_forward(out.c, rstd.c, inp.c, w.c, rows, dim, 1e-5f);
  be.gpu->rmsnorm_forward(out.g, rstd.g, inp.g, w.g, rows, dim, 1e-5f);
  expect_same(out, 1e-5, "rmsnorm_forward out");
  expect_same(rstd, 1e-5, "rmsnorm_forward rstd");
  Mirror dout(be, random_floats(static_cast<size_t>(rows) * dim, 12));
  Mirror dinp(be, random_floats(static_cast<size_t>(rows) * dim, 13)), dw(be, random_floats(dim, 14));
  be.cpu->rmsnorm_backward(dinp.c, dw.c, dout.c, inp.c, w.c, rstd.c, rows, dim);
  be.gpu->rmsnorm_backward(dinp.g, dw.g, dout.g, inp.g, w.g, rstd.g, rows, dim);
  expect_same(dinp, 1e-5, "rmsnorm_backward dinp");
  expect_same(dw, 1e-5, "rmsnorm_backward dweight");
}

TEST(cuda_rope) {
  Backends be;
  const int B = 2, T = 19, H = 3, D = 16;
  const size_t n = static_cast<size_t>(B) * T * H * D;
  Mirror x(be, random_floats(n, 15)), cos(be, random_floats(static_cast<size_t>(T) * D / 2, 16)),
      sin(be, random_floats(static_cast<size_t>(T) * D / 2, 17));
  be.cpu->rope_forward(x.c, cos.c, sin.c, B, T, H, D);
  be.gpu->rope_forward(x.g, cos.g, sin.g, B, T, H, D);
  expect_same(x, 1e-6, "rope_forward");
  be.cpu->rope_backward(x.c, cos.c, sin.c, B, T, H, D);
  be.gpu->rope_backward(x.g, cos.g, sin.g, B, T, H, D);
  expect_same(x, 1e-6, "rope_backward");
}

TEST(cuda_attention) {
  Backends be;
  // Odd lengths leave partial key tiles and query blocks; the head sizes cover each register
  // width (32, 64, 128) and both plain and grouped KV heads.
  const AttentionShape shapes[] = {{2, 77, 4, 2, 16}, {1, 130, 6, 2, 64}, {2, 45, 3, 3, 32}, {1, 40, 2, 1, 96}};
  for (const AttentionShape& s : shapes) {
    const size_t nq = static_cast<size_t>(s.batch) * s.seq_len * s.num_heads * s.head_dim;
    const size_t nkv = static_cast<size_t>(s.batch) * s.seq_len * s.num_kv_heads * s.head_dim;
    const size_t nlse = static_cast<size_t>(s.batch) * s.num_heads * s.seq_len;
    Mirror q(be, random_floats(nq, 20)), k(be, random_floats(nkv, 21)), v(be, random_floats(nkv, 22));
    Mirror out(be, nq), lse(be, nlse);
    be.cpu->attention_forward(out.c, lse.c, q.c, k.c, v.c, s);
    be.gpu->attention_forward(out.g, lse.g, q.g, k.g, v.g, s);
    expect_same(out, 1e-5, "attention_forward out");
    expect_same(lse, 1e-5, "attention_forward lse");
    Mirror dout(be, random_floats(nq, 23)), dq(be, random_floats(nq, 24)), dk(be, random_floats(nkv, 25)),
        dv(be, random_floats(nkv, 26));
    be.cpu->attention_backward(dq.c, dk.c, dv.c, dout.c, out.c, lse.c, q.c, k.c, v.c, s);
    be.gpu->attention_backward(dq.g, dk.g, dv.g, dout.g, out.g, lse.g, q.g, k.g, v.g, s);
    expect_same(dq, 1e-4, "attention_backward dq");
    expect_same(dk, 1e-4, "attention_backward dk");
    expect_same(dv, 1e-4, "attention_backward dv");
  }
}

TEST(cuda_swiglu) {
  Backends be;
  const size_t n = 5000;
  Mirror gate(be, random_floats(n, 30, 3.0)), up(be, random_floats(n, 31)), out(be, n);
  be.cpu->swiglu_forward(out.c, gate.c, up.c, n);
  be.gpu->swiglu_forward(out.g, gate.g, up.g, n);
  expect_same(out, 1e-5, "swiglu_forward");
  Mirror dout(be, random_floats(n, 32)), dgate(be, n), dup(be, n);
  be.cpu->swiglu_backward(dgate.c, dup.c, dout.c, gate.c, up.c, n);
  be.gpu->swiglu_backward(dgate.g, dup.g, dout.g, gate.g, up.g, n);
  expect_same(dgate, 1e-5, "swiglu_backward dgate");
  expect_same(dup, 1e-5, "swiglu_backward dup");
}

TEST(cuda_cross_entropy) {
  Backends be;
  for (int vocab : {3000, 49152}) {
    const int rows = 9;
    const std::vector<float> logits = random_floats(static_cast<size_t>(rows) * vocab, 40, 4.0);
    MirrorIds targets(be, random_ids(rows, vocab, 41));
    for (bool want_grad : {false, true}) {
      Mirror z(be, logits), losses(be, rows);
      be.cpu->cross_entropy(losses.c, z.c, targets.c, rows, vocab, 0.25f, nullptr, want_grad);
      be.gpu->cross_entropy(losses.g, z.g, targets.g, rows, vocab, 0.25f, nullptr, want_grad);
      expect_same(losses, 1e-5, "cross_entropy losses");
      if (want_grad) expect_same(z, 1e-4, "cross_entropy gradient");
    }
  }
}

TEST(cuda_cross_entropy_row_scale_and_attention_decode) {
  Backends be;
  {
    const int rows = 7, vocab = 5000;
    const std::vector<float> logits = random_floats(static_cast<size_t>(rows) * vocab, 42, 4.0);
    MirrorIds targets(be, random_ids(rows, vocab, 43));
    Mirror z(be, logits), losses(be, rows), scale(be, std::vector<float>{0.5f, 0.0f, -1.5f, 2.0f, 1e-3f, 1.0f, -0.25f});
    be.cpu->cross_entropy(losses.c, z.c, targets.c, rows, vocab, 9.0f, scale.c, true);
    be.gpu->cross_entropy(losses.g, z.g, targets.g, rows, vocab, 9.0f, scale.g, true);
    expect_same(losses, 1e-5, "cross_entropy (row scale) losses");
    expect_same(z, 1e-4, "cross_entropy (row scale) gradient");
  }
  const int H = 9, KV = 3, D = 64;
  for (auto [past, n_new] : {std::pair{0, 37}, std::pair{50, 1}, std::pair{12, 5}}) {
    const int len = past + n_new;
    Mirror q(be, random_floats(static_cast<size_t>(n_new) * H * D, 44)), out(be, static_cast<size_t>(n_new) * H * D);
    Mirror k(be, random_floats(static_cast<size_t>(len) * KV * D, 45)), v(be, random_floats(static_cast<size_t>(len) * KV * D, 46));
    be.cpu->attention_decode(out.c, q.c, k.c, v.c, n_new, past, H, KV, D);
    be.gpu->attention_decode(out.g, q.g, k.g, v.g, n_new, past, H, KV, D);
    expect_same(out, 1e-5, "attention_decode");
  }
}

TEST(cuda_reductions_and_updates) {
  Backends be;
  const size_t n = 1'000'003;
  Mirror x(be, random_floats(n, 50));
  const double want = be.cpu->sum_squares(x.c, n), got = be.gpu->sum_squares(x.g, n);
  CHECK_MSG(std::fabs(got - want) <= 1e-9 * want, "sum_squares " << got << " vs " << want);
  be.cpu->scale(x.c, n, 0.37f);
  be.gpu->scale(x.g, n, 0.37f);
  CHECK(x.gpu() == x.cpu());
  Mirror y(be, n);
  be.cpu->copy(y.c, x.c, n);
  be.gpu->copy(y.g, x.g, n);
  CHECK(y.gpu() == x.cpu());
  be.cpu->fill(y.c, n, 1.5f);
  be.gpu->fill(y.g, n, 1.5f);
  CHECK(y.gpu() == y.cpu());

  const size_t p = 4099;
  Mirror param(be, random_floats(p, 51)), grad(be, random_floats(p, 52)), m(be, p), v(be, p);
  for (int64_t step = 1; step <= 3; ++step) {
    const AdamWHyper h{1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step};
    be.cpu->adamw_update(param.c, grad.c, m.c, v.c, p, h);
    be.gpu->adamw_update(param.g, grad.g, m.g, v.g, p, h);
  }
  expect_same(param, 1e-6, "adamw param");
  expect_same(m, 1e-6, "adamw m");
  expect_same(v, 1e-6, "adamw v");
}

namespace {

TrainerOptions step_options(const std::string& backend) {
  TrainerOptions o;
  o.model = preset_config("tiny-gqa");
  o.model.vocab_size = 1000;
  o.optimizer = {0.9, 0.95, 1e-8, 0.01, 1.0};
  o.schedule.peak_lr = 1e-3;
  o.seed = 3;
  o.threads = 2;
  o.backend = backend;
  return o;
}

struct StepTolerance {
  double loss, grad_norm, weights;
};

std::vector<uint32_t> step_tokens(int step, int batch, int seq) {
  std::vector<uint32_t> tokens(static_cast<size_t>(batch) * (seq + 1));
  Rng rng(100 + step);
  for (auto& t : tokens) t = static_cast<uint32_t>(rng.next() % 1000);
  return tokens;
}

void check_training_steps(bool tf32, const StepTolerance& tol) {
  setenv("SMOLSTAGE_CUDA_TF32", tf32 ? "1" : "0", 1);
  Trainer cpu(step_options("cpu")), gpu(step_options("cuda"));
  unsetenv("SMOLSTAGE_CUDA_TF32");
  const int batch = 4, micro = 2, seq = 70;
  for (int s = 0; s < 3; ++s) {
    const std::vector<uint32_t> tokens = step_tokens(s, batch, seq);
    const StepResult a = cpu.step(tokens.data(), tokens.size(), batch, micro, seq);
    const StepResult b = gpu.step(tokens.data(), tokens.size(), batch, micro, seq);
    CHECK_MSG(std::fabs(b.loss - a.loss) <= tol.loss * a.loss,
              "step " << s << " loss cuda " << b.loss << " cpu " << a.loss);
    CHECK_MSG(std::fabs(b.grad_norm - a.grad_norm) <= tol.grad_norm * a.grad_norm,
              "step " << s << " grad norm cuda " << b.grad_norm << " cpu " << a.grad_norm);
  }
  const auto pc = cpu.parameters(), pg = gpu.parameters();
  CHECK(pc.size() == pg.size());
  for (size_t i = 0; i < pc.size(); ++i) EXPECT_CLOSE(pg[i].values, pc[i].values, tol.weights, pc[i].name);
}

}  // namespace

TEST(cuda_training_steps_match_cpu_fp32) { check_training_steps(false, {1e-4, 1e-4, 1e-3}); }
TEST(cuda_training_steps_match_cpu_tf32) { check_training_steps(true, {2e-3, 2e-2, 2e-2}); }

// Checkpoints go through download/upload: a state saved from device memory loads on either
// backend with exactly the same weights, and training continues from it.
TEST(cuda_checkpoint_resumes_on_both_backends) {
  struct ScopedDir {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("smolstage-cuda-test-checkpoint-" + std::to_string(getpid()));
    ScopedDir() { std::filesystem::remove_all(path); }
    ~ScopedDir() { std::filesystem::remove_all(path); }
  } dir;
  setenv("SMOLSTAGE_CUDA_TF32", "0", 1);
  Trainer gpu(step_options("cuda")), gpu_resumed(step_options("cuda"));
  unsetenv("SMOLSTAGE_CUDA_TF32");
  Trainer cpu_resumed(step_options("cpu"));
  const int batch = 4, micro = 4, seq = 33;
  for (int s = 0; s < 2; ++s) {
    const std::vector<uint32_t> tokens = step_tokens(s, batch, seq);
    gpu.step(tokens.data(), tokens.size(), batch, micro, seq);
  }
  gpu.save_state(dir.path.string());
  cpu_resumed.load_state(dir.path.string());
  gpu_resumed.load_state(dir.path.string());
  const auto saved = gpu.parameters(), on_cpu = cpu_resumed.parameters(), on_gpu = gpu_resumed.parameters();
  for (size_t i = 0; i < saved.size(); ++i) {
    CHECK_MSG(on_cpu[i].values == saved[i].values, saved[i].name << " differs after loading on the cpu backend");
    CHECK_MSG(on_gpu[i].values == saved[i].values, saved[i].name << " differs after loading on the cuda backend");
  }
  const std::vector<uint32_t> tokens = step_tokens(2, batch, seq);
  const StepResult a = gpu.step(tokens.data(), tokens.size(), batch, micro, seq);
  const StepResult b = gpu_resumed.step(tokens.data(), tokens.size(), batch, micro, seq);
  const StepResult c = cpu_resumed.step(tokens.data(), tokens.size(), batch, micro, seq);
  CHECK(a.step == 3 && b.step == 3 && c.step == 3);
  CHECK_MSG(std::fabs(b.loss - a.loss) <= 1e-6 * a.loss, "resumed cuda loss " << b.loss << " vs " << a.loss);
  CHECK_MSG(std::fabs(c.loss - a.loss) <= 1e-4 * a.loss, "resumed cpu loss " << c.loss << " vs " << a.loss);
  // The update of step 3 used the loaded AdamW moments: without them the weights would move differently.
  const auto after = gpu.parameters(), after_gpu = gpu_resumed.parameters(), after_cpu = cpu_resumed.parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_CLOSE(after_gpu[i].values, after[i].values, 1e-4, after[i].name << " after resuming on cuda");
    EXPECT_CLOSE(after_cpu[i].values, after[i].values, 1e-3, after[i].name << " after resuming on cpu");
  }
}

#ifdef SMOLSTAGE_HAVE_NCCL
// World size 1 through the NCCL communicator (the code path of a multi-GPU job: rendezvous,
// unique id, gradient buckets on the comm stream, host reductions): trains as without one.
TEST(nccl_world_size_1_trains_through_the_communicator) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  setenv("SMOLSTAGE_CUDA_TF32", "0", 1);
  TrainerOptions with_nccl = step_options("cuda");
  with_nccl.distributed.engine = "nccl";
  with_nccl.distributed.master_port = ntohs(addr.sin_port);
  with_nccl.distributed.timeout_ms = 60000;
  with_nccl.distributed.bucket_bytes = 256 << 10;  // several buckets
  Trainer plain(step_options("cuda")), nccl(with_nccl);
  unsetenv("SMOLSTAGE_CUDA_TF32");
  CHECK_MSG(nccl.describe_communicator().rfind("nccl ", 0) == 0, nccl.describe_communicator());
  size_t params = 0;
  for (const auto& p : plain.parameters()) params += p.values.size();
  const int batch = 4, micro = 2, seq = 70;
  for (int s = 0; s < 3; ++s) {
    const std::vector<uint32_t> tokens = step_tokens(s, batch, seq);
    const StepResult a = plain.step(tokens.data(), tokens.size(), batch, micro, seq);
    const StepResult b = nccl.step(tokens.data(), tokens.size(), batch, micro, seq);
    CHECK_MSG(b.comm_bytes == static_cast<int64_t>(params * sizeof(float)), "step " << s << " reduced " << b.comm_bytes);
    CHECK_MSG(std::fabs(b.loss - a.loss) <= 1e-5 * a.loss, "step " << s << " loss " << b.loss << " vs " << a.loss);
    CHECK_MSG(std::fabs(b.grad_norm - a.grad_norm) <= 1e-4 * a.grad_norm, "step " << s << " grad norm");
  }
  double values[3] = {1.5, -2.0, 1e300};
  nccl.all_reduce(values, 3, ReduceOp::Sum);
  CHECK(values[0] == 1.5 && values[1] == -2.0 && values[2] == 1e300);
  CHECK(nccl.verify_parameters() == nccl.parameter_checksum());
  const auto pa = plain.parameters(), pb = nccl.parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_CLOSE(pb[i].values, pa[i].values, 1e-4, pa[i].name);
}
#endif
