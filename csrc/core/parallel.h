// The library's one thread pool. Every multithreaded kernel goes through parallel_for or
// parallel_run, so fastnn never runs more threads than set_num_threads allows, and a kernel
// called from inside a parallel region (or while another Python thread holds the pool) runs
// serially instead of oversubscribing.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

namespace fastnn {

int get_num_threads();
void set_num_threads(int n);  // n >= 1
// The threads an op started here can use: get_num_threads(), or 1 on a thread already inside
// a parallel region (where every nested parallel call runs serially).
int threads_here();
// Number of CPUs this process may run on (sched_getaffinity), the default thread count.
int available_cpus();

// fn(tid, nthreads) once on each of nthreads threads (nthreads <= get_num_threads());
// the calling thread is tid 0. Returns when all are done; rethrows the first exception.
void parallel_run(int nthreads, const std::function<void(int, int)>& fn);

// Like parallel_run, but the nthreads fn sees are guaranteed to run at the same time, so they
// may wait for each other (a barrier). Where the pool cannot give that (nested call, pool busy
// with another Python thread, one thread, or fewer threads than nthreads since the caller read
// the count), fn(0, 1) runs alone on the caller instead: T is nthreads or 1.
void parallel_run_concurrent(int nthreads, const std::function<void(int, int)>& fn);

// fn(begin, end) over [0, n) in contiguous chunks; one chunk per thread, each at least
// `grain` items (so small problems stay on one thread and pay no synchronisation).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// fn(tid, nthreads) as parallel_run_concurrent, in a balanced region: split_range (below) gives
// each thread a share of the work in proportion to its measured speed instead of an equal one,
// and the region's timing updates those speeds. fn must divide all of its work with
// split_range (with T = nthreads), so that the shares are the work each thread gets.
// NOTE (speed): on a shared machine one core can run much slower than the other for minutes
// (2-core Intel Xeon VM, 2026-12-06: one vCPU's share of an MLP step 35-45% slower). An
// even static split then waits at every barrier for the slow core.
void parallel_run_balanced(int nthreads, const std::function<void(int, int)>& fn);

// The shares of the balanced region this thread is running: thread t of T gets the fraction
// cum[t + 1] - cum[t] (cum[0] = 0, cum[T] = 1). Null outside a balanced region. Every thread
// of a region reads the same shares, fixed for the whole region.
constexpr int kMaxBalancedThreads = 64;
// A region should be balanced only where each thread gets at least this many of its split's
// units (for most of the work): with fewer, split_range's whole units do not move with the
// weights, the region's learning still credits each thread with its weight, and the weights
// (shared by every balanced region) drift to their limit. Reviews measured it: an RNN with 48
// hidden units (pre-packed 512x48x48 products, 2 column panels) took them to 0.25 / 0.75 in
// two forward passes, a Linear(2048, 24) -> Linear(24, 24) chain in 100 SGD steps, and a
// 1024^3 product afterwards ran 1.43-1.45x slower.
constexpr int64_t kBalancedMinUnitsPerThread = 8;
struct SplitShares {
  int T = 0;
  double cum[kMaxBalancedThreads + 1] = {};
};
const SplitShares* balanced_shares();
// This thread's barrier-wait accumulator (seconds) in a balanced region, else null.
double* balanced_wait_slot();
// The balanced regions' per-thread weights (summing to 1). set_balance_weights pins them to w
// (normalised; for tests), or with an empty w makes them equal again and learnt from then on.
void set_balance_weights(const std::vector<double>& w);
std::vector<double> balance_weights();

// Thread t's share [lo, hi) of n items split T ways, in whole units of `unit` items: equal
// shares (the last one takes the remainder), or the region's shares in a balanced region of T
// threads. Kernels whose threads hand data to each other split with the same unit, so each
// thread's slice of one op's output is the slice it reads in the next (a 16-float unit is one
// 64-byte line: no line is written by two threads). Within one region every call with the same
// n and unit gives the same slices.
inline std::pair<int64_t, int64_t> split_range(int64_t n, int t, int T, int64_t unit = 1) {
  const int64_t units = (n + unit - 1) / unit;
  int64_t lo = units * t / T, hi = units * (t + 1) / T;
  if (T > 1) {
    if (const SplitShares* s = balanced_shares(); s && s->T == T) {
      lo = static_cast<int64_t>(double(units) * s->cum[t] + 0.5);
      hi = static_cast<int64_t>(double(units) * s->cum[t + 1] + 0.5);
    }
  }
  return {std::min(n, lo * unit), std::min(n, hi * unit)};
}

// The threads of one parallel_run_concurrent region wait here for each other (between phases
// where one thread's output is another's input).
struct SpinBarrier {
  explicit SpinBarrier(int n) : n(n) {}
  void wait() {
    if (n <= 1) return;
    const int g = gen.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count.store(0, std::memory_order_relaxed);
      gen.fetch_add(1, std::memory_order_release);
      return;
    }
    // In a balanced region the wait is timed: it is not work (see parallel_run_balanced).
    double* acc = balanced_wait_slot();
    const auto t0 = acc ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    // Spin briefly, then yield: on a loaded machine the thread we wait for may have lost its
    // core, and burning ours would keep it from getting one back.
    for (int spins = 0; gen.load(std::memory_order_acquire) == g; ++spins) {
      if (spins < 2000) cpu_relax();
      else std::this_thread::yield();
    }
    if (acc) *acc += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  const int n;
  std::atomic<int> count{0}, gen{0};
};

}  // namespace fastnn
