// Strided copies (any dtype) between a compact buffer and a strided view (shape, strides, offset in elements).
// The caller has checked that every index of the view lies inside its buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace needle_cpu {

struct View {
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;
  std::int64_t offset = 0;
};

// Elements are moved as raw `itemsize`-byte words (1, 4 or 8): these kernels serve every dtype.
// out[i] = src[view(i)] for the view's elements in row-major order.
void compact(const void* src, void* out, const View& view, std::size_t itemsize);
// dst[view(i)] = a[i].
void ewise_setitem(const void* a, void* dst, const View& view, std::size_t itemsize);
// dst[view(i)] = *value (one element of `itemsize` bytes).
void scalar_setitem(const void* value, void* dst, const View& view, std::size_t itemsize);

}  // namespace needle_cpu
