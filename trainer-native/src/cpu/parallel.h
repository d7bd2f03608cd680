// Thread control for the CPU backend: one OpenMP pool runs our loops and, slab by slab, the
// GEMMs; the BLAS library itself is kept single-threaded.
#pragma once

namespace smolstage::cpu {

// threads <= 0 means all hardware threads. Must be called on the thread that runs the work.
void set_threads(int threads);
int thread_count();
int thread_index();  // inside a parallel region
bool in_parallel();

}  // namespace smolstage::cpu
