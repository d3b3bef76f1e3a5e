// Dispatch for the kernels on every dtype: the active ISA's table entry, with the work split
// across threads (elementwise in contiguous chunks, reductions by rows or, for one long row, in
// slices whose partial results are combined by the same kernel).
#include "kernels/typed.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

// As ewise.cc: below these sizes a second thread costs more than it saves.
constexpr i64 kGrainCheap = 1 << 15;
constexpr i64 kGrainCostly = 1 << 13;
// Chunks start at multiples of 64 elements: threads stay off each other's cache lines (bytes too).
constexpr i64 kAlign = 64;
// Below this many multiply-adds a matmul stays on one thread.
constexpr i64 kParallelMacs = i64(1) << 18;

const TypedTable* table() { return NEEDLE_CPU_PICK(typed_table); }

const char* at(const void* p, i64 i, std::size_t size) { return static_cast<const char*>(p) + i * static_cast<i64>(size); }
char* at(void* p, i64 i, std::size_t size) { return static_cast<char*>(p) + i * static_cast<i64>(size); }

// The libm functions (float64 math, powers) cost tens of cycles an element: thread sooner.
bool costly(TUnary op) { return op >= TUnary::kLog && op != TUnary::kRelu; }

}  // namespace

void typed_binary(TBinary op, DType dt, const void* a, const void* b, void* out, i64 n) {
  auto f = table()->binary[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, op == TBinary::kPower ? kGrainCostly : kGrainCheap, [&](i64 lo, i64 hi) {
    f(at(a, lo, s), at(b, lo, s), at(out, lo, s), hi - lo);
  }, kAlign);
}

void typed_compare(TCompare op, DType dt, const void* a, const void* b, std::uint8_t* out, i64 n) {
  auto f = table()->compare[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { f(at(a, lo, s), at(b, lo, s), out + lo, hi - lo); }, kAlign);
}

void typed_scalar(TScalar op, DType dt, const void* a, Scalar v, void* out, i64 n) {
  auto f = table()->scalar[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, op == TScalar::kPower ? kGrainCostly : kGrainCheap, [&](i64 lo, i64 hi) {
    f(at(a, lo, s), v, at(out, lo, s), hi - lo);
  }, kAlign);
}

void typed_scalar_compare(TCompare op, DType dt, const void* a, Scalar v, std::uint8_t* out, i64 n) {
  auto f = table()->scalar_compare[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { f(at(a, lo, s), v, out + lo, hi - lo); }, kAlign);
}

void typed_unary(TUnary op, DType dt, const void* a, void* out, i64 n) {
  auto f = table()->unary[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, costly(op) ? kGrainCostly : kGrainCheap, [&](i64 lo, i64 hi) {
    f(at(a, lo, s), at(out, lo, s), hi - lo);
  }, kAlign);
}

void typed_cast(DType from, DType to, const void* a, void* out, i64 n) {
  if (from == to && from != DType::kBool) return copy_bytes(a, out, static_cast<std::size_t>(n) * itemsize(from));
  auto f = table()->cast[int(from)][int(to)];
  const std::size_t sa = itemsize(from), so = itemsize(to);
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { f(at(a, lo, sa), at(out, lo, so), hi - lo); }, kAlign);
}

void typed_where(DType dt, const std::uint8_t* cond, const void* a, const void* b, void* out, i64 n) {
  auto f = table()->where[int(dt)];
  const std::size_t s = itemsize(dt);
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) {
    f(cond + lo, at(a, lo, s), at(b, lo, s), at(out, lo, s), hi - lo);
  }, kAlign);
}

void typed_fill(DType dt, Scalar v, void* out, i64 n) {
  visit_dtype(dt, [&](auto tag) {
    using T = storage_t<decltype(tag)::value>;
    T value;
    std::memcpy(&value, &v, sizeof(T));  // every member of Scalar starts at its first byte
    T* o = static_cast<T*>(out);
    parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) { std::fill(o + lo, o + hi, value); }, kAlign);
  });
}

void copy_bytes(const void* a, void* out, std::size_t bytes) {
  if (a == out) return;
  parallel_for(static_cast<i64>(bytes), 4 * kGrainCheap, [&](i64 lo, i64 hi) {
    std::memmove(at(out, lo, 1), at(a, lo, 1), static_cast<std::size_t>(hi - lo));
  }, kAlign);
}

