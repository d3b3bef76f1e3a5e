// The GEMM loop nest (Goto/BLIS): for each NC-wide column block of B and KC-deep slice,
// pack B into NR-wide panels (shared by all threads, sized for L3/L2), then each thread packs
// MC x KC blocks of A into MR-tall panels (L2) and runs the micro-kernel over MR x NR tiles of C
// (one B panel stays in L1 while the A block streams). Edge tiles go through a small buffer,
// or straight to C for kernels with masked edge tiles, so any m, n, p works. Kernels that take
// strides (AVX-512) read a small B, and then A, in place: packing would cost as much as the
// product. Threads split the rows of C (or, for short wide products, its columns).
#include <algorithm>
#include <cstring>

#include "kernels/buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Block sizes for 32 KiB L1d / 512 KiB L2 per core: a 256 x 16 B panel is 16 KiB (L1), a
// 96 x 256 A block 96 KiB (L2), a 256 x 4096 B block 4 MiB (L3).
constexpr i64 kKC = 256, kMC = 96, kNC = 4096;
// Below this many multiply-adds one thread is faster than waking another.
constexpr i64 kParallelMacs = i64(1) << 19;
// B of at most this many floats (64 KiB) is not packed when the kernel can read it in place.
constexpr i64 kDirectB = i64(1) << 14;

MicroKernel pick_kernel() {
  const Isa isa = active_isa();
  if (isa == Isa::kAvx512) {
    MicroKernel k = avx512::gemm_kernel();
    if (k.fn != nullptr) return k;
  }
  if (isa == Isa::kAvx512 || isa == Isa::kAvx2) {
    MicroKernel k = avx2::gemm_kernel();
    if (k.fn != nullptr) return k;
  }
  return generic::gemm_kernel();
}

i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }
i64 round_up(i64 a, i64 b) { return ceil_div(a, b) * b; }
// Split `total` into equal blocks of at most `limit`, rounded up to a multiple of `unit`.
i64 even_block(i64 total, i64 limit, i64 unit) {
  return std::max<i64>(unit, round_up(ceil_div(total, ceil_div(total, limit)), unit));
}

// MR-tall panels of the mc x kc block of A at `a` (row stride lda), zero-padded to whole panels.
void pack_a(const float* a, i64 lda, i64 mc, i64 kc, const MicroKernel& uk, float* dst) {
  const int mr = uk.mr;
  for (i64 r = 0; r < mc; r += mr) {
    i64 rows = std::min<i64>(mr, mc - r);
    float* d = dst + r * kc;
    if (rows == mr && uk.pack_a != nullptr) {
      uk.pack_a(a + r * lda, lda, kc, d);
    } else if (rows < mr && uk.pack_a_edge != nullptr) {
      uk.pack_a_edge(a + r * lda, lda, kc, static_cast<int>(rows), d);
    } else if (rows == mr) {
      for (i64 k = 0; k < kc; ++k)
        for (int i = 0; i < mr; ++i) d[k * mr + i] = a[(r + i) * lda + k];
    } else {
      for (i64 k = 0; k < kc; ++k)
        for (int i = 0; i < mr; ++i) d[k * mr + i] = i < rows ? a[(r + i) * lda + k] : 0.0f;
    }
  }
}

// NR-wide panels [j0, j1) of the kc x nc block of B at `b` (row stride ldb), zero-padded. Rows
// are walked in the outer loop so B is read sequentially (one panel at a time would touch one
// cache line in each of kc rows, kc * ldb apart).
void pack_b_panels(const float* b, i64 ldb, i64 kc, i64 nc, int nr, i64 j0, i64 j1, float* dst) {
  for (i64 k = 0; k < kc; ++k) {
    const float* src = b + k * ldb;
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * nr, cols = std::min<i64>(nr, nc - c0);
      float* d = dst + (j * kc + k) * nr;
      if (cols == nr) {
        std::memcpy(d, src + c0, nr * sizeof(float));
      } else {
        std::memcpy(d, src + c0, cols * sizeof(float));
        std::memset(d + cols, 0, (nr - cols) * sizeof(float));
      }
    }
  }
}

