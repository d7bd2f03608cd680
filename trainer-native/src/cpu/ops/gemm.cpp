#include <algorithm>
#include <vector>

#include "cpu/ops/ops.h"
#include "cpu/parallel.h"

#ifdef SMOLSTAGE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace smolstage::cpu {
namespace {

// Built-in GEMM (used without BLAS): the classic packed scheme. op(B) is packed into panels of
// kNr columns and op(A) into panels of kMr rows for a kKc-deep slice of K; a kMr × kNr register
// tile then accumulates in vector registers.
constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int kKc = 256;
constexpr int kMc = 96;    // rows of A per parallel task (multiple of kMr)
constexpr int kNc = 2048;  // columns of B packed at once (multiple of kNr)

inline float element(const float* x, int ld, bool trans, int row, int col) {
  return trans ? x[static_cast<size_t>(col) * ld + row] : x[static_cast<size_t>(row) * ld + col];
}

// kc × kMr panel, k-major, zero-padded past m.
void pack_a(float* dst, const float* a, int lda, bool trans, int i0, int rows, int k0, int kc) {
  for (int r0 = 0; r0 < rows; r0 += kMr) {
    for (int p = 0; p < kc; ++p)
      for (int r = 0; r < kMr; ++r)
        *dst++ = r0 + r < rows ? element(a, lda, trans, i0 + r0 + r, k0 + p) : 0.0f;
  }
}

void pack_b(float* dst, const float* b, int ldb, bool trans, int k0, int kc, int j0, int cols) {
  const int panels = (cols + kNr - 1) / kNr;
#pragma omp parallel for schedule(static)
  for (int pi = 0; pi < panels; ++pi) {
    float* out = dst + static_cast<size_t>(pi) * kc * kNr;
    const int c0 = pi * kNr;
    for (int p = 0; p < kc; ++p)
      for (int c = 0; c < kNr; ++c)
        *out++ = c0 + c < cols ? element(b, ldb, trans, k0 + p, j0 + c0 + c) : 0.0f;
  }
}

// GCC/Clang vector extension: 8 floats, one AVX register (two SSE ones on older targets).
typedef float v8f __attribute__((vector_size(32)));

inline v8f load8(const float* p) {
  v8f v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// 6 × 16 tile held in 12 vector registers across the whole k loop.
void micro_kernel(const float* ap, const float* bp, int kc, float alpha, float* c, int ldc, int rows, int cols) {
  v8f acc[kMr][2] = {};
  for (int p = 0; p < kc; ++p) {
    const v8f b0 = load8(bp + p * kNr), b1 = load8(bp + p * kNr + 8);
    for (int r = 0; r < kMr; ++r) {
      const float av = ap[p * kMr + r];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  float out[kMr][kNr];
  __builtin_memcpy(out, acc, sizeof out);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) c[static_cast<size_t>(r) * ldc + j] += alpha * out[r][j];
}

}  // namespace

void gemm_builtin(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    float* ci = c + static_cast<size_t>(i) * ldc;
    if (beta == 0.0f) std::fill(ci, ci + n, 0.0f);
    else if (beta != 1.0f) for (int j = 0; j < n; ++j) ci[j] *= beta;
  }
  if (k <= 0 || alpha == 0.0f) return;
  // Scratch is kept per thread and only grows, so steady-state calls do not allocate.
  static thread_local std::vector<float> b_pack;
  b_pack.resize(std::max(b_pack.size(), static_cast<size_t>(kKc) * kNc));
  for (int j0 = 0; j0 < n; j0 += kNc) {
    const int nc = std::min(kNc, n - j0);
    for (int k0 = 0; k0 < k; k0 += kKc) {
      const int kc = std::min(kKc, k - k0);
      pack_b(b_pack.data(), b, ldb, trans_b, k0, kc, j0, nc);
      const float* bp = b_pack.data();
      const int blocks = (m + kMc - 1) / kMc;
#pragma omp parallel for schedule(dynamic, 1)
      for (int bi = 0; bi < blocks; ++bi) {
        static thread_local std::vector<float> a_pack;
        a_pack.resize(std::max(a_pack.size(), static_cast<size_t>(kKc) * kMc));
        const int i0 = bi * kMc;
        const int mc = std::min(kMc, m - i0);
        pack_a(a_pack.data(), a, lda, trans_a, i0, mc, k0, kc);
        for (int r0 = 0; r0 < mc; r0 += kMr)
          for (int c0 = 0; c0 < nc; c0 += kNr)
            micro_kernel(a_pack.data() + static_cast<size_t>(r0) * kc, bp + static_cast<size_t>(c0) * kc, kc, alpha,
                         c + static_cast<size_t>(i0 + r0) * ldc + j0 + c0, ldc, std::min(kMr, mc - r0),
                         std::min(kNr, nc - c0));
      }
    }
  }
}

#ifdef SMOLSTAGE_HAVE_CBLAS
namespace {

void blas_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a, lda, b, ldb, beta, c, ldc);
}

}  // namespace
#endif

// With a BLAS, the library runs single-threaded (see parallel.cpp) and this function splits C
// into one slab per OpenMP thread along its longer side. A single thread pool for GEMMs and
// our own loops avoids two pools spinning against each other, which costs more than half the
// throughput on many-core machines.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
#ifdef SMOLSTAGE_HAVE_CBLAS
  const int threads = thread_count();
  const double flops = 2.0 * m * n * k;
  if (threads <= 1 || in_parallel() || flops < 4e6) {
    blas_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool split_rows = m >= n;
  const int extent = split_rows ? m : n;
  const int align = 16;
  const int slabs = std::min(threads, (extent + align - 1) / align);
  const int per = ((extent + slabs - 1) / slabs + align - 1) / align * align;
#pragma omp parallel for schedule(static, 1) num_threads(slabs)
  for (int s = 0; s < slabs; ++s) {
    const int begin = s * per;
    const int len = std::min(per, extent - begin);
    if (len <= 0) continue;
    if (split_rows) {
      const float* a_rows = trans_a ? a + begin : a + static_cast<size_t>(begin) * lda;
      blas_gemm(trans_a, trans_b, len, n, k, alpha, a_rows, lda, b, ldb, beta, c + static_cast<size_t>(begin) * ldc,
                ldc);
    } else {
      const float* b_cols = trans_b ? b + static_cast<size_t>(begin) * ldb : b + begin;
      blas_gemm(trans_a, trans_b, m, len, k, alpha, a, lda, b_cols, ldb, beta, c + begin, ldc);
    }
  }
#else
  gemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

const char* gemm_library() { return SMOLSTAGE_BLAS_NAME; }

}  // namespace smolstage::cpu
