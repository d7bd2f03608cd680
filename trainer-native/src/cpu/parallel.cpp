#include "cpu/parallel.h"

#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(SMOLSTAGE_HAVE_CBLAS) && defined(SMOLSTAGE_HAVE_OPENBLAS_THREADS)
#include <cblas.h>
#endif

namespace smolstage::cpu {
namespace {
int g_threads = 1;

void set_blas_threads(int n) {
#if defined(SMOLSTAGE_HAVE_CBLAS) && defined(SMOLSTAGE_HAVE_OPENBLAS_THREADS)
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}
}  // namespace

void set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  g_threads = threads;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  set_blas_threads(threads);
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// An OpenMP build of OpenBLAS already runs serially inside our parallel regions (and its
// thread setter would change our own OpenMP thread count), so there is nothing to do.
#ifdef SMOLSTAGE_BLAS_USES_OPENMP
SerialBlasScope::SerialBlasScope() {}
SerialBlasScope::~SerialBlasScope() {}
#else
SerialBlasScope::SerialBlasScope() { set_blas_threads(1); }
SerialBlasScope::~SerialBlasScope() { set_blas_threads(g_threads); }
#endif

}  // namespace smolstage::cpu