void typed_reduce(TReduce op, DType dt, const void* a, void* out, i64 rows, i64 len) {
  auto f = table()->reduce[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  if (rows == 1) {
    // One long row: slices reduced in parallel, then the partial results reduced alike (a wrapping
    // integer sum, a max or a min of partials is that of the row).
    int nt = threads_for(len, kGrainCheap);
    if (nt > 1) {
      nt = std::min(nt, 16);
      const i64 parts = 4 * nt;
      alignas(8) unsigned char partial[64 * 8];
      parallel_chunks(nt, parts, [&](i64 c) {
        i64 lo, hi;
        split_range(len, c, parts, kAlign, &lo, &hi);  // never empty: len > 2 * kGrainCheap
        f(at(a, lo, s), partial + c * s, 1, hi - lo);
      });
      f(partial, out, 1, parts);
      return;
    }
  }
  parallel_for(rows, std::max<i64>(1, kGrainCheap / std::max<i64>(len, 1)), [&](i64 lo, i64 hi) {
    f(at(a, lo * len, s), at(out, lo, s), hi - lo, len);
  });
}

void typed_arg(TArg op, DType dt, const void* a, i64* out, i64 rows, i64 len) {
  auto f = table()->arg[int(op)][int(dt)];
  const std::size_t s = itemsize(dt);
  if (rows == 1) {
    int nt = threads_for(len, kGrainCheap);
    if (nt > 1) {
      // Each slice's first extreme; the first extreme among them (slices in order) is the row's.
      nt = std::min(nt, 16);
      const i64 parts = 4 * nt;
      i64 start[64], local[64];
      alignas(8) unsigned char candidate[64 * 8];
      parallel_chunks(nt, parts, [&](i64 c) {
        i64 lo, hi;
        split_range(len, c, parts, kAlign, &lo, &hi);
        start[c] = lo;
        f(at(a, lo, s), &local[c], 1, hi - lo);
        std::memcpy(candidate + c * s, at(a, lo + local[c], s), s);
      });
      i64 best;
      f(candidate, &best, 1, parts);
      out[0] = start[best] + local[best];
      return;
    }
  }
  parallel_for(rows, std::max<i64>(1, kGrainCheap / std::max<i64>(len, 1)), [&](i64 lo, i64 hi) {
    f(at(a, lo * len, s), out + lo, hi - lo, len);
  });
}

namespace {
void matmul_rows(DType dt, const void* a, const void* b, void* c, i64 m, i64 n, i64 p) {
  auto f = table()->matmul[int(dt)];
  const i64 row_work = std::max<i64>(1, n * p);
  parallel_for(m, std::max<i64>(1, kParallelMacs / row_work), [&](i64 lo, i64 hi) {
    f(a, b, c, n, p, lo, hi);
  });
}
}  // namespace

// The float64 product: the packed, register-blocked GEMM of gemm.h (c never overlaps a or b:
// the bindings compute an aliased product into a scratch buffer).
void matmul_f64(const double* a, const double* b, double* c, i64 m, i64 n, i64 p) {
  gemm_f64(a, b, c, m, n, p);
}

void typed_matmul(DType dt, const void* a, const void* b, void* c, i64 m, i64 n, i64 p) {
  if (dt == DType::kFloat64)
    return matmul_f64(static_cast<const double*>(a), static_cast<const double*>(b), static_cast<double*>(c), m, n, p);
  matmul_rows(dt, a, b, c, m, n, p);
}

i64 first_bad_index(const i64* idx, i64 count, i64 rows) {
  for (i64 i = 0; i < count; ++i)
    if (idx[i] < 0 || idx[i] >= rows) return i;
  return -1;
}

void gather_rows(DType dt, const void* a, const i64* idx, void* out, i64 row_size, i64 count) {
  const std::size_t row_bytes = static_cast<std::size_t>(row_size) * itemsize(dt);
  if (row_bytes == 0) return;
  parallel_for(count, std::max<i64>(1, 4 * kGrainCheap / static_cast<i64>(row_bytes)), [&](i64 lo, i64 hi) {
    for (i64 i = lo; i < hi; ++i) std::memcpy(at(out, i, row_bytes), at(a, idx[i], row_bytes), row_bytes);
  });
}

void scatter_add_rows(DType dt, const void* g, const i64* idx, void* out, i64 row_size, i64 count) {
  auto f = table()->scatter_add[int(dt)];
  // Threads take column ranges, so repeated indices accumulate in order of i, race-free.
  const i64 grain = std::max<i64>(kAlign, kGrainCheap / std::max<i64>(count, 1));
  parallel_for(row_size, grain, [&](i64 c0, i64 c1) { f(g, idx, out, count, row_size, c0, c1); }, kAlign);
}

}  // namespace needle_cpu
