#include "cpu/ops/ops.h"

#ifdef SMOLSTAGE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace smolstage::cpu {
namespace {

// 8 independent accumulators let the compiler vectorize without reassociation flags.
inline float dot(const float* x, const float* y, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * y[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

inline void axpy(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void gemm_builtin(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                  const float* b, int ldb, float beta, float* c, int ldc) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    float* ci = c + static_cast<size_t>(i) * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < n; ++j) ci[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int j = 0; j < n; ++j) ci[j] *= beta;
    }
    if (!trans_b) {
      // C[i,:] += Σ_p op(A)[i,p] · B[p,:], streaming rows of B.
      for (int p = 0; p < k; ++p) {
        const float aip = trans_a ? a[static_cast<size_t>(p) * lda + i] : a[static_cast<size_t>(i) * lda + p];
        axpy(alpha * aip, b + static_cast<size_t>(p) * ldb, ci, n);
      }
    } else if (!trans_a) {
      const float* ai = a + static_cast<size_t>(i) * lda;
      for (int j = 0; j < n; ++j) ci[j] += alpha * dot(ai, b + static_cast<size_t>(j) * ldb, k);
    } else {
      for (int j = 0; j < n; ++j) {
        const float* bj = b + static_cast<size_t>(j) * ldb;
        float s = 0.0f;
        for (int p = 0; p < k; ++p) s += a[static_cast<size_t>(p) * lda + i] * bj[p];
        ci[j] += alpha * s;
      }
    }
  }
}

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
          int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
#ifdef SMOLSTAGE_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
              alpha, a, lda, b, ldb, beta, c, ldc);
#else
  gemm_builtin(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

const char* gemm_library() { return SMOLSTAGE_BLAS_NAME; }

}  // namespace smolstage::cpu
