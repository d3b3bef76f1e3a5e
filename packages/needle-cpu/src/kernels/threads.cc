#include "kernels/threads.h"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
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
// Idle workers spin this long (NEEDLE_CPU_SPIN_US), then sleep. Waking a sleeping thread costs
// tens of microseconds (more in a VM, where its idle vCPU is halted), and a training step's
// Python code between two parallel kernels often takes longer than 200 us: 1 ms keeps the
// workers ready across a step (measured: a 64 x 784 x 128 matmul after a 300 us pause, 67 us
// with a 200 us spin, 44 us with a longer one). Spinning pauses the core; it yields to any
// other runnable thread every few microseconds.
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds t = [] {
    long us = 1000;
    if (const char* env = std::getenv("NEEDLE_CPU_SPIN_US")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0') us = std::clamp(v, 0L, 1000000L);  // else keep the default
    }
    return std::chrono::microseconds(us);
  }();
  return t;
}

thread_local bool t_in_region = false;

int default_threads() {  // never 0
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

// Spin a little, then yield: on an oversubscribed machine the thread we wait for needs our core.
template <class Pred>
void spin_until(Pred done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < 2048) cpu_relax(); else std::this_thread::yield();
  }
}

// Thrown out of Barrier::wait in the other threads of a team region one of whose threads threw:
// they stop instead of waiting for a thread that will never arrive.
struct RegionAbandoned {};

// One region. Lives on the caller's stack; workers reach it through Pool::current_ only.
//
// A body that throws (std::bad_alloc from a scratch allocation) must not end the region early:
// the caller would return while workers still use the job on its stack, and an exception
// leaving a worker's thread function terminates the process. Every participant catches, the
// first exception is kept, no further chunks are claimed, and the caller rethrows it once the
// region is over.
struct Job {
  // team job (parallel_run)
  const std::function<void(int, int, Barrier&)>* team_fn = nullptr;
  int nt = 1;
  Barrier* barrier = nullptr;
  std::atomic<int> next_tid{1};
  std::atomic<int> finished{0};
  // chunk job (parallel_chunks)
  const std::function<void(std::int64_t)>* chunk_fn = nullptr;
  std::int64_t chunks = 0;
  std::atomic<std::int64_t> next_chunk{0};
  // the first exception of any participant
  std::mutex error_mutex;
  std::exception_ptr error;

  void record(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::move(e);
    }
    next_chunk.store(chunks);  // nobody starts another chunk
    if (barrier != nullptr) barrier->abandon();
  }
  void run_chunks() noexcept {
    try {
      for (std::int64_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1)) (*chunk_fn)(c);
    } catch (const RegionAbandoned&) {
    } catch (...) {
      record(std::current_exception());
    }
  }
  void run_team(int tid) noexcept {
    try {
      (*team_fn)(tid, nt, *barrier);
    } catch (const RegionAbandoned&) {
    } catch (...) {
      record(std::current_exception());
    }
  }
  void participate() noexcept {
    if (chunk_fn != nullptr) {
      run_chunks();
      return;
    }
    int tid = next_tid.fetch_add(1);
    if (tid < nt) {
      run_team(tid);
      finished.fetch_add(1, std::memory_order_release);
    }
  }
};

class Pool {
 public:
  // Starts up to `workers` threads; fewer when the system refuses more (an address-space or
  // process limit): size() says how many run. Never throws.
  explicit Pool(int workers) {
    try {
      threads_.reserve(workers);
      for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
    } catch (...) {  // std::system_error from pthread_create, or bad_alloc: keep those that started
    }
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

  // Caller holds the region lock. A worker that joins sees `current_` set; once the caller has
  // cleared it and seen no worker inside (`active_` == 0), no worker can touch the job again
  // (a worker raises `active_` before reading `current_`; both sides are seq_cst).
  void run(Job& job) {
    current_.store(&job);
    generation_.fetch_add(1);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      cv_.notify_all();
    }
    t_in_region = true;
    if (job.chunk_fn != nullptr) {
      job.run_chunks();
    } else {
      job.run_team(0);
      spin_until([&] { return job.finished.load(std::memory_order_acquire) == job.nt - 1; });
    }
    t_in_region = false;
    current_.store(nullptr);
    spin_until([&] { return active_.load() == 0; });
    if (job.error) std::rethrow_exception(job.error);  // no thread touches the job any more
  }

 private:
  void loop() {
    t_in_region = true;  // kernels called from a worker never start a nested region
    std::uint64_t seen = 0;  // a job posted before this thread started still counts
    for (;;) {
      std::uint64_t gen;
      auto start = Clock::now();
      int spins = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        if (stop_.load()) return;
        if (++spins % 256 != 0) {
          cpu_relax();
        } else if (Clock::now() - start <= spin_time()) {
          std::this_thread::yield();  // a few microseconds of pauses: let another runnable thread in
        } else {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1);
          cv_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
          sleepers_.fetch_sub(1);
          start = Clock::now();
        }
      }
      if (stop_.load()) return;
      seen = gen;
      active_.fetch_add(1);
      if (Job* job = current_.load()) job->participate();
      active_.fetch_sub(1);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> active_{0};
  std::atomic<Job*> current_{nullptr};
  std::atomic<bool> stop_{false};
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

// Caller holds the region lock. Starts the pool for n threads (the caller one of them); when the
// system lets fewer start, the thread count drops to what runs, so num_threads() tells the truth.
void start_pool(int n) {
  g_pool = new Pool(n - 1);
  if (g_pool->size() < n) g_threads.store(g_pool->size());
}

// Runs `job` on the pool, or returns false when it must run on the caller alone.
bool run_on_pool(Job& job, int want) {
  if (want <= 1 || t_in_region) return false;
  std::unique_lock<std::mutex> lock(*g_region_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return false;  // another thread's region is running
  int n = num_threads();
  if (n <= 1) return false;
  if (!g_pool) start_pool(n);
  if (g_pool->size() <= 1) return false;
  if (job.team_fn != nullptr) job.nt = std::min(want, g_pool->size());
  Barrier barrier(job.nt);
  job.barrier = &barrier;
  g_pool->run(job);
  return true;
}

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
    delete g_pool;
    g_pool = nullptr;
  }
  if (n > 1 && !g_pool) start_pool(n);  // now, so that a shortfall shows in num_threads() at once
}

void Barrier::wait() {
  if (n_ <= 1) return;
  if (abandoned_.load(std::memory_order_acquire)) throw RegionAbandoned{};
  int phase = phase_.load(std::memory_order_acquire);
  if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
    count_.store(0, std::memory_order_relaxed);
    phase_.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
  spin_until([&] { return phase_.load(std::memory_order_acquire) != phase || abandoned_.load(std::memory_order_acquire); });
  if (phase_.load(std::memory_order_acquire) == phase) throw RegionAbandoned{};
}

void Barrier::abandon() { abandoned_.store(true, std::memory_order_release); }

void parallel_run(int want, const std::function<void(int, int, Barrier&)>& fn) {
  Job job;
  job.team_fn = &fn;
  if (!run_on_pool(job, want)) {
    Barrier solo(1);
    fn(0, 1, solo);
  }
}

void parallel_chunks(int want, std::int64_t chunks, const std::function<void(std::int64_t)>& fn) {
  Job job;
  job.chunk_fn = &fn;
  job.chunks = chunks;
  if (chunks <= 1 || !run_on_pool(job, want)) {
    for (std::int64_t c = 0; c < chunks; ++c) fn(c);
  }
}

}  // namespace needle_cpu
