// The GEMM loop nest (Goto/BLIS), written once for float and double: B in KC-deep slices of
// NR-wide panels, A in MC x KC blocks of MR-tall panels (L2), and a micro-kernel over MR x NR
// tiles of C (one B panel stays in L1/L2 while the A block streams). Edge tiles go through a
// small buffer, or straight to C for kernels with masked edge tiles, so any m, n, p works. A may
// be given transposed (sgemm_tn): its panels are then plain copies, or it is read in place; B
// may be given transposed (sgemm_nt): always packed then.
// Threads split C three ways (see gemm()): B read in place with no packing at all (small B), one
// block of C per thread that packs its own operands (2 to kPrivateThreads threads), or B blocks
// packed by all threads together and rows split. The portable micro-kernels are here too.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Block sizes and thresholds per element type, for 32 KiB L1d / 512 KiB L2 per core. float: a
// 256 x 16 B panel is 16 KiB (L1), a 96 x 256 A block 96 KiB (L2), a 256 x 4096 B block 4 MiB
// (L3); double: 32 KiB, 192 KiB (L2) and a 256 x 2048 B block (4 MiB). Kernels may ask for
// other kc / mc.
//  - kParallelMacs: below this many multiply-adds one thread is faster than waking another.
//  - B of at most kDirectB elements (64 KiB) is read in place by kernels that can; so is B of up
//    to kDirectBRows elements (1 MiB) with rows of at most kDirectCols elements when A has at
//    most kDirectRows rows (measured on float: 2x faster at 2 threads for 64 x 784 x 128; wider
//    rows, 2 KiB apart, or more rows of A reusing B are faster packed). On Zen 5 (48 KiB L1d,
//    1 MiB L2) float B of any size is read in place when A has at most kDirectAnyRows rows:
//    measured 15-50% less CPU time per product for the MLP's x @ W at m = 16 and 64 (784 x 512
//    to 1024 x 1024 weights), no slower at 96 to 192 rows; those products are split by columns
//    only up to kDirectSplitRows rows (each thread reads its own columns of B once, instead of
//    both threads reading all of B for half the rows).
//  - sgemm_nt with at most kNarrowB rows of A and a depth of at least kSwapDepth computes the
//    transposed product, reading the large B^T in place (see sgemm_nt).
//  - With at most kPrivateThreads threads each packs its own blocks of A and B, B in blocks of at
//    most kPrivateB elements (float: 512 KiB, L2-resident; double: 2 MiB, fewer repacks of A:
//    measured 2-4% faster than 512 KiB at n = 1024 and 2048 on Zen 4 with 2 threads, and no
//    slower than 4 or 8 MiB).
template <class T>
struct Blocking;
template <>
struct Blocking<float> {
  static constexpr i64 kKC = 256, kMC = 96, kNC = 4096, kParallelMacs = i64(1) << 19;
  static constexpr i64 kDirectB = i64(1) << 14, kDirectRows = 192, kDirectCols = 256, kDirectBRows = i64(1) << 18;
  static constexpr i64 kDirectAnyRows = 192, kDirectSplitRows = 128, kNarrowB = 64, kSwapDepth = 256;
  static constexpr i64 kPrivateThreads = 4, kPrivateB = i64(1) << 17;
};
template <>
struct Blocking<double> {
  static constexpr i64 kKC = 256, kMC = 96, kNC = 2048, kParallelMacs = i64(1) << 18;
  static constexpr i64 kDirectB = i64(1) << 13, kDirectRows = 192, kDirectCols = 128, kDirectBRows = i64(1) << 17;
  static constexpr i64 kDirectAnyRows = 0, kDirectSplitRows = 1, kNarrowB = 0, kSwapDepth = 0;
  static constexpr i64 kPrivateThreads = 4, kPrivateB = i64(1) << 18;
};

