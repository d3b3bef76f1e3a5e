// Aligned float buffers, with a small cache of large blocks.
//
// A fresh 64 MiB allocation costs tens of milliseconds of page faults; training loops
// allocate the same big sizes over and over, so freed large blocks are kept (bounded)
// and handed out again.
#pragma once
#include <cstddef>
#include <cstdint>

namespace needle_cpu {

constexpr std::size_t kAlignment = 64;  // one cache line; enough for any SIMD load

// n floats aligned to kAlignment (never null; n == 0 gives a minimal block). Throws std::bad_alloc.
float* alloc_floats(std::size_t n);
// Return memory from alloc_floats(n) (same n).
void free_floats(float* p, std::size_t n) noexcept;

// Bytes currently held by the cache, and a way to release them.
std::size_t cached_bytes() noexcept;
void clear_cache() noexcept;

// An owning, move-only flat float buffer.
class Buffer {
 public:
  explicit Buffer(std::int64_t size) : size_(size), data_(alloc_floats(static_cast<std::size_t>(size))) {}
  ~Buffer() { free_floats(data_, static_cast<std::size_t>(size_)); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  float* data() const noexcept { return data_; }
  std::int64_t size() const noexcept { return size_; }

 private:
  std::int64_t size_;
  float* data_;
};

}  // namespace needle_cpu
