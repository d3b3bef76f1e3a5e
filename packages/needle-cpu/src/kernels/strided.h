// Strided copies between a compact buffer and a strided view (shape, strides, offset in elements).
// The caller has checked that every index of the view lies inside its buffer.
#pragma once
#include <cstdint>
#include <vector>

namespace needle_cpu {

struct View {
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;
  std::int64_t offset = 0;
};

// out[i] = src[view(i)] for the view's elements in row-major order.
void compact(const float* src, float* out, const View& view);
// dst[view(i)] = a[i].
void ewise_setitem(const float* a, float* dst, const View& view);
// dst[view(i)] = value.
void scalar_setitem(float value, float* dst, const View& view);

}  // namespace needle_cpu