// A benchmark harness built with NEEDLE_GEMM_TUNE sweeps these through environment variables of
// the same names (kKC and kMC override the kernel's kc and mc).
#ifdef NEEDLE_GEMM_TUNE
i64 tunable(const char* name, i64 value) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoll(v) : value;
}
#else
constexpr i64 tunable(const char*, i64 value) { return value; }
#endif
#define NEEDLE_TUNABLE(T, name) tunable(#name, Blocking<T>::name)

}  // namespace

// The portable micro-kernels: plain loops the compiler keeps in (SSE2, on baseline x86-64)
// registers, 4x8 for float and 4x4 for double.
namespace generic {
namespace {
template <class T, int MR, int NR>
void kernel_ref(i64 kc, const T* __restrict Ap, const T* __restrict Bp, T* C, i64 ldc, bool accumulate) {
  T acc[MR][NR] = {};
  for (i64 k = 0; k < kc; ++k) {
    const T* a = Ap + k * MR;
    const T* b = Bp + k * NR;
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
  for (int r = 0; r < MR; ++r) {
    T* row = C + r * ldc;
    if (accumulate) for (int c = 0; c < NR; ++c) row[c] += acc[r][c];
    else for (int c = 0; c < NR; ++c) row[c] = acc[r][c];
  }
}
}  // namespace
MicroKernel gemm_kernel() { return {4, 8, kernel_ref<float, 4, 8>}; }
MicroKernelF64 gemm_f64_kernel() { return {4, 4, kernel_ref<double, 4, 4>}; }
}  // namespace generic

namespace {

template <class T>
MicroKernelT<T> pick_kernel();
template <>
MicroKernel pick_kernel<float>() { return NEEDLE_CPU_PICK(gemm_kernel); }
template <>
MicroKernelF64 pick_kernel<double>() { return NEEDLE_CPU_PICK(gemm_f64_kernel); }

i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
i64 round_up(i64 a, i64 b) { return ceil_div(a, b) * b; }
// Split `total` into equal blocks of at most `limit`, rounded up to a multiple of `unit`.
i64 even_block(i64 total, i64 limit, i64 unit) {
  return std::max<i64>(unit, round_up(ceil_div(total, ceil_div(total, limit)), unit));
}

// A (m x n) read in place: element (i, k) at p[i * rs + k * cs]; row-major (cs == 1) or
// transposed (rs == 1, the n x m matrix A^T stored with row stride cs).
template <class T>
struct AView {
  const T* p;
  i64 rs, cs;
  bool transposed() const { return cs != 1; }
  const T* at(i64 i, i64 k) const { return p + i * rs + k * cs; }
};

// MR-tall panels of the mc x kc block of A at rows i0, k-slice k0, zero-padded to whole panels.
// A row-major block is a transpose (the kernel's pack_a when it has one); a transposed A already
// holds each k's rows contiguously, so its panels are plain copies.
template <class T>
void pack_a(const AView<T>& A, i64 i0, i64 k0, i64 mc, i64 kc, const MicroKernelT<T>& uk, T* dst) {
  const int mr = uk.mr;
  for (i64 r = 0; r < mc; r += mr) {
    const i64 rows = std::min<i64>(mr, mc - r);
    const T* a = A.at(i0 + r, k0);
    T* d = dst + r * kc;
    if (A.transposed()) {
      for (i64 k = 0; k < kc; ++k) {
        std::memcpy(d + k * mr, a + k * A.cs, rows * sizeof(T));
        if (rows < mr) std::memset(d + k * mr + rows, 0, (mr - rows) * sizeof(T));
      }
    } else if (rows == mr && uk.pack_a != nullptr) {
      uk.pack_a(a, A.rs, kc, d);
    } else if (rows < mr && uk.pack_a_edge != nullptr) {
      uk.pack_a_edge(a, A.rs, kc, static_cast<int>(rows), d);
    } else {
      for (i64 k = 0; k < kc; ++k)
        for (int i = 0; i < mr; ++i) d[k * mr + i] = i < rows ? a[i * A.rs + k] : T(0);
    }
  }
}

// B (n x p) as the loop nest reads it: element (k, j) at p[k * rs + j * cs]; row-major (cs == 1)
// or transposed (rs == 1, the p x n matrix B^T stored with row stride cs, as in sgemm_nt).
template <class T>
struct BView {
  const T* p;
  i64 rs, cs;
  bool transposed() const { return cs != 1; }
  const T* at(i64 k, i64 j) const { return p + k * rs + j * cs; }
};

// NR-wide panels [j0, j1) of the kc x nc block of B starting at `b`, zero-padded. Rows are
// walked in the outer loop so B is read sequentially (one panel at a time would touch one cache
// line in each of kc rows, kc * ldb apart). A transposed B holds each panel column's k values
// contiguously: a few of its rows at a time are transposed into the (L1-resident) panel, which
// the kernels' pack_b does not do.
template <class T>
void pack_b(const MicroKernelT<T>& uk, const BView<T>& B, const T* b, i64 kc, i64 nc, i64 j0, i64 j1, T* dst) {
  const int nr = uk.nr;
  if (B.transposed()) {
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * nr, cols = std::min<i64>(nr, nc - c0);
      T* d = dst + j * kc * nr;
      // Eight (then four) rows of B^T at a time, so each store line of the panel is filled by
      // one pass over k: measured 1.5-2.5x faster than one row at a time for m = 16.
      i64 c = 0;
      for (; c + 8 <= cols; c += 8) {
        const T* s0 = b + (c0 + c) * B.cs;
        for (i64 k = 0; k < kc; ++k) {
          T* o = d + k * nr + c;
          for (int i = 0; i < 8; ++i) o[i] = s0[i * B.cs + k];
        }
      }
      for (; c + 4 <= cols; c += 4) {
        const T* s0 = b + (c0 + c) * B.cs;
        const T* s1 = s0 + B.cs;
        const T* s2 = s1 + B.cs;
        const T* s3 = s2 + B.cs;
        for (i64 k = 0; k < kc; ++k) {
          T* o = d + k * nr + c;
          o[0] = s0[k], o[1] = s1[k], o[2] = s2[k], o[3] = s3[k];
        }
      }
      for (; c < cols; ++c) {
        const T* src = b + (c0 + c) * B.cs;
        for (i64 k = 0; k < kc; ++k) d[k * nr + c] = src[k];
      }
      for (; c < nr; ++c)  // zero padding
        for (i64 k = 0; k < kc; ++k) d[k * nr + c] = T(0);
    }
    return;
  }
  const i64 ldb = B.rs;
  if (uk.pack_b != nullptr) return uk.pack_b(b, ldb, kc, nc, j0, j1, dst);
  for (i64 k = 0; k < kc; ++k) {
    const T* src = b + k * ldb;
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * nr, cols = std::min<i64>(nr, nc - c0);
      T* d = dst + (j * kc + k) * nr;
      std::memcpy(d, src + c0, cols * sizeof(T));
      if (cols < nr) std::memset(d + cols, 0, (nr - cols) * sizeof(T));
    }
  }
}

