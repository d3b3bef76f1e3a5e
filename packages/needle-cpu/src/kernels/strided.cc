#include "kernels/strided.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;
constexpr i64 kGrain = 1 << 15;

// Drop length-1 axes and merge axes that are contiguous with each other, so a view that is
// really a long run (or a 2-D block) is walked as one: fewer, longer inner loops.
// A view with no elements becomes shape (0,): the walks below divide by every dimension, and
// strides of an empty view are never checked against the buffer (any value, so stride * shape
// could overflow).
View simplify(const View& v) {
  View s;
  s.offset = v.offset;
  for (i64 n : v.shape)
    if (n == 0) {
      s.shape.push_back(0);
      s.strides.push_back(1);
      return s;
    }
  for (std::size_t d = 0; d < v.shape.size(); ++d) {
    if (v.shape[d] == 1) continue;
    i64 run;  // cannot overflow for a view the bindings checked; refuse to merge if it would anyway
    if (!s.shape.empty() && !__builtin_mul_overflow(v.strides[d], v.shape[d], &run) && s.strides.back() == run) {
      s.shape.back() *= v.shape[d];
      s.strides.back() = v.strides[d];
    } else {
      s.shape.push_back(v.shape[d]);
      s.strides.push_back(v.strides[d]);
    }
  }
  if (s.shape.empty()) {
    s.shape.push_back(1);
    s.strides.push_back(1);
  }
  return s;
}

enum class Mode { kGather, kScatter, kFill };

// Walk flat indices [lo, hi) of the view; `inner` handles one run along the last axis.
template <Mode M, class T>
void walk(const View& v, i64 lo, i64 hi, const T* compact_in, T* compact_out, T* strided, const T* strided_in,
          T value) {
  const int nd = static_cast<int>(v.shape.size());
  i64 idx[64];
  i64 pos = v.offset;
  i64 rem = lo;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % v.shape[d];
    rem /= v.shape[d];
    pos += idx[d] * v.strides[d];
  }
  const i64 len = v.shape[nd - 1], st = v.strides[nd - 1];
  i64 i = lo;
  while (i < hi) {
    i64 cnt = std::min(len - idx[nd - 1], hi - i);
    if (M == Mode::kGather) {
      T* o = compact_out + i;
      const T* s = strided_in + pos;
      if (st == 1) std::memcpy(o, s, cnt * sizeof(T));
      else if (st == 0) std::fill(o, o + cnt, *s);
      else for (i64 k = 0; k < cnt; ++k) o[k] = s[k * st];
    } else if (M == Mode::kScatter) {
      const T* a = compact_in + i;
      T* s = strided + pos;
      if (st == 1) std::memcpy(s, a, cnt * sizeof(T));
      else for (i64 k = 0; k < cnt; ++k) s[k * st] = a[k];  // st == 0: the last write wins, as in numpy
    } else {
      T* s = strided + pos;
      if (st == 1) std::fill(s, s + cnt, value);
      else for (i64 k = 0; k < cnt; ++k) s[k * st] = value;
    }
    i += cnt;
    pos += cnt * st;
    idx[nd - 1] += cnt;
    if (idx[nd - 1] == len && i < hi) {
      pos -= len * st;
      idx[nd - 1] = 0;
      for (int d = nd - 2; d >= 0; --d) {
        pos += v.strides[d];
        if (++idx[d] < v.shape[d]) break;
        pos -= v.shape[d] * v.strides[d];
        idx[d] = 0;
      }
    }
  }
}

i64 count(const View& v) {
  i64 n = 1;
  for (i64 s : v.shape) n *= s;
  return n;
}

// Scatters into a view with overlapping elements (a zero stride) must stay on one thread so
// that "the last write wins" is deterministic.
bool overlapping(const View& v) {
  for (std::size_t d = 0; d < v.shape.size(); ++d)
    if (v.strides[d] == 0 && v.shape[d] > 1) return true;
  return false;
}

