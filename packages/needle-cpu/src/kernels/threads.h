// A small persistent thread pool: parallel regions without creating threads per call.
//
// Workers spin briefly after a region (so back-to-back kernels start in microseconds),
// then sleep on a condition variable. One region runs at a time; a region started while
// another is running (another Python thread, or nested) runs on the calling thread alone,
// so every region function must cope with any thread count, including 1.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>

namespace needle_cpu {

// Threads used by kernels (the caller included). Initially NEEDLE_CPU_THREADS or the CPUs we may run on.
int num_threads();
void set_num_threads(int n);  // n >= 1

// A spin barrier for the threads of one region.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait();

 private:
  int n_;
  std::atomic<int> count_{0};
  std::atomic<int> phase_{0};
};

// Run fn(tid, nt, barrier) for tid in [0, nt) with nt <= want; the caller runs tid 0.
void parallel_run(int want, const std::function<void(int, int, Barrier&)>& fn);

// Threads worth using for `work` units when each thread should get at least `grain` of them.
inline int threads_for(std::int64_t work, std::int64_t grain) {
  if (work <= grain) return 1;
  std::int64_t t = work / grain;
  return static_cast<int>(std::min<std::int64_t>(t, num_threads()));
}

// The [lo, hi) share of thread tid among nt over n items, cut at multiples of `align`.
inline void split_range(std::int64_t n, int tid, int nt, std::int64_t align, std::int64_t* lo, std::int64_t* hi) {
  std::int64_t units = (n + align - 1) / align;
  *lo = std::min(n, units * tid / nt * align);
  *hi = std::min(n, units * (tid + 1) / nt * align);
}

// f(lo, hi) over [0, n) split in contiguous chunks (multiples of 16 items: whole cache lines).
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
  int nt = threads_for(n, grain);
  if (nt <= 1) {
    if (n > 0) f(std::int64_t(0), n);
    return;
  }
  parallel_run(nt, [&](int tid, int nt2, Barrier&) {
    std::int64_t lo, hi;
    split_range(n, tid, nt2, 16, &lo, &hi);
    if (lo < hi) f(lo, hi);
  });
}

}  // namespace needle_cpu
