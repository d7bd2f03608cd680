// The CPU backend: host memory, OpenMP loops and BLAS GEMMs. Each op forwards to its kernel in
// ops/; this class only owns memory and scratch space.
#include "cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

namespace smolstage {
namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::string describe() const override {
    return "cpu (" + std::to_string(cpu::thread_count()) + " threads, GEMM: " + cpu::gemm_library() + ")";
  }
  void set_threads(int threads) override { cpu::set_threads(threads); }

  float* alloc(size_t count) override { return static_cast<float*>(zeroed(count * sizeof(float))); }
  int32_t* alloc_ids(size_t count) override { return static_cast<int32_t*>(zeroed(count * sizeof(int32_t))); }
  void release(void* ptr) override { std::free(ptr); }
  void upload(float* dst, const float* src, size_t count) override { std::memcpy(dst, src, count * sizeof(float)); }
  void download(float* dst, const float* src, size_t count) override { std::memcpy(dst, src, count * sizeof(float)); }
  void upload_ids(int32_t* dst, const int32_t* src, size_t count) override {
    std::memcpy(dst, src, count * sizeof(int32_t));
  }
  void fill(float* x, size_t count, float value) override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; ++i) x[i] = value;
  }
  void copy(float* dst, const float* src, size_t count) override { std::memcpy(dst, src, count * sizeof(float)); }

  void embedding_forward(float* out, const int32_t* tokens, const float* table, int rows, int dim) override {
    cpu::embedding_forward(out, tokens, table, rows, dim);
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int rows, int dim) override {
    cpu::embedding_backward(dtable, dout, tokens, rows, dim);
  }
  void matmul_forward(float* out, const float* inp, const float* weight, int rows, int in_dim, int out_dim,
                      bool accumulate) override {
    cpu::gemm(false, true, rows, out_dim, in_dim, 1.0f, inp, in_dim, weight, in_dim, accumulate ? 1.0f : 0.0f, out,
              out_dim);
  }
  void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, int rows,
                       int in_dim, int out_dim, bool accumulate_dinp) override {
    cpu::gemm(false, false, rows, in_dim, out_dim, 1.0f, dout, out_dim, weight, in_dim, accumulate_dinp ? 1.0f : 0.0f,
              dinp, in_dim);
    cpu::gemm(true, false, out_dim, in_dim, rows, 1.0f, dout, out_dim, inp, in_dim, 1.0f, dweight, in_dim);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int rows, int dim,
                       float eps) override {
    cpu::rmsnorm_forward(out, rstd, inp, weight, rows, dim, eps);
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int rows, int dim) override {
    cpu::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, rows, dim, workspace_);
  }
  void rope_forward(float* x, const float* cos, const float* sin, int batch, int seq_len, int heads,
                    int head_dim) override {
    cpu::rope_forward(x, cos, sin, batch, seq_len, heads, head_dim);
  }
  void rope_backward(float* dx, const float* cos, const float* sin, int batch, int seq_len, int heads,
                     int head_dim) override {
    cpu::rope_backward(dx, cos, sin, batch, seq_len, heads, head_dim);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& s) override {
    cpu::attention_forward(out, lse, q, k, v, s, workspace_);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                          const float* q, const float* k, const float* v, const AttentionShape& s) override {
    cpu::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s, workspace_);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, size_t count) override {
    cpu::swiglu_forward(out, gate, up, count);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                       size_t count) override {
    cpu::swiglu_backward(dgate, dup, dout, gate, up, count);
  }
  void cross_entropy(float* losses, float* logits, const int32_t* targets, int rows, int vocab, float grad_scale,
                     const float* row_scale, bool want_grad) override {
    cpu::cross_entropy(losses, logits, targets, rows, vocab, grad_scale, row_scale, want_grad);
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache, int n_new, int past,
                        int heads, int kv_heads, int head_dim) override {
    cpu::attention_decode(out, q, k_cache, v_cache, n_new, past, heads, kv_heads, head_dim, workspace_);
  }
  // Per-thread partial sums added in thread order: an OpenMP reduction may combine in any
  // order, which would make the clipping factor, and so resumed runs, differ in the last bit.
  double sum_squares(const float* x, size_t count) override {
    partial_sums_.assign(static_cast<size_t>(cpu::thread_count()), 0.0);
#pragma omp parallel
    {
      double total = 0.0;
#pragma omp for schedule(static)
      for (size_t i = 0; i < count; ++i) total += static_cast<double>(x[i]) * x[i];
      partial_sums_[static_cast<size_t>(cpu::thread_index())] = total;
    }
    double total = 0.0;
    for (double p : partial_sums_) total += p;
    return total;
  }
  void scale(float* x, size_t count, float factor) override {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; ++i) x[i] *= factor;
  }
  void adamw_update(float* param, const float* grad, float* m, float* v, size_t count, const AdamWHyper& h) override {
    cpu::adamw_update(param, grad, m, v, count, h);
  }

 private:
  cpu::Workspace workspace_;
  std::vector<double> partial_sums_;

  static void* zeroed(size_t bytes) {
    void* p = std::calloc(bytes ? bytes : 1, 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace smolstage