struct Workspace {
  float* p;
  std::size_t n;
  explicit Workspace(std::size_t count) : p(count > 0 ? alloc_floats(count) : nullptr), n(count) {}
  ~Workspace() {
    if (p != nullptr) free_floats(p, n);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Per-thread scratch for packed A blocks; pool threads persist, so it is allocated once.
float* thread_a_buffer(std::size_t count) {
  struct Scratch {
    float* p = nullptr;
    std::size_t n = 0;
    ~Scratch() { free_floats(p, n); }
  };
  thread_local Scratch s;
  if (s.n < count) {
    free_floats(s.p, s.n);
    s.p = nullptr;
    s.n = 0;
    s.p = alloc_floats(count);
    s.n = count;
  }
  return s.p;
}

}  // namespace

void sgemm(i64 m, i64 n, i64 p, const float* A, i64 lda, const float* B, i64 ldb, float* C, i64 ldc,
           const float* bias, int nthreads) {
  if (m <= 0 || p <= 0) return;
  // C starts as the bias rows (or zeros when n == 0); then every k-slice accumulates into it.
  if (bias != nullptr || n <= 0) {
    for (i64 i = 0; i < m; ++i) {
      if (bias != nullptr) std::memcpy(C + i * ldc, bias, p * sizeof(float));
      else std::memset(C + i * ldc, 0, p * sizeof(float));
    }
    if (n <= 0) return;
  }
  const MicroKernel uk = pick_kernel();
  const int mr = uk.mr, nr = uk.nr;
  const i64 kcb = even_block(n, uk.kc > 0 ? uk.kc : kKC, 1);
  const i64 ncb = even_block(p, kNC, nr);
  const i64 panels_max = ceil_div(std::min(ncb, round_up(p, nr)), nr);

  int nt = nthreads > 0 ? nthreads : num_threads();
  if (m * n * p < kParallelMacs) nt = 1;

  // Work is handed out as chunks (a block of rows x a group of B panels) from a shared counter,
  // about four per thread: no barrier, and a thread the OS has not scheduled yet simply gets
  // fewer chunks instead of stalling the others.
  const i64 row_units = ceil_div(m, mr);
  const i64 want = nt > 1 ? 4 * nt : 1;
  // Row chunks differ by at most one MR unit, so equal numbers of chunks mean equal work.
  const i64 n_row_chunks = std::min(row_units, want);
  const i64 rows_per = ceil_div(row_units, n_row_chunks) * mr;  // the largest chunk
  const i64 col_groups = std::max<i64>(1, std::min(panels_max, ceil_div(want, n_row_chunks)));

  // A small B (L1/L2-resident) is read in place by kernels that take a B row stride: packing
  // it would cost about as much as the product itself.
  const bool direct_b = uk.tile != nullptr && n * p <= kDirectB;
  Workspace bpack(direct_b ? 0 : static_cast<std::size_t>(kcb * panels_max * nr));
  // Then A is read in place too (each block of its rows meets few B panels).
  const bool direct_a = direct_b && uk.tile_row_a != nullptr;
  // even_block(t, kMC, mr) <= round_up(min(t, kMC), mr) for every chunk's t <= rows_per.
  // (+ 8: a vector pack_a may store a few floats past the last panel.)
  const std::size_t a_need = static_cast<std::size_t>(round_up(std::min<i64>(kMC, rows_per), mr) * kcb) + 8;

  for (i64 jc = 0; jc < p; jc += ncb) {
    const i64 nc = std::min(ncb, p - jc);
    const i64 panels = ceil_div(nc, nr);
    for (i64 pc = 0; pc < n; pc += kcb) {
      const i64 kc = std::min(kcb, n - pc);
      const bool accumulate = pc > 0 || bias != nullptr;
      const float* bsrc = B + pc * ldb + jc;

      const i64 pack_chunks = nt > 1 ? std::min(panels, want) : 1;
      if (!direct_b) parallel_chunks(nt, pack_chunks, [&](i64 c) {
        i64 q0, q1;
        split_range(panels, c, pack_chunks, 1, &q0, &q1);
        if (uk.pack_b != nullptr) uk.pack_b(bsrc, ldb, kc, nc, q0, q1, bpack.p);
        else pack_b_panels(bsrc, ldb, kc, nc, nr, q0, q1, bpack.p);
      });

      const i64 groups = std::min(col_groups, panels);
      parallel_chunks(nt, n_row_chunks * groups, [&](i64 c) {
        i64 r0, r1, q0, q1;
        split_range(row_units, c / groups, n_row_chunks, 1, &r0, &r1);
        r0 *= mr;
        r1 = std::min(m, r1 * mr);
        split_range(panels, c % groups, groups, 1, &q0, &q1);
        const i64 mcb = even_block(r1 - r0, kMC, mr);
        float* apack = thread_a_buffer(a_need);
        alignas(64) float edge[16 * 16];
        for (i64 ic = r0; ic < r1; ic += mcb) {
          const i64 mc = std::min(mcb, r1 - ic);
          if (!direct_a) pack_a(A + ic * lda + pc, lda, mc, kc, uk, apack);
          for (i64 j = q0; j < q1; ++j) {
            const i64 cols = std::min<i64>(nr, nc - j * nr);
            const float* bp = direct_b ? bsrc + j * nr : bpack.p + j * kc * nr;
            const i64 rs_b = direct_b ? ldb : nr;
            for (i64 ir = 0; ir < mc; ir += mr) {
              const i64 rows = std::min<i64>(mr, mc - ir);
              float* cp = C + (ic + ir) * ldc + jc + j * nr;
              const float* ap = apack + ir * kc;
              if (direct_a) {
                uk.tile_row_a(kc, A + (ic + ir) * lda + pc, lda, bp, rs_b, cp, ldc, accumulate, static_cast<int>(rows),
                              static_cast<int>(cols));
              } else if (uk.tile != nullptr) {
                uk.tile(kc, ap, bp, rs_b, cp, ldc, accumulate, static_cast<int>(rows), static_cast<int>(cols));
              } else if (rows == mr && cols == nr) {
                uk.fn(kc, ap, bp, cp, ldc, accumulate);
              } else {
                uk.fn(kc, ap, bp, edge, nr, false);
                for (i64 r = 0; r < rows; ++r)
                  for (i64 q = 0; q < cols; ++q)
                    cp[r * ldc + q] = accumulate ? cp[r * ldc + q] + edge[r * nr + q] : edge[r * nr + q];
              }
            }
          }
        }
      });
    }
  }
}

void sgemm_batched(i64 batch, i64 m, i64 n, i64 p, const float* A, const float* B, float* C) {
  if (batch <= 0) return;
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
