#include "core/parallel.h"

#include <algorithm>
#include <atomic>
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
  }
  ~Pool() { stop(); }

  int threads() const { return threads_; }
  void set_threads(int n) {
    std::lock_guard<std::mutex> run(run_mutex_);
    stop();
    threads_ = n;
  }

  void run(int nt, const std::function<void(int, int)>& fn, bool concurrent = false) {
    nt = std::max(1, std::min(nt, threads_));
    if (nt == 1 || t_in_parallel) {  // decided before touching the mutex: the common case
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
    try { fn(0, nt); } catch (...) { record_error(); }
    t_in_parallel = false;
    // Spin briefly (workers usually finish within microseconds of each other), then yield so
    // a worker that lost its core to another process can get it back.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4000) FASTNN_PAUSE();
      else std::this_thread::yield();
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
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
        try { (*job_)(id, job_threads_); } catch (...) { record_error(); }
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

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_, m_, err_m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::exception_ptr error_;
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

void parallel_run(int nthreads, const std::function<void(int, int)>& fn) { pool().run(nthreads, fn); }
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
