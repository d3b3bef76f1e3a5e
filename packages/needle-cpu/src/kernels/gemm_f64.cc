// The float64 GEMM loop nest: gemm.cc's design for doubles (B in KC-deep slices of NR-wide
// panels, A in MC x KC blocks of MR-tall panels, a micro-kernel over MR x NR tiles of C) with
// its three thread schedules: B read in place (small B), one block of C per thread packing its
// own operands (2 to kPrivateThreads threads), or B blocks packed by all threads together.
// Only row-major A, no bias: the float loop nest's transposed-A and bias paths have no double
// user yet.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu_features.h"
#include "kernels/gemm_f64.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Block sizes (doubles): a 256 x 16 B panel is 32 KiB, a 96 x 256 A block 192 KiB (L2), a
// 256 x 2048 B block 4 MiB (L3). Kernels may ask for other kc / mc.
constexpr i64 kKC = 256, kMC = 96, kNC = 2048;
// Below this many multiply-adds one thread is faster than waking another.
constexpr i64 kParallelMacs = i64(1) << 18;
#ifdef NEEDLE_GEMM_F64_TUNE  // a benchmark harness sweeps these
#define NEEDLE_TUNABLE(name, value) static const i64 name = std::getenv(#name) ? std::atoll(std::getenv(#name)) : (value)
#else
#define NEEDLE_TUNABLE(name, value) constexpr i64 name = (value)
#endif
// B of at most kDirectB doubles (64 KiB) is read in place by kernels that can; so is B of up to
// kDirectBRows doubles (1 MiB) with rows of at most kDirectCols doubles when A has at most
// kDirectRows rows (the float GEMM's limits, in bytes).
NEEDLE_TUNABLE(kDirectB, i64(1) << 13);
NEEDLE_TUNABLE(kDirectRows, 192);
NEEDLE_TUNABLE(kDirectCols, 128);
NEEDLE_TUNABLE(kDirectBRows, i64(1) << 17);
// With at most kPrivateThreads threads each packs its own blocks of A and B, B in blocks of at
// most kPrivateB doubles (2 MiB: fewer repacks of A; measured 2-4% faster than 512 KiB at n = 1024
// and 2048 on Zen 4 with 2 threads, and no slower than 4 or 8 MiB).
NEEDLE_TUNABLE(kPrivateThreads, 4);
NEEDLE_TUNABLE(kPrivateB, i64(1) << 18);
NEEDLE_TUNABLE(kTuneKC, 0);  // > 0: overrides the kernel's kc (benchmark sweeps only)
NEEDLE_TUNABLE(kTuneMC, 0);  // > 0: overrides the kernel's mc

MicroKernelF64 pick_kernel() { return NEEDLE_CPU_PICK(gemm_f64_kernel); }

i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
i64 round_up(i64 a, i64 b) { return ceil_div(a, b) * b; }
// Split `total` into equal blocks of at most `limit`, rounded up to a multiple of `unit`.
i64 even_block(i64 total, i64 limit, i64 unit) {
  return std::max<i64>(unit, round_up(ceil_div(total, ceil_div(total, limit)), unit));
}

// MR-tall panels of the mc x kc block of A (row stride lda) at `a`, zero-padded to whole panels.
void pack_a(const MicroKernelF64& uk, const double* a, i64 lda, i64 mc, i64 kc, double* dst) {
  const int mr = uk.mr;
  for (i64 r = 0; r < mc; r += mr) {
    const int rows = static_cast<int>(std::min<i64>(mr, mc - r));
    const double* src = a + r * lda;
    double* d = dst + r * kc;
    if (rows == mr && uk.pack_a != nullptr) {
      uk.pack_a(src, lda, kc, d);
    } else if (rows < mr && uk.pack_a_edge != nullptr) {
      uk.pack_a_edge(src, lda, kc, rows, d);
    } else {
      for (i64 k = 0; k < kc; ++k)
        for (int i = 0; i < mr; ++i) d[k * mr + i] = i < rows ? src[i * lda + k] : 0.0;
    }
  }
}

// NR-wide panels [j0, j1) of the kc x nc block of B at `b` (row stride ldb), zero-padded; rows
// in the outer loop so B is read sequentially.
void pack_b(const MicroKernelF64& uk, const double* b, i64 ldb, i64 kc, i64 nc, i64 j0, i64 j1, double* dst) {
  if (uk.pack_b != nullptr) {
    uk.pack_b(b, ldb, kc, nc, j0, j1, dst);
    return;
  }
  const int nr = uk.nr;
  for (i64 k = 0; k < kc; ++k) {
    const double* src = b + k * ldb;
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * nr, cols = std::min<i64>(nr, nc - c0);
      double* d = dst + (j * kc + k) * nr;
      std::memcpy(d, src + c0, cols * sizeof(double));
      if (cols < nr) std::memset(d + cols, 0, (nr - cols) * sizeof(double));
    }
  }
}

