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
// True while inject_alloc_failures has failures to hand out (so a free list must not bypass them).
bool alloc_failures_pending() noexcept;

// Bytes currently held by the cache, and a way to release them.
std::size_t cached_bytes() noexcept;
void clear_cache() noexcept;

// Statistics of live tensor buffers (Buffer objects over memory of their own; kernels' scratch, the
// cache's held blocks and adopted foreign memory are not counted): bytes alive now and the most
// alive at once since the last reset. Updated with relaxed atomics, so they cost a few nanoseconds
// per buffer and are exact once threads are joined.
void note_buffer_alloc(std::size_t bytes) noexcept;
void note_buffer_free(std::size_t bytes) noexcept;
std::size_t live_buffer_bytes() noexcept;
std::size_t peak_buffer_bytes() noexcept;
// Make the peak the bytes alive now.
void reset_peak_buffer_bytes() noexcept;

// A non-copyable flat buffer of `size` elements of one dtype: memory of its own, or memory that
// another library owns (DLPack imports), released through a callback.
class Buffer {
 public:
  explicit Buffer(std::int64_t size, DType dtype = DType::kFloat32)
      : size_(size), dtype_(dtype), data_(alloc_bytes(nbytes())) {
    note_buffer_alloc(nbytes());
  }
  // Over `data`, which it does not own: `release(context)` runs once, when the buffer is destroyed.
  // `data` must be aligned to the dtype's itemsize.
  Buffer(void* data, std::int64_t size, DType dtype, void (*release)(void*), void* context) noexcept
      : size_(size), dtype_(dtype), data_(data), release_(release), context_(context) {}
  // Over `block`, which it takes over: memory from alloc_bytes(n) with size_class(n) ==
  // size_class(nbytes()) (a block another Buffer gave up with release_memory()).
  Buffer(std::int64_t size, DType dtype, void* block) noexcept : size_(size), dtype_(dtype), data_(block) {
    note_buffer_alloc(nbytes());
  }
  // Give up the memory (counted as freed, as by the destructor) and hand it to the caller, who frees
  // it with free_bytes or passes it to the constructor above. Only for a buffer that owns_memory().
  void* release_memory() noexcept {
    void* p = data_;
    note_buffer_free(nbytes());
    data_ = nullptr;
    size_ = 0;
    return p;
  }
  ~Buffer() {
    if (release_ != nullptr) {
      release_(context_);
    } else {
      free_bytes(data_, nbytes());
      note_buffer_free(nbytes());
    }
  }
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
  // False for a buffer over foreign memory.
  bool owns_memory() const noexcept { return release_ == nullptr; }

 private:
  std::int64_t size_;
  DType dtype_;
  void* data_;
  void (*release_)(void*) = nullptr;
  void* context_ = nullptr;
};

}  // namespace needle_cpu
