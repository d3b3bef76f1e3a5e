#include "kernels/ewise_strided.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;
constexpr i64 kGrain = 1 << 14;  // elements per thread before a second thread pays off

// Axes of both views, length-1 axes dropped and neighbours merged where both views are
// contiguous across them, so a row broadcast over a matrix is walked as (rows, cols).
struct Joint {
  std::vector<i64> shape, sa, sb;
};

Joint merge(const View& a, const View& b) {
  Joint j;
  for (std::size_t d = 0; d < a.shape.size(); ++d) {
    i64 n = a.shape[d];
    if (n == 1) continue;
    if (!j.shape.empty() && j.sa.back() == a.strides[d] * n && j.sb.back() == b.strides[d] * n) {
      j.shape.back() *= n;
      j.sa.back() = a.strides[d];
      j.sb.back() = b.strides[d];
    } else {
      j.shape.push_back(n);
      j.sa.push_back(a.strides[d]);
      j.sb.push_back(b.strides[d]);
    }
  }
  if (j.shape.empty()) {
    j.shape.push_back(1);
    j.sa.push_back(0);
    j.sb.push_back(0);
  }
  return j;
}

template <class F>
inline void row(F f, const float* a, i64 sa, const float* b, i64 sb, float* out, i64 n) {
  // The common layouts get loops the compiler vectorises: both contiguous, or one a scalar.
  if (sa == 1 && sb == 1) {
    for (i64 i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float y = *b;
    for (i64 i = 0; i < n; ++i) out[i] = f(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const float x = *a;
    for (i64 i = 0; i < n; ++i) out[i] = f(x, b[i]);
  } else {
    for (i64 i = 0; i < n; ++i) out[i] = f(a[i * sa], b[i * sb]);
  }
}

template <class F>
void run(F f, const float* a, const View& av, const float* b, const View& bv, float* out) {
  Joint j = merge(av, bv);
  const std::size_t nd = j.shape.size();
  const i64 inner = j.shape[nd - 1];
  i64 rows = 1;
  for (std::size_t d = 0; d + 1 < nd; ++d) rows *= j.shape[d];
  if (rows == 0 || inner == 0) return;
  const i64 grain = std::max<i64>(1, kGrain / inner);
  parallel_for(rows, grain, [&](i64 lo, i64 hi) {
    for (i64 r = lo; r < hi; ++r) {
      i64 oa = av.offset, ob = bv.offset, rem = r;
      for (std::size_t d = nd - 1; d-- > 0;) {  // the row's index along each outer axis
        const i64 k = rem % j.shape[d];
        rem /= j.shape[d];
        oa += k * j.sa[d];
        ob += k * j.sb[d];
      }
      row(f, a + oa, j.sa[nd - 1], b + ob, j.sb[nd - 1], out + r * inner, inner);
    }
  });
}

}  // namespace

void ewise_binary_strided_f32(StridedOp op, const float* a, const View& a_view, const float* b, const View& b_view,
                              float* out) {
  switch (op) {
    case StridedOp::kAdd: run([](float x, float y) { return x + y; }, a, a_view, b, b_view, out); break;
    case StridedOp::kSub: run([](float x, float y) { return x - y; }, a, a_view, b, b_view, out); break;
    case StridedOp::kMul: run([](float x, float y) { return x * y; }, a, a_view, b, b_view, out); break;
    case StridedOp::kDiv: run([](float x, float y) { return x / y; }, a, a_view, b, b_view, out); break;
  }
}

}  // namespace needle_cpu
