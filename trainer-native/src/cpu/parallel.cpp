#include "cpu/parallel.h"

#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(SMOLSTAGE_HAVE_CBLAS) && defined(SMOLSTAGE_HAVE_OPENBLAS_THREADS)
#include <cblas.h>
#endif

namespace smolstage::cpu {

void set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
#if defined(SMOLSTAGE_HAVE_CBLAS) && defined(SMOLSTAGE_HAVE_OPENBLAS_THREADS)
  openblas_set_num_threads(1);  // gemm() parallelizes over OpenMP threads itself
#endif
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

bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

}  // namespace smolstage::cpu
