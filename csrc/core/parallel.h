// The library's one thread pool. Every multithreaded kernel goes through parallel_for or
// parallel_run, so fastnn never runs more threads than set_num_threads allows, and a kernel
// called from inside a parallel region (or while another Python thread holds the pool) runs
// serially instead of oversubscribing.
#pragma once
#include <cstdint>
#include <functional>

namespace fastnn {

int get_num_threads();
void set_num_threads(int n);  // n >= 1
// Number of CPUs this process may run on (sched_getaffinity), the default thread count.
int available_cpus();

// fn(tid, nthreads) once on each of nthreads threads (nthreads <= get_num_threads());
// the calling thread is tid 0. Returns when all are done; rethrows the first exception.
void parallel_run(int nthreads, const std::function<void(int, int)>& fn);

// Like parallel_run, but the nthreads fn sees are guaranteed to run at the same time, so they
// may wait for each other (a barrier). Where the pool cannot give that (nested call, pool busy
// with another Python thread, one thread), fn(0, 1) runs alone on the caller instead.
void parallel_run_concurrent(int nthreads, const std::function<void(int, int)>& fn);

// fn(begin, end) over [0, n) in contiguous chunks; one chunk per thread, each at least
// `grain` items (so small problems stay on one thread and pay no synchronisation).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace fastnn
