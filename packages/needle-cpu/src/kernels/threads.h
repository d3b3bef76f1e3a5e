// A small persistent thread pool: parallel regions without creating threads per call.
//
// Workers spin briefly after a region (so back-to-back kernels start in microseconds), then
// sleep on a condition variable. Two kinds of region:
//  - parallel_chunks / parallel_for: chunks are claimed from a shared counter, so the caller
//    does all the work itself when the other threads are late (a busy machine) and never
//    waits for a thread that has not started;
//  - parallel_run: a fixed team of threads with a barrier (the GEMM shares packed panels).
// A region body may throw: the region still ends (every thread leaves it) and the first
// exception is rethrown to the caller; the pool stays usable.
// One region runs at a time; a region started while another runs (another Python thread, or
// nested) runs on the calling thread alone, so region code must cope with any thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>

namespace needle_cpu {

// Threads used by kernels (the caller included). Initially NEEDLE_CPU_THREADS or the CPUs we may run on.
int num_threads();
// n >= 1. Starts the threads now; when the system lets fewer start (a thread or address-space
// limit), the kernels use those and num_threads() reports how many.
void set_num_threads(int n);

// A spin barrier for the threads of one region. When a thread of the region throws, the
// barrier is abandoned: wait() then throws (an internal type the pool catches) in the others.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait();
  void abandon();

 private:
  int n_;
  std::atomic<int> count_{0};
  std::atomic<int> phase_{0};
  std::atomic<bool> abandoned_{false};
};

// Run fn(tid, nt, barrier) for tid in [0, nt) with nt <= want; the caller runs tid 0.
void parallel_run(int want, const std::function<void(int, int, Barrier&)>& fn);

// Run fn(c) for every c in [0, chunks), on up to `want` threads, each chunk exactly once.
void parallel_chunks(int want, std::int64_t chunks, const std::function<void(std::int64_t)>& fn);

// Threads worth using for `work` units when each thread should get at least `grain` of them.
inline int threads_for(std::int64_t work, std::int64_t grain) {
  if (work <= grain) return 1;
  std::int64_t t = work / grain;
  return static_cast<int>(std::min<std::int64_t>(t, num_threads()));
}

// The [lo, hi) share of part `part` of `parts` over n items, cut at multiples of `align`.
inline void split_range(std::int64_t n, std::int64_t part, std::int64_t parts, std::int64_t align, std::int64_t* lo,
                        std::int64_t* hi) {
  std::int64_t units = (n + align - 1) / align;
  *lo = std::min(n, units * part / parts * align);
  *hi = std::min(n, units * (part + 1) / parts * align);
}

// f(lo, hi) over [0, n) in contiguous chunks cut at multiples of `align` items (16 floats keep
// threads off each other's cache lines); a few chunks per thread balance uneven progress.
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f, std::int64_t align = 1) {
  int nt = threads_for(n, grain);
  if (nt <= 1) {
    if (n > 0) f(std::int64_t(0), n);
    return;
  }
  std::int64_t chunks = std::min<std::int64_t>(4 * nt, (n + align - 1) / align);
  parallel_chunks(nt, chunks, [&](std::int64_t c) {
    std::int64_t lo, hi;
    split_range(n, c, chunks, align, &lo, &hi);
    if (lo < hi) f(lo, hi);
  });
}

}  // namespace needle_cpu
