#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#ifdef __linux__
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTNN_PAUSE() _mm_pause()
#else
#define FASTNN_PAUSE() ((void)0)
#endif

namespace fastnn {

int available_cpus() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {

thread_local bool t_in_parallel = false;
// The balanced region this thread is running (see parallel_run_balanced), and its barrier
// waits there so far.
thread_local const SplitShares* t_shares = nullptr;
thread_local double t_wait = 0.0;

// Workers spin briefly after a job (training steps issue kernels back to back, and waking a
// sleeping thread costs tens of microseconds), then sleep on a condition variable.
class Pool {
 public:
  Pool() {
    int n = available_cpus();
    if (const char* e = std::getenv("FASTNN_NUM_THREADS")) {
      int v = std::atoi(e);
      if (v >= 1) n = v;
    }
    threads_ = n;
    weights_.assign(size_t(n), 1.0 / n);
    // FASTNN_BALANCE=0: balanced regions split evenly, as every other region does.
    if (const char* e = std::getenv("FASTNN_BALANCE")) balance_ = std::atoi(e) != 0;
  }
  ~Pool() { stop(); }

  int threads() const { return threads_.load(std::memory_order_relaxed); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> run(run_mutex_);
    stop();
    threads_ = n;
    weights_.assign(size_t(n), 1.0 / n);
    pinned_ = false;
  }

  // Balanced regions' per-thread weights: pinned to `w` (normalised; tests use it to force
  // uneven splits), or, for an empty w, equal again and learnt from then on.
  void set_weights(const std::vector<double>& w) {
    std::lock_guard<std::mutex> run(run_mutex_);
    if (w.empty()) {
      weights_.assign(size_t(threads_), 1.0 / threads_);
      pinned_ = false;
      return;
    }
    double sum = 0.0;
    for (double v : w) sum += v;
    weights_.clear();
    for (double v : w) weights_.push_back(v / sum);
    pinned_ = true;
  }
  std::vector<double> weights() {
    std::lock_guard<std::mutex> run(run_mutex_);
    return weights_;
  }

  void run(int nt, const std::function<void(int, int)>& fn, bool concurrent = false,
           bool balanced = false) {
    const int asked = nt;
    nt = std::max(1, std::min(nt, threads_.load(std::memory_order_relaxed)));
    // A concurrent region whose caller sized something (a barrier) for more threads than the
    // pool now has (set_num_threads from another Python thread since it read the count) runs
    // alone as well: its fn(t, T) never sees 1 < T < what it asked for.
    if (nt == 1 || t_in_parallel || (concurrent && nt < asked)) {  // (before the mutex)
      serial(nt, fn, concurrent);
      return;
    }
    std::unique_lock<std::mutex> run(run_mutex_, std::try_to_lock);
    if (!run.owns_lock()) {
      // Serial: another Python thread is using the pool.
      serial(nt, fn, concurrent);
      return;
    }
    ensure_workers(nt - 1);
    job_shares_ = nullptr;
    if (balanced && balance_ && nt == threads_ && nt <= kMaxBalancedThreads &&
        (int)weights_.size() == nt) {
      shares_.T = nt;
      shares_.cum[0] = 0.0;
      for (int t = 0; t < nt; ++t) shares_.cum[t + 1] = shares_.cum[t] + weights_[size_t(t)];
      shares_.cum[nt] = 1.0;
      busy_.assign(size_t(nt), 0.0);
      job_shares_ = &shares_;
    }
    job_ = &fn;
    job_threads_ = nt;
    error_ = nullptr;
    // Every worker acknowledges every job (participating or not), so a worker can never read
    // the parameters of a later job while still answering an earlier generation.
    pending_.store((int)workers_.size(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_parallel = true;
    try { member(0, nt); } catch (...) { record_error(); }
    t_in_parallel = false;
    // Spin briefly (workers usually finish within microseconds of each other), then yield so
    // a worker that lost its core to another process can get it back.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4000) FASTNN_PAUSE();
      else std::this_thread::yield();
    }
    if (job_shares_ && !error_) learn(nt);
    job_ = nullptr;
    job_shares_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Thread id's part of the current job; in a balanced region, with the region's shares set
  // for split_range and its work time (less barrier waits) recorded in busy_.
  void member(int id, int nt) {
    const SplitShares* s = job_shares_;
    if (!s) {
      (*job_)(id, nt);
      return;
    }
    struct Scope {
      explicit Scope(const SplitShares* s) { t_shares = s; t_wait = 0.0; }
      ~Scope() { t_shares = nullptr; }
    } scope(s);
    const auto t0 = std::chrono::steady_clock::now();
    (*job_)(id, nt);
    busy_[size_t(id)] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - t_wait;
  }

  // After a balanced region: each thread's speed is its share over its work time; the
  // weights move kLearnRate of the way towards the shares those speeds call for (so one slow
  // region moves them little), each kept within [0.5, 1.5] x an equal share.
  // NOTE (speed): 2-thread 784-256-128-10 MLP step, Intel Xeon VM, rounds of 60 steps with
  // learnt weights interleaved with rounds pinned even, median of the paired ratios over 30
  // rounds: 1.035-1.075 faster at a rate of 0.2 (three runs), 1.046-1.069 at 0.05 (two),
  // which moved the weights less between regions.
  static constexpr double kLearnRate = 0.05;
  // NOTE: regions under 20 us, or a thread with under 1 us of work, are not timed: too
  // little to tell a slow core from timer and wake-up noise.
  void learn(int nt) {
    if (pinned_) return;
    double most = 0.0, least = 1e30;
    for (int t = 0; t < nt; ++t) {
      most = std::max(most, busy_[size_t(t)]);
      least = std::min(least, busy_[size_t(t)]);
    }
    if (most < 20e-6 || least < 1e-6) return;
    double speed[kMaxBalancedThreads], sum = 0.0;
    for (int t = 0; t < nt; ++t) {
      speed[t] = (shares_.cum[t + 1] - shares_.cum[t]) / busy_[size_t(t)];
      sum += speed[t];
    }
    const double lo = 0.5 / nt, hi = 1.5 / nt;
    double total = 0.0;
    for (int t = 0; t < nt; ++t) {
      double& w = weights_[size_t(t)];
      w = std::clamp((1.0 - kLearnRate) * w + kLearnRate * speed[t] / sum, lo, hi);
      total += w;
    }
    for (int t = 0; t < nt; ++t) weights_[size_t(t)] /= total;
  }

  static void serial(int nt, const std::function<void(int, int)>& fn, bool concurrent) {
    if (concurrent) { fn(0, 1); return; }
    for (int t = 0; t < nt; ++t) fn(t, nt);
  }

  void record_error() {
    std::lock_guard<std::mutex> lk(err_m_);
    if (!error_) error_ = std::current_exception();
  }

  void ensure_workers(int n) {
    while ((int)workers_.size() < n) {
      int id = (int)workers_.size() + 1;
      // The worker starts from the generation as it is now, before the job about to be
      // published; reading it inside the new thread could miss that job.
      uint64_t start = generation_.load(std::memory_order_acquire);
      workers_.emplace_back([this, id, start] { worker(id, start); });
    }
  }

  void worker(int id, uint64_t seen) {
    t_in_parallel = true;
    for (;;) {
      uint64_t g;
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen && !quit_.load()) {
        if (++spins < 20000) { FASTNN_PAUSE(); continue; }
        if (spins < 20100) { std::this_thread::yield(); continue; }
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_.load() != seen || quit_.load(); });
      }
      if (quit_.load()) return;
      seen = g;
      if (id < job_threads_) {
        try { member(id, job_threads_); } catch (...) { record_error(); }
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    quit_.store(false);
  }

  // Atomic: read without run_mutex_ (threads(), and run() before it takes the lock) while
  // set_threads writes it under the lock from another Python thread.
  std::atomic<int> threads_{1};
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, m_, err_m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::exception_ptr error_;
  // Balanced regions (parallel_run_balanced). weights_ (one per thread, summing to 1) and
  // pinned_ are touched only under run_mutex_; shares_ and busy_ belong to the current job.
  std::vector<double> weights_;
  bool balance_ = true;
  bool pinned_ = false;
  SplitShares shares_;
  const SplitShares* job_shares_ = nullptr;
  std::vector<double> busy_;
};

Pool& pool() {
  // Leaked on purpose: joining threads during interpreter shutdown can deadlock.
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int get_num_threads() { return pool().threads(); }
int threads_here() { return t_in_parallel ? 1 : pool().threads(); }
void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("[set_num_threads] n must be >= 1");
  pool().set_threads(n);
}

const SplitShares* balanced_shares() { return t_shares; }
double* balanced_wait_slot() { return t_shares ? &t_wait : nullptr; }
void set_balance_weights(const std::vector<double>& w) { pool().set_weights(w); }
std::vector<double> balance_weights() { return pool().weights(); }

void parallel_run(int nthreads, const std::function<void(int, int)>& fn) { pool().run(nthreads, fn); }
void parallel_run_balanced(int nthreads, const std::function<void(int, int)>& fn) {
  pool().run(nthreads, fn, true, true);
}
void parallel_run_concurrent(int nthreads, const std::function<void(int, int)>& fn) {
  pool().run(nthreads, fn, true);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>(get_num_threads(), (n + grain - 1) / grain);
  if (chunks <= 1 || t_in_parallel) { fn(0, n); return; }
  parallel_run((int)chunks, [&](int t, int nt) {
    int64_t b = n * t / nt, e = n * (t + 1) / nt;
    if (b < e) fn(b, e);
  });
}

}  // namespace fastnn
