#include "kernels/threads.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() { std::this_thread::yield(); }
#endif

namespace needle_cpu {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSpinTime = std::chrono::microseconds(200);  // idle workers spin this long, then sleep

thread_local bool t_in_region = false;

int default_threads() {
  if (const char* env = std::getenv("NEEDLE_CPU_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, 1024);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { loop(i + 1); });
  }
  ~Pool() {
    stop_.store(true);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cv_.notify_all();
    }
    for (auto& t : threads_) t.join();
  }
  int size() const { return static_cast<int>(threads_.size()) + 1; }

  // Caller holds the region lock.
  void run(int nt, const std::function<void(int, int, Barrier&)>& fn) {
    Barrier barrier(nt);
    job_ = &fn;
    job_nt_ = nt;
    barrier_ = &barrier;
    pending_.store(static_cast<int>(threads_.size()));
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      cv_.notify_all();
    }
    t_in_region = true;
    fn(0, nt, barrier);
    t_in_region = false;
    // Every worker (participant or not) acknowledges the generation before the next can start.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096) cpu_relax(); else std::this_thread::yield();
    }
  }

 private:
  void loop(int tid) {
    t_in_region = true;  // kernels called from a worker never start a nested region
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t gen;
      auto start = Clock::now();
      int spins = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        if (stop_.load()) return;
        if (++spins % 256 == 0 && Clock::now() - start > kSpinTime) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1);
          cv_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
          sleepers_.fetch_sub(1);
          start = Clock::now();
        } else {
          cpu_relax();
        }
      }
      if (stop_.load()) return;
      seen = gen;
      if (tid < job_nt_) (*job_)(tid, job_nt_, *barrier_);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int, int, Barrier&)>* job_ = nullptr;
  int job_nt_ = 0;
  Barrier* barrier_ = nullptr;
};

// Raw pointers, never destroyed: workers must not be joined during interpreter shutdown.
std::mutex* g_region_mutex = new std::mutex;  // one parallel region at a time; guards g_pool
Pool* g_pool = nullptr;                         // created on first use
std::atomic<int> g_threads{0};

// A forked child (DataLoader workers) has none of the parent's threads: start afresh there.
void after_fork_in_child() {
  g_region_mutex = new std::mutex;
  g_pool = nullptr;  // the parent's pool object is leaked in the child on purpose
}
[[maybe_unused]] const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);

}  // namespace

int num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    int d = default_threads();
    g_threads.compare_exchange_strong(n, d);
    n = g_threads.load();
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(*g_region_mutex);
  g_threads.store(n);
  if (g_pool && g_pool->size() != n) {
    delete g_pool;  // rebuilt at the next region
    g_pool = nullptr;
  }
}

void Barrier::wait() {
  if (n_ <= 1) return;
  int phase = phase_.load(std::memory_order_acquire);
  if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    count_.store(0, std::memory_order_relaxed);
    phase_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  for (int spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
    if (spins < 4096) cpu_relax(); else std::this_thread::yield();
  }
}

void parallel_run(int want, const std::function<void(int, int, Barrier&)>& fn) {
  Barrier solo(1);
  if (want <= 1 || t_in_region) {
    fn(0, 1, solo);
    return;
  }
  std::unique_lock<std::mutex> lock(*g_region_mutex, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread's region is running: do this one alone
    fn(0, 1, solo);
    return;
  }
  int n = num_threads();
  if (n <= 1) {
    fn(0, 1, solo);
    return;
  }
  if (!g_pool) g_pool = new Pool(n - 1);
  g_pool->run(std::min(want, g_pool->size()), fn);
}

}  // namespace needle_cpu