// A view whose last two axes (Q, L) have strides (1, s != 1) is a transpose: gathering it
// element by element reads a new cache line per element. Copy it in T x T blocks instead,
// reading runs of Q and writing runs of L while both blocks sit in L1. Not for s == 0: that is a
// column broadcast, which the plain walk writes row by row (the blocks made it 2-5x slower).
bool transposed_tail(const View& v) {
  const std::size_t nd = v.shape.size();
  return nd >= 2 && v.strides[nd - 2] == 1 && v.strides[nd - 1] != 1 && v.strides[nd - 1] != 0 &&
         v.shape[nd - 2] >= 8 && v.shape[nd - 1] >= 8;
}

template <class E>
void compact_transposed(const E* src, E* out, const View& v) {
  constexpr i64 T = 32;
  const int nd = static_cast<int>(v.shape.size());
  const i64 Q = v.shape[nd - 2], L = v.shape[nd - 1], sl = v.strides[nd - 1];
  i64 outer = 1;
  for (int d = 0; d < nd - 2; ++d) outer *= v.shape[d];
  const i64 qblocks = (Q + T - 1) / T;
  parallel_for(outer * qblocks, std::max<i64>(1, kGrain / (T * L)), [&](i64 lo, i64 hi) {
    for (i64 t = lo; t < hi; ++t) {
      i64 o = t / qblocks, q0 = t % qblocks * T, q1 = std::min(Q, q0 + T);
      i64 base = v.offset, rem = o;
      for (int d = nd - 3; d >= 0; --d) {
        base += rem % v.shape[d] * v.strides[d];
        rem /= v.shape[d];
      }
      E* dst = out + o * Q * L;
      for (i64 l0 = 0; l0 < L; l0 += T) {
        i64 l1 = std::min(L, l0 + T);
        for (i64 l = l0; l < l1; ++l) {
          const E* s = src + base + l * sl;
          for (i64 q = q0; q < q1; ++q) dst[q * L + l] = s[q];
        }
      }
    }
  });
}

template <class T>
void compact_typed(const T* src, T* out, const View& view) {
  View v = simplify(view);
  i64 n = count(v);
  if (n == 0) return;
  if (transposed_tail(v)) return compact_transposed(src, out, v);
  parallel_for(n, kGrain, [&](i64 lo, i64 hi) { walk<Mode::kGather, T>(v, lo, hi, nullptr, out, nullptr, src, T()); }, 16);
}

template <class T>
void setitem_typed(const T* a, T* dst, const View& view) {
  View v = simplify(view);
  i64 n = count(v);
  if (n == 0) return;
  if (overlapping(v)) return walk<Mode::kScatter, T>(v, 0, n, a, nullptr, dst, nullptr, T());
  parallel_for(n, kGrain, [&](i64 lo, i64 hi) { walk<Mode::kScatter, T>(v, lo, hi, a, nullptr, dst, nullptr, T()); }, 16);
}

template <class T>
void fill_typed(T value, T* dst, const View& view) {
  View v = simplify(view);
  i64 n = count(v);
  if (n == 0) return;
  parallel_for(n, kGrain, [&](i64 lo, i64 hi) { walk<Mode::kFill, T>(v, lo, hi, nullptr, nullptr, dst, nullptr, value); });
}

// Calls f with a null pointer of the unsigned word type of `itemsize` bytes (the data only moves).
template <class F>
void by_width(std::size_t itemsize, F&& f) {
  if (itemsize == 1) f(static_cast<std::uint8_t*>(nullptr));
  else if (itemsize == 4) f(static_cast<std::uint32_t*>(nullptr));
  else f(static_cast<std::uint64_t*>(nullptr));
}

}  // namespace

void compact(const void* src, void* out, const View& view, std::size_t itemsize) {
  by_width(itemsize, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    compact_typed(static_cast<const T*>(src), static_cast<T*>(out), view);
  });
}

void ewise_setitem(const void* a, void* dst, const View& view, std::size_t itemsize) {
  by_width(itemsize, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    setitem_typed(static_cast<const T*>(a), static_cast<T*>(dst), view);
  });
}

void scalar_setitem(const void* value, void* dst, const View& view, std::size_t itemsize) {
  by_width(itemsize, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T v;
    std::memcpy(&v, value, sizeof(T));
    fill_typed(v, static_cast<T*>(dst), view);
  });
}

}  // namespace needle_cpu
