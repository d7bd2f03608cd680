// Thread control for the CPU backend: OpenMP for our loops, and the BLAS library's own pool.
#pragma once

namespace smolstage::cpu {

// threads <= 0 means all hardware threads. Must be called on the thread that runs the work.
void set_threads(int threads);
int thread_count();
int thread_index();  // inside a parallel region

// Inside our own parallel loops each thread calls BLAS on small blocks; the BLAS pool must not
// spawn more threads on top. Restores the previous count on destruction.
class SerialBlasScope {
 public:
  SerialBlasScope();
  ~SerialBlasScope();
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;
};

}  // namespace smolstage::cpu