// 64-byte aligned doubles (aligned vector loads of packed panels).
double* alloc_doubles(std::size_t n) {
  return static_cast<double*>(::operator new(std::max<std::size_t>(n, 1) * sizeof(double), std::align_val_t(64)));
}
void free_doubles(double* p) { ::operator delete(p, std::align_val_t(64)); }

struct Workspace {
  double* p;
  explicit Workspace(std::size_t count) : p(alloc_doubles(count)) {}
  ~Workspace() { free_doubles(p); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Per-thread scratch (slot 0: packed A blocks, slot 1: a thread's own packed B panels); pool
// threads persist, so each is allocated once.
double* thread_buffer(int slot, std::size_t count) {
  struct Scratch {
    double* p = nullptr;
    std::size_t n = 0;
    ~Scratch() {
      if (p != nullptr) free_doubles(p);
    }
  };
  thread_local Scratch s[2];
  Scratch& b = s[slot];
  if (b.n < count) {
    if (b.p != nullptr) free_doubles(b.p);
    b.p = nullptr;
    b.n = 0;
    b.p = alloc_doubles(count);
    b.n = count;
  }
  return b.p;
}

// One product's operands and kernel, shared by every block of work.
struct Plan {
  MicroKernelF64 uk;
  const double* A;
  i64 lda;
  double* C;
  i64 ldc;
  i64 kc, mc;     // block sizes
  bool direct_a;  // tiles read A in place (only with B read in place)
};

// B's panels as the tiles read them: panel j at p + j * stride, its k rows rs doubles apart.
struct Panels {
  const double* p;
  i64 stride, rs;
};

// C[r0:r1, panels q0..q1 of the column block at jc (nc wide)] (+)= A[r0:r1, pc:pc+kc] @ those
// B panels: A packed in MC-row blocks (or read in place), then MR x NR tiles, one B panel at a
// time against the whole A block (the panel stays in L1/L2 while A streams).
void multiply_block(const Plan& x, i64 r0, i64 r1, i64 jc, i64 nc, i64 q0, i64 q1, i64 pc, i64 kc, Panels b,
                    bool accumulate) {
  const MicroKernelF64& uk = x.uk;
  const int mr = uk.mr, nr = uk.nr;
  const i64 mcb = even_block(r1 - r0, x.mc, mr);
  double* apack = x.direct_a ? nullptr : thread_buffer(0, static_cast<std::size_t>(mcb * kc));
  alignas(64) double edge[16 * 16];
  for (i64 ic = r0; ic < r1; ic += mcb) {
    const i64 mc = std::min(mcb, r1 - ic);
    if (!x.direct_a) pack_a(uk, x.A + ic * x.lda + pc, x.lda, mc, kc, apack);
    for (i64 j = q0; j < q1; ++j) {
      const int cols = static_cast<int>(std::min<i64>(nr, nc - j * nr));
      const double* bp = b.p + j * b.stride;
      for (i64 ir = 0; ir < mc; ir += mr) {
        const int rows = static_cast<int>(std::min<i64>(mr, mc - ir));
        double* cp = x.C + (ic + ir) * x.ldc + jc + j * nr;
        const double* ap = apack + ir * kc;
        if (x.direct_a) {
          uk.tile_row_a(kc, x.A + (ic + ir) * x.lda + pc, x.lda, bp, b.rs, cp, x.ldc, accumulate, rows, cols);
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

// C (m x p) = A (m x n) @ B (n x p) for n > 0; the first k slice stores, the others accumulate.
// Work is handed out as chunks from a shared counter, so a thread the OS has not scheduled yet
// simply gets fewer chunks. The schedules are gemm.cc's (measured there); see the file comment.
void gemm(i64 m, i64 n, i64 p, const double* A, const double* B, double* C) {
  const MicroKernelF64 uk = pick_kernel();
  const int mr = uk.mr, nr = uk.nr;
  const i64 kc_limit = kTuneKC > 0 ? kTuneKC : uk.kc > 0 ? uk.kc : kKC;
  const i64 mc_limit = kTuneMC > 0 ? kTuneMC : uk.mc > 0 ? uk.mc : kMC;
  Plan x{uk, A, n, C, p, even_block(n, kc_limit, 1), mc_limit, false};
  const i64 kcb = x.kc, ldb = p;
  const i64 panels_all = ceil_div(p, nr);
  const i64 row_units = ceil_div(m, mr);

  int nt = num_threads();
  if (m * n * p < kParallelMacs) nt = 1;
  const i64 want = nt > 1 ? 4 * nt : 1;

  // A small B (L2-resident) is read in place by kernels that take a B row stride: packing it
  // costs about as much as the product when few rows of A share it.
  const bool direct_b = uk.tile != nullptr &&
                        (n * p <= kDirectB || (m <= kDirectRows && ldb <= kDirectCols && n * p <= kDirectBRows));
  if (direct_b) {
    x.direct_a = uk.tile_row_a != nullptr;
    const i64 row_chunks = std::min(row_units, want);
    const i64 groups = std::max<i64>(1, std::min(panels_all, ceil_div(want, row_chunks)));
    parallel_chunks(nt, row_chunks * groups, [&](i64 c) {
      i64 r0, r1, q0, q1;
      split_range(row_units, c / groups, row_chunks, 1, &r0, &r1);
      split_range(panels_all, c % groups, groups, 1, &q0, &q1);
      for (i64 pc = 0; pc < n; pc += kcb)
        multiply_block(x, r0 * mr, std::min(m, r1 * mr), 0, p, q0, q1, pc, std::min(kcb, n - pc),
                       Panels{B + pc * ldb, nr, ldb}, pc > 0);
    });
    return;
  }

  if (nt > 1 && nt <= kPrivateThreads) {
    // One block of C per thread, rg row groups x cg column groups: the grid using the most
    // threads, then with the least packing (n * (cg * m + rg * p)).
    i64 rg = 1, cg = 1;
    for (i64 c = 1; c <= std::min<i64>(nt, panels_all); ++c) {
      const i64 r = std::min<i64>(nt / c, row_units);
      if (r * c > rg * cg || (r * c == rg * cg && c * m + r * p < cg * m + rg * p)) rg = r, cg = c;
    }
    parallel_chunks(nt, rg * cg, [&](i64 g) {
      i64 r0, r1, q0, q1;
      split_range(row_units, g / cg, rg, 1, &r0, &r1);
      split_range(panels_all, g % cg, cg, 1, &q0, &q1);
      const i64 sub = even_block(q1 - q0, std::max<i64>(1, kPrivateB / (kcb * nr)), 1);
      double* bpack = thread_buffer(1, static_cast<std::size_t>(sub * kcb * nr));
      for (i64 qs = q0; qs < q1; qs += sub) {
        const i64 jc = qs * nr, nc = std::min(p - jc, std::min(sub, q1 - qs) * nr), panels = ceil_div(nc, nr);
        for (i64 pc = 0; pc < n; pc += kcb) {
          const i64 kc = std::min(kcb, n - pc);
          pack_b(uk, B + pc * ldb + jc, ldb, kc, nc, 0, panels, bpack);
          multiply_block(x, r0 * mr, std::min(m, r1 * mr), jc, nc, 0, panels, pc, kc, Panels{bpack, kc * nr, nr},
                         pc > 0);
        }
      }
    });
    return;
  }

  const i64 ncb = even_block(p, kNC, nr);
  const i64 panels_max = ceil_div(std::min(ncb, round_up(p, nr)), nr);
  const i64 row_chunks = std::min(row_units, want);
  const i64 col_groups = std::max<i64>(1, std::min(panels_max, ceil_div(want, row_chunks)));
  Workspace bpack(static_cast<std::size_t>(kcb * panels_max * nr));
  for (i64 jc = 0; jc < p; jc += ncb) {
    const i64 nc = std::min(ncb, p - jc);
    const i64 panels = ceil_div(nc, nr);
    for (i64 pc = 0; pc < n; pc += kcb) {
      const i64 kc = std::min(kcb, n - pc);
      const double* bsrc = B + pc * ldb + jc;
      const i64 pack_chunks = nt > 1 ? std::min(panels, want) : 1;
      parallel_chunks(nt, pack_chunks, [&](i64 c) {
        i64 q0, q1;
        split_range(panels, c, pack_chunks, 1, &q0, &q1);
        pack_b(uk, bsrc, ldb, kc, nc, q0, q1, bpack.p);
      });
      const i64 groups = std::min(col_groups, panels);
      parallel_chunks(nt, row_chunks * groups, [&](i64 c) {
        i64 r0, r1, q0, q1;
        split_range(row_units, c / groups, row_chunks, 1, &r0, &r1);
        split_range(panels, c % groups, groups, 1, &q0, &q1);
        multiply_block(x, r0 * mr, std::min(m, r1 * mr), jc, nc, q0, q1, pc, kc, Panels{bpack.p, kc * nr, nr},
                       pc > 0);
      });
    }
  }
}

}  // namespace

void gemm_f64(const double* a, const double* b, double* c, i64 m, i64 n, i64 p) {
  if (m <= 0 || p <= 0) return;
  if (n <= 0) {
    std::memset(c, 0, static_cast<std::size_t>(m * p) * sizeof(double));
    return;
  }
  gemm(m, n, p, a, b, c);
}

}  // namespace needle_cpu
