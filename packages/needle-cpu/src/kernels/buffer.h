// Aligned typed buffers, with a small cache of large blocks.
//
// A fresh 64 MiB allocation costs tens of milliseconds of page faults; training loops
// allocate the same big sizes over and over, so freed large blocks are kept (bounded)
// and handed out again.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace needle_cpu {

constexpr std::size_t kAlignment = 64;  // one cache line; enough for any SIMD load

// `bytes` bytes aligned to kAlignment (never null; 0 gives a minimal block). Throws std::bad_alloc.
void* alloc_bytes(std::size_t bytes);
// Return memory from alloc_bytes(bytes) (same bytes).
void free_bytes(void* p, std::size_t bytes) noexcept;

// n floats: alloc_bytes(n * 4) (the GEMM's and conv's scratch).
inline float* alloc_floats(std::size_t n) { return static_cast<float*>(alloc_bytes(n * sizeof(float))); }
inline void free_floats(float* p, std::size_t n) noexcept { free_bytes(p, n * sizeof(float)); }

// Fault injection for tests: after `skip` more allocations succeed, the next `count` throw
// std::bad_alloc (count 0: off). Lets a test make a kernel fail inside a parallel region.
void inject_alloc_failures(std::int64_t skip, std::int64_t count) noexcept;

// Bytes currently held by the cache, and a way to release them.
std::size_t cached_bytes() noexcept;
void clear_cache() noexcept;

// An owning, non-copyable flat buffer of `size` elements of one dtype.
class Buffer {
 public:
  explicit Buffer(std::int64_t size, DType dtype = DType::kFloat32)
      : size_(size), dtype_(dtype), data_(alloc_bytes(nbytes())) {}
  ~Buffer() { free_bytes(data_, nbytes()); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // The elements as float32: only for float32 buffers (the bindings check the dtype first).
  float* data() const noexcept { return static_cast<float*>(data_); }
  // The elements, untyped.
  void* raw() const noexcept { return data_; }
  template <class T>
  T* as() const noexcept { return static_cast<T*>(data_); }
  std::int64_t size() const noexcept { return size_; }
  DType dtype() const noexcept { return dtype_; }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(size_) * itemsize(dtype_); }

 private:
  std::int64_t size_;
  DType dtype_;
  void* data_;
};

}  // namespace needle_cpu
