#include "kernels/ewise.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu_features.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Below these sizes a second thread costs more than it saves (memory-bound vs compute-bound).
constexpr i64 kGrainCheap = 1 << 15;
constexpr i64 kGrainCostly = 1 << 13;

const EwiseTable* table() { return NEEDLE_CPU_PICK(ewise_table); }

bool costly(Unary op) {
  return op == Unary::kLog || op == Unary::kExp || op == Unary::kTanh || op == Unary::kSigmoid;
}

}  // namespace

void ewise_binary(Binary op, const float* a, const float* b, float* out, i64 n) {
  auto f = table()->binary[static_cast<int>(op)];
  i64 grain = op == Binary::kPower ? kGrainCostly : kGrainCheap;
  parallel_for(n, grain, [&](i64 lo, i64 hi) { f(a + lo, b + lo, out + lo, hi - lo); }, 16);
}

void ewise_scalar(ScalarOp op, const float* a, float v, float* out, i64 n) {
  const EwiseTable* t = table();
  // Powers with cheap exact forms skip powf (the common x**2 and x**0.5 of training code).
  if (op == ScalarOp::kPower) {
    if (v == 1.0f) return copy(a, out, n);
    if (v == 2.0f)
      return parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) {
        t->binary[static_cast<int>(Binary::kMul)](a + lo, a + lo, out + lo, hi - lo);
      }, 16);
    if (v == 0.5f) return ewise_unary(Unary::kSqrt, a, out, n);
    if (v == -1.0f) return ewise_scalar(ScalarOp::kRdiv, a, 1.0f, out, n);
  }
  auto f = t->scalar[static_cast<int>(op)];
  i64 grain = op == ScalarOp::kPower ? kGrainCostly : kGrainCheap;
  parallel_for(n, grain, [&](i64 lo, i64 hi) { f(a + lo, v, out + lo, hi - lo); }, 16);
}

void ewise_unary(Unary op, const float* a, float* out, i64 n) {
  auto f = table()->unary[static_cast<int>(op)];
  parallel_for(n, costly(op) ? kGrainCostly : kGrainCheap, [&](i64 lo, i64 hi) { f(a + lo, out + lo, hi - lo); }, 16);
}

void fill(float* out, float value, i64 n) {
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { std::fill(out + lo, out + hi, value); }, 16);
}

void copy(const float* a, float* out, i64 n) {
  if (a == out) return;
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { std::memmove(out + lo, a + lo, (hi - lo) * sizeof(float)); }, 16);
}

namespace {
template <class RowFn>
void reduce_rows(RowFn row, const float* a, float* out, i64 rows, i64 len) {
  if (rows == 1) {
    // One long row: each thread reduces a slice, then the partial results are combined.
    int nt = threads_for(len, kGrainCheap);
    if (nt <= 1) {
      out[0] = row(a, len);
      return;
    }
    float partial[64];
    nt = std::min(nt, 16);
    const std::int64_t parts = 4 * nt;  // several slices per thread: a late thread costs little
    parallel_chunks(nt, parts, [&](std::int64_t c) {
      i64 lo, hi;
      split_range(len, c, parts, 16, &lo, &hi);
      partial[c] = hi > lo ? row(a + lo, hi - lo) : 0.0f;
    });
    out[0] = row(partial, parts);
    return;
  }
  parallel_for(rows, std::max<i64>(1, kGrainCheap / std::max<i64>(len, 1)), [&](i64 lo, i64 hi) {
    for (i64 r = lo; r < hi; ++r) out[r] = row(a + r * len, len);
  });
}
}  // namespace

void reduce_sum(const float* a, float* out, i64 rows, i64 len) {
  if (len == 0) return fill(out, 0.0f, rows);
  auto row = table()->row_sum;
  reduce_rows(row, a, out, rows, len);
}

void reduce_max(const float* a, float* out, i64 rows, i64 len) {
  auto row = table()->row_max;
  reduce_rows(row, a, out, rows, len);
}

}  // namespace needle_cpu
