#include "kernels/buffer.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace needle_cpu {
namespace {

// Blocks at least this big go through the cache; smaller ones are cheap for malloc.
constexpr std::size_t kCacheMin = std::size_t(64) << 10;
// Blocks at least this big are 2 MiB aligned and marked for transparent huge pages (as numpy
// does): fewer TLB misses in streaming kernels and 512x fewer page faults on first touch.
constexpr std::size_t kHugeMin = std::size_t(4) << 20;
constexpr std::size_t kHugePage = std::size_t(2) << 20;
// Upper bound on what the cache keeps, so a burst of big temporaries does not pin memory.
constexpr std::size_t kCacheMax = std::size_t(512) << 20;

// Round a byte count up to a size class: 8 classes per power of two (at most 12.5% slack),
// so a buffer freed by one op fits the next op of about the same size.
std::size_t size_class(std::size_t bytes) {
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (bytes < kCacheMin) return bytes;
  int top = 63 - __builtin_clzll(bytes);
  std::size_t step = std::size_t(1) << (top - 3);
  if (bytes >= kHugeMin && step < kHugePage) step = kHugePage;
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;
  std::size_t held = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // leaked on purpose: buffers may die after static destructors run
  return *c;
}

std::atomic<std::size_t> g_live_bytes{0};
std::atomic<std::size_t> g_peak_bytes{0};

std::atomic<std::int64_t> g_inject_skip{0}, g_inject_fail{0};

// True when this allocation is one inject_alloc_failures asked to fail (one relaxed load otherwise).
bool injected_failure() noexcept {
  if (g_inject_fail.load(std::memory_order_relaxed) <= 0) return false;
  if (g_inject_skip.fetch_sub(1) > 0) return false;
  return g_inject_fail.fetch_sub(1) > 0;
}

}  // namespace

void note_buffer_alloc(std::size_t bytes) noexcept {
  std::size_t now = g_live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::size_t peak = g_peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void note_buffer_free(std::size_t bytes) noexcept { g_live_bytes.fetch_sub(bytes, std::memory_order_relaxed); }

std::size_t live_buffer_bytes() noexcept { return g_live_bytes.load(std::memory_order_relaxed); }

std::size_t peak_buffer_bytes() noexcept { return g_peak_bytes.load(std::memory_order_relaxed); }

void reset_peak_buffer_bytes() noexcept {
  g_peak_bytes.store(g_live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void inject_alloc_failures(std::int64_t skip, std::int64_t count) noexcept {
  g_inject_fail.store(0);
  g_inject_skip.store(skip);
  g_inject_fail.store(count);
}

bool alloc_failures_pending() noexcept { return g_inject_fail.load(std::memory_order_relaxed) > 0; }

void* alloc_bytes(std::size_t n) {
  if (injected_failure()) throw std::bad_alloc();
  std::size_t bytes = size_class(n ? n : 1);
#ifndef NEEDLE_CPU_NO_BUFFER_CACHE
  if (bytes >= kCacheMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.find(bytes);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.held -= bytes;
      return p;
    }
  }
#endif
  const std::size_t align = bytes >= kHugeMin ? kHugePage : kAlignment;
  void* p = std::aligned_alloc(align, bytes);
  if (p == nullptr) {
#ifndef NEEDLE_CPU_NO_BUFFER_CACHE
    clear_cache();  // memory is short: give back what the cache holds and try once more
    p = std::aligned_alloc(align, bytes);
#endif
    if (p == nullptr) throw std::bad_alloc();
  }
#ifdef MADV_HUGEPAGE
  if (bytes >= kHugeMin) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
}

void free_bytes(void* p, std::size_t n) noexcept {
  if (p == nullptr) return;
  std::size_t bytes = size_class(n ? n : 1);
#ifndef NEEDLE_CPU_NO_BUFFER_CACHE
  if (bytes >= kCacheMin) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.held + bytes <= kCacheMax) {
      try {
        c.free_blocks[bytes].push_back(p);
        c.held += bytes;
        return;
      } catch (...) {  // no memory for the bookkeeping: just free the block
      }
    }
  }
#endif
  std::free(p);
}

std::size_t cached_bytes() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.held;
}

void clear_cache() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& kv : c.free_blocks)
    for (void* p : kv.second) std::free(p);
  c.free_blocks.clear();
  c.held = 0;
}

}  // namespace needle_cpu