// Scratch of `count` elements, 64-byte aligned (buffer.h: the cache and fault injection apply).
template <class T>
struct Workspace {
  T* p;
  std::size_t n;
  explicit Workspace(std::size_t count)
      : p(count > 0 ? static_cast<T*>(alloc_bytes(count * sizeof(T))) : nullptr), n(count) {}
  ~Workspace() {
    if (p != nullptr) free_bytes(p, n * sizeof(T));
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Per-thread scratch (slot 0: packed A blocks, slot 1: a thread's own packed B panels); pool
// threads persist, so each is allocated once (per element type).
template <class T>
T* thread_buffer(int slot, std::size_t count) {
  struct Scratch {
    T* p = nullptr;
    std::size_t n = 0;
    ~Scratch() {
      if (p != nullptr) free_bytes(p, n * sizeof(T));
    }
  };
  thread_local Scratch s[2];
  Scratch& b = s[slot];
  if (b.n < count) {
    if (b.p != nullptr) free_bytes(b.p, b.n * sizeof(T));
    b.p = nullptr;
    b.n = 0;
    b.p = static_cast<T*>(alloc_bytes(count * sizeof(T)));
    b.n = count;
  }
  return b.p;
}

// One product's operands and kernel, shared by every block of work.
template <class T>
struct Plan {
  MicroKernelT<T> uk;
  AView<T> A;
  T* C;
  i64 ldc;
  i64 mc;         // the tallest block of A packed at once
  bool direct_a;  // tiles read A in place (only with B read in place)
};

// B's panels as the tiles read them: panel j at p + j * stride, its k rows rs elements apart.
template <class T>
struct Panels {
  const T* p;
  i64 stride, rs;
};

// C[r0:r1, panels q0..q1 of the column block at jc (nc wide)] (+)= A[r0:r1, pc:pc+kc] @ those
// B panels: A packed in MC-row blocks (or read in place), then MR x NR tiles, one B panel at a
// time against the whole A block (the panel stays in L1/L2 while A streams).
template <class T>
void multiply_block(const Plan<T>& x, i64 r0, i64 r1, i64 jc, i64 nc, i64 q0, i64 q1, i64 pc, i64 kc,
                    Panels<T> b, bool accumulate) {
  const MicroKernelT<T>& uk = x.uk;
  const int mr = uk.mr, nr = uk.nr;
  const i64 mcb = even_block(r1 - r0, x.mc, mr);
  // (+ 8: a vector pack_a may store a few elements past the last panel.)
  T* apack = x.direct_a ? nullptr : thread_buffer<T>(0, static_cast<std::size_t>(mcb * kc) + 8);
  alignas(64) T edge[16 * 16];
  for (i64 ic = r0; ic < r1; ic += mcb) {
    const i64 mc = std::min(mcb, r1 - ic);
    if (!x.direct_a) pack_a(x.A, ic, pc, mc, kc, uk, apack);
    for (i64 j = q0; j < q1; ++j) {
      const int cols = static_cast<int>(std::min<i64>(nr, nc - j * nr));
      const T* bp = b.p + j * b.stride;
      for (i64 ir = 0; ir < mc; ir += mr) {
        const int rows = static_cast<int>(std::min<i64>(mr, mc - ir));
        T* cp = x.C + (ic + ir) * x.ldc + jc + j * nr;
        const T* ap = apack + ir * kc;
        if (x.direct_a && x.A.transposed()) {
          uk.tile_col_a(kc, x.A.at(ic + ir, pc), x.A.cs, bp, b.rs, cp, x.ldc, accumulate, rows, cols);
        } else if (x.direct_a) {
          uk.tile_row_a(kc, x.A.at(ic + ir, pc), x.A.rs, bp, b.rs, cp, x.ldc, accumulate, rows, cols);
        } else if (uk.tile != nullptr) {
          uk.tile(kc, ap, bp, b.rs, cp, x.ldc, accumulate, rows, cols);
        } else if (rows == mr && cols == nr) {
          uk.fn(kc, ap, bp, cp, x.ldc, accumulate);
        } else {
          uk.fn(kc, ap, bp, edge, nr, false);
          for (i64 r = 0; r < rows; ++r)
            for (i64 q = 0; q < cols; ++q)
              cp[r * x.ldc + q] = accumulate ? cp[r * x.ldc + q] + edge[r * nr + q] : edge[r * nr + q];
        }
      }
    }
  }
}

// C (m x p) (+)= A @ B (n x p, row stride ldb) for n > 0, C already holding the bias when
// `bias`. Work is handed out as chunks from a shared counter, so a thread the OS has not
// scheduled yet simply gets fewer chunks instead of stalling the others. Three schedules:
//  - B read in place (a small B, kernels taking a B stride): about four chunks of rows x
//    columns per thread over all of k, nothing packed or shared, no barrier (and A read in
//    place too when the kernel can);
//  - 2 to kPrivateThreads threads: one block of C per thread, each packing its own rows of A
//    and columns of B (no barrier; measured faster than sharing packed B at 2 threads from
//    64 x 784 x 128 to 2048^3, where one thread's B block stays in its L2);
//  - one thread, or more than kPrivateThreads: Goto's schedule, B blocks packed by all
//    threads together (A packed once per block of B), then rows split.
template <class T>
void gemm(i64 m, i64 n, i64 p, const AView<T>& A, const BView<T>& B, T* C, i64 ldc, bool bias, int nthreads) {
  const MicroKernelT<T> uk = pick_kernel<T>();
  const int mr = uk.mr, nr = uk.nr;
  const i64 kcb = even_block(n, tunable("kKC", uk.kc > 0 ? uk.kc : Blocking<T>::kKC), 1);
  Plan<T> x{uk, A, C, ldc, tunable("kMC", uk.mc > 0 ? uk.mc : Blocking<T>::kMC), false};
  const i64 panels_all = ceil_div(p, nr);
  const i64 row_units = ceil_div(m, mr);

  int nt = nthreads > 0 ? nthreads : num_threads();
  if (m * n * p < NEEDLE_TUNABLE(T, kParallelMacs)) nt = 1;
  const i64 want = nt > 1 ? 4 * nt : 1;

  // A small B (L2-resident) is read in place by kernels that take a B row stride: packing it
  // costs about as much as the product when few rows of A share it. (Not a transposed B: the
  // tiles read NR consecutive columns of a B row.)
  const i64 ldb = B.rs;
  const bool direct_b =
      uk.tile != nullptr && !B.transposed() && (n * p <= NEEDLE_TUNABLE(T, kDirectB) ||
                             (m <= NEEDLE_TUNABLE(T, kDirectRows) && ldb <= NEEDLE_TUNABLE(T, kDirectCols) &&
                              n * p <= NEEDLE_TUNABLE(T, kDirectBRows)) ||
                             m <= NEEDLE_TUNABLE(T, kDirectAnyRows));
  if (direct_b) {
    x.direct_a = (A.transposed() ? uk.tile_col_a : uk.tile_row_a) != nullptr;
    // Row chunks differ by at most one MR unit, so equal numbers of chunks mean equal work.
    const i64 row_chunks = std::min(ceil_div(m, NEEDLE_TUNABLE(T, kDirectSplitRows)), std::min(row_units, want));
    const i64 groups = std::max<i64>(1, std::min(panels_all, ceil_div(want, row_chunks)));
    parallel_chunks(nt, row_chunks * groups, [&](i64 c) {
      i64 r0, r1, q0, q1;
      split_range(row_units, c / groups, row_chunks, 1, &r0, &r1);
      split_range(panels_all, c % groups, groups, 1, &q0, &q1);
      for (i64 pc = 0; pc < n; pc += kcb)
        multiply_block(x, r0 * mr, std::min(m, r1 * mr), 0, p, q0, q1, pc, std::min(kcb, n - pc),
                       Panels<T>{B.at(pc, 0), nr, ldb}, pc > 0 || bias);
    });
    return;
  }

  // A narrow transposed B (sgemm_nt's swapped product: B^T is the few rows of a batch) is packed
  // whole once, then the tiles read A in place in row chunks: the large operand is never packed.
  if (B.transposed() && p <= NEEDLE_TUNABLE(T, kNarrowB) &&
      (A.transposed() ? uk.tile_col_a : uk.tile_row_a) != nullptr) {
    x.direct_a = true;
    Workspace<T> bpack(static_cast<std::size_t>(n * panels_all * nr));
    for (i64 pc = 0; pc < n; pc += kcb)
      pack_b(uk, B, B.at(pc, 0), std::min(kcb, n - pc), p, 0, panels_all, bpack.p + pc * panels_all * nr);
    const i64 row_chunks = std::min(row_units, want);
    parallel_chunks(nt, row_chunks, [&](i64 c) {
      i64 r0, r1;
      split_range(row_units, c, row_chunks, 1, &r0, &r1);
      for (i64 pc = 0; pc < n; pc += kcb) {
        const i64 kc = std::min(kcb, n - pc);
        multiply_block(x, r0 * mr, std::min(m, r1 * mr), 0, p, 0, panels_all, pc, kc,
                       Panels<T>{bpack.p + pc * panels_all * nr, kc * nr, nr}, pc > 0 || bias);
      }
    });
    return;
  }

  if (nt > 1 && nt <= NEEDLE_TUNABLE(T, kPrivateThreads)) {
    // One block of C per thread, rg row groups x cg column groups; a thread packs its own rows
    // of A and columns of B, so A is packed cg times and B rg times in all: the grid using the
    // most threads, then with the least packing (n * (cg * m + rg * p)).
    i64 rg = 1, cg = 1;
    for (i64 c = 1; c <= std::min<i64>(nt, panels_all); ++c) {
      const i64 r = std::min<i64>(nt / c, row_units);
      if (r * c > rg * cg || (r * c == rg * cg && c * m + r * p < cg * m + rg * p)) rg = r, cg = c;
    }
    const i64 private_b = NEEDLE_TUNABLE(T, kPrivateB);
    parallel_chunks(nt, rg * cg, [&](i64 g) {
      i64 r0, r1, q0, q1;
      split_range(row_units, g / cg, rg, 1, &r0, &r1);
      split_range(panels_all, g % cg, cg, 1, &q0, &q1);
      const i64 sub = even_block(q1 - q0, std::max<i64>(1, private_b / (kcb * nr)), 1);
      T* bpack = thread_buffer<T>(1, static_cast<std::size_t>(sub * kcb * nr));
      for (i64 qs = q0; qs < q1; qs += sub) {
        const i64 jc = qs * nr, nc = std::min(p - jc, std::min(sub, q1 - qs) * nr), panels = ceil_div(nc, nr);
        for (i64 pc = 0; pc < n; pc += kcb) {
          const i64 kc = std::min(kcb, n - pc);
          pack_b(uk, B, B.at(pc, jc), kc, nc, 0, panels, bpack);
          multiply_block(x, r0 * mr, std::min(m, r1 * mr), jc, nc, 0, panels, pc, kc,
                         Panels<T>{bpack, kc * nr, nr}, pc > 0 || bias);
        }
      }
    });
    return;
  }

  const i64 ncb = even_block(p, NEEDLE_TUNABLE(T, kNC), nr);
  const i64 panels_max = ceil_div(std::min(ncb, round_up(p, nr)), nr);
  const i64 row_chunks = std::min(row_units, want);
  const i64 col_groups = std::max<i64>(1, std::min(panels_max, ceil_div(want, row_chunks)));
  Workspace<T> bpack(static_cast<std::size_t>(kcb * panels_max * nr));
  for (i64 jc = 0; jc < p; jc += ncb) {
    const i64 nc = std::min(ncb, p - jc);
    const i64 panels = ceil_div(nc, nr);
    for (i64 pc = 0; pc < n; pc += kcb) {
      const i64 kc = std::min(kcb, n - pc);
      const T* bsrc = B.at(pc, jc);
      const i64 pack_chunks = nt > 1 ? std::min(panels, want) : 1;
      parallel_chunks(nt, pack_chunks, [&](i64 c) {
        i64 q0, q1;
        split_range(panels, c, pack_chunks, 1, &q0, &q1);
        pack_b(uk, B, bsrc, kc, nc, q0, q1, bpack.p);
      });
      const i64 groups = std::min(col_groups, panels);
      parallel_chunks(nt, row_chunks * groups, [&](i64 c) {
        i64 r0, r1, q0, q1;
        split_range(row_units, c / groups, row_chunks, 1, &r0, &r1);
        split_range(panels, c % groups, groups, 1, &q0, &q1);
        multiply_block(x, r0 * mr, std::min(m, r1 * mr), jc, nc, q0, q1, pc, kc, Panels<T>{bpack.p, kc * nr, nr},
                       pc > 0 || bias);
      });
    }
  }
}

// C = A @ B [+ bias] for any m, n, p >= 0: C starts as the bias rows (or zeros when n == 0),
// then every k-slice accumulates into it.
template <class T>
void gemm_into(i64 m, i64 n, i64 p, const AView<T>& A, const BView<T>& B, T* C, i64 ldc, const T* bias,
               int nthreads) {
  if (m <= 0 || p <= 0) return;
  if (bias != nullptr || n <= 0) {
    for (i64 i = 0; i < m; ++i) {
      if (bias != nullptr) std::memcpy(C + i * ldc, bias, p * sizeof(T));
      else std::memset(C + i * ldc, 0, p * sizeof(T));
    }
  }
  if (n > 0) gemm(m, n, p, A, B, C, ldc, bias != nullptr, nthreads);
}

}  // namespace

void sgemm(i64 m, i64 n, i64 p, const float* A, i64 lda, const float* B, i64 ldb, float* C, i64 ldc,
           const float* bias, int nthreads) {
  gemm_into(m, n, p, AView<float>{A, lda, 1}, BView<float>{B, ldb, 1}, C, ldc, bias, nthreads);
}

void sgemm_tn(i64 m, i64 n, i64 p, const float* At, i64 lda, const float* B, i64 ldb, float* C, i64 ldc,
              const float* bias, int nthreads) {
  gemm_into(m, n, p, AView<float>{At, 1, lda}, BView<float>{B, ldb, 1}, C, ldc, bias, nthreads);
}

void sgemm_nt(i64 m, i64 n, i64 p, const float* A, i64 lda, const float* Bt, i64 ldb, float* C, i64 ldc,
              const float* bias, int nthreads) {
  // A few rows of A (a batch) against a large B^T (an input gradient g @ W^T): C^T = B^T @ A^T,
  // so the tiles read the large B^T in place and only the small A is packed (gemm's narrow-B
  // schedule); C^T goes through scratch and is transposed into C (worth it from a depth n of about
  // 256: the transpose costs m * p moves). Packing B^T cost as much as the product at m = 16.
  if (bias == nullptr && m > 0 && p > m && m <= NEEDLE_TUNABLE(float, kNarrowB) &&
      n >= NEEDLE_TUNABLE(float, kSwapDepth) && pick_kernel<float>().tile_row_a != nullptr) {
    Workspace<float> t(static_cast<std::size_t>(p * m));
    gemm(p, n, m, AView<float>{Bt, ldb, 1}, BView<float>{A, 1, lda}, t.p, m, false, nthreads);
    const float* src = t.p;
    parallel_for(ceil_div(p, 16), std::max<i64>(1, 4096 / m), [&](i64 lo, i64 hi) {
      for (i64 j0 = lo * 16; j0 < std::min(p, hi * 16); j0 += 16)
        for (i64 i = 0; i < m; ++i)
          for (i64 j = j0; j < std::min(p, j0 + 16); ++j) C[i * ldc + j] = src[j * m + i];
    });
    return;
  }
  gemm_into(m, n, p, AView<float>{A, lda, 1}, BView<float>{Bt, 1, ldb}, C, ldc, bias, nthreads);
}

void gemm_f64(const double* a, const double* b, double* c, i64 m, i64 n, i64 p) {
  gemm_into(m, n, p, AView<double>{a, n, 1}, BView<double>{b, p, 1}, c, p, static_cast<const double*>(nullptr), 0);
}

void sgemm_batched(i64 batch, i64 m, i64 n, i64 p, const float* A, const float* B, float* C) {
  if (batch <= 0) return;
  constexpr i64 kParallelMacs = Blocking<float>::kParallelMacs;
  if (m * n * p >= kParallelMacs || batch == 1) {
    for (i64 i = 0; i < batch; ++i) sgemm(m, n, p, A + i * m * n, n, B + i * n * p, p, C + i * m * p, p);
    return;
  }
  // Small matrices: one whole product per thread at a time.
  parallel_for(batch, std::max<i64>(1, kParallelMacs / std::max<i64>(1, m * n * p)), [&](i64 lo, i64 hi) {
    for (i64 i = lo; i < hi; ++i) sgemm(m, n, p, A + i * m * n, n, B + i * n * p, p, C + i * m * p, p, nullptr, 1);
  });
}

}  // namespace needle_cpu
