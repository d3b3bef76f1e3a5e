// AVX-512 double micro-kernels: MR x 16 tiles, MR x 2 zmm accumulators, two B vectors per k and
// A broadcast from memory (the float 12x32 kernel at double width). Edge tiles (fewer rows,
// fewer columns) run as their own template instances with masked B loads and masked C
// loads/stores, so they cost only their real work and never touch memory outside the tile.
// Compiled with -mavx512f -mavx512vl -mavx512dq -mfma; called only when the CPU has them.
#include "kernels/gemm.h"

#include <immintrin.h>

#include <cstdlib>
#include <utility>

namespace needle_cpu {
namespace avx512 {
namespace {

using i64 = std::int64_t;

// 12 x 16: 24 accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers; a 12-row A
// panel packs as three 4-row transposes.
constexpr int MR = 12, NR = 16;
// C's tile is prefetched this many k steps before the end of the k loop (measured on Zen 4, one
// thread, n = 2048: 32 or 128 steps 50 -> 52-53 GFLOP/s beside fetching it at the start; n = 1024
// unchanged; 16 and 256 slower).
#ifdef NEEDLE_GEMM_F64_TUNE
static const i64 kLate = std::getenv("kLate") ? std::atoll(std::getenv("kLate")) : 128;
#else
constexpr i64 kLate = 128;
#endif

// Where a tile reads A: a packed panel (row r's k-th value at Ap[k * MR + r]) or A in place,
// row-major (Ap[r * lda + k]).
enum class AFrom { kPacked, kRows };

// R rows x H 8-double halves; m0/m1 mask the columns of each half (all ones inside the panel).
// Full (R = MR, H = 2, no masks) uses plain loads and stores.
template <int R, int H, bool Full = false, AFrom From = AFrom::kPacked>
void tile_kernel(i64 kc, const double* __restrict Ap, i64 lda, const double* __restrict Bp, i64 rs_b, double* C,
                 i64 ldc, bool accumulate, __mmask8 m0, __mmask8 m1) {
  if (Full) m0 = m1 = 0xff;
  const i64 row_step = From == AFrom::kRows ? lda : 1;
  const i64 k_step = From == AFrom::kRows ? 1 : MR;
  __m512d c[R][H];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) c[r][h] = _mm512_setzero_pd();

  auto step = [&]() __attribute__((always_inline)) {
    __m512d b[H];
    if (Full) {
      b[0] = _mm512_loadu_pd(Bp);
      b[H - 1] = _mm512_loadu_pd(Bp + 8);
    } else {
      b[0] = _mm512_maskz_loadu_pd(m0, Bp);
      if (H > 1) b[H - 1] = _mm512_maskz_loadu_pd(m1, Bp + 8);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512d a = _mm512_set1_pd(Ap[r * row_step]);
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) c[r][h] = _mm512_fmadd_pd(a, b[h], c[r][h]);
    }
    Ap += k_step;
    Bp += rs_b;
  };
  // C's rows (two cache lines each when H == 2) are fetched kLate steps before the end: fetched
  // earlier, the A and B panels streaming through L1 would evict them again.
  const i64 k_fetch = kc > kLate ? kc - kLate : 0;
#pragma GCC unroll 2
  for (i64 k = 0; k < k_fetch; ++k) step();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    if (H > 1) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + 8), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (i64 k = k_fetch; k < kc; ++k) step();

#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) {
      double* row = C + r * ldc + 8 * h;
      const __mmask8 m = h == 0 ? m0 : m1;
      __m512d v = c[r][h];
      if (Full) {
        if (accumulate) v = _mm512_add_pd(v, _mm512_loadu_pd(row));
        _mm512_storeu_pd(row, v);
      } else {
        if (accumulate) v = _mm512_add_pd(v, _mm512_maskz_loadu_pd(m, row));
        _mm512_mask_storeu_pd(row, m, v);
      }
    }
}

using TileFn = void (*)(i64, const double*, i64, const double*, i64, double*, i64, bool, __mmask8, __mmask8);

template <int... Rs>
struct Table {
  static constexpr TileFn one[] = {tile_kernel<Rs + 1, 1>...};
  static constexpr TileFn two[] = {tile_kernel<Rs + 1, 2>...};
  static constexpr TileFn one_rows[] = {tile_kernel<Rs + 1, 1, false, AFrom::kRows>...};
  static constexpr TileFn two_rows[] = {tile_kernel<Rs + 1, 2, false, AFrom::kRows>...};
};
template <int... Rs>
Table<Rs...> make_table(std::integer_sequence<int, Rs...>);
using Tiles = decltype(make_table(std::make_integer_sequence<int, MR>{}));

__mmask8 first(int n) { return n >= 8 ? __mmask8(0xff) : __mmask8((1u << n) - 1); }

// Any rows x cols tile: the full one, or the masked instance for its edge.
template <AFrom From>
void any_tile(i64 kc, const double* Ap, i64 lda, const double* Bp, i64 rs_b, double* C, i64 ldc, bool accumulate,
              int rows, int cols) {
  constexpr const TileFn* one = From == AFrom::kPacked ? Tiles::one : Tiles::one_rows;
  constexpr const TileFn* two = From == AFrom::kPacked ? Tiles::two : Tiles::two_rows;
  if (rows == MR && cols == NR)
    tile_kernel<MR, 2, true, From>(kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, 0xff, 0xff);
  else if (cols > 8)
    two[rows - 1](kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, 0xff, first(cols - 8));
  else
    one[rows - 1](kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, first(cols), 0);
}

void tile(i64 kc, const double* Ap, const double* Bp, i64 rs_b, double* C, i64 ldc, bool accumulate, int rows,
          int cols) {
  any_tile<AFrom::kPacked>(kc, Ap, MR, Bp, rs_b, C, ldc, accumulate, rows, cols);
}

void full_tile(i64 kc, const double* Ap, const double* Bp, double* C, i64 ldc, bool accumulate) {
  tile_kernel<MR, 2, true>(kc, Ap, 1, Bp, NR, C, ldc, accumulate, 0xff, 0xff);
}

// Transposes 4 rows x 4 consecutive k (rows at a, a + lda, ...; rows >= `rows` read as zero)
// and stores each k's 4 doubles at dst + k * MR.
inline void transpose_4x4(const double* a, i64 lda, int rows, double* dst) {
  const __m256d z = _mm256_setzero_pd();
  const __m256d r0 = rows > 0 ? _mm256_loadu_pd(a) : z, r1 = rows > 1 ? _mm256_loadu_pd(a + lda) : z;
  const __m256d r2 = rows > 2 ? _mm256_loadu_pd(a + 2 * lda) : z, r3 = rows > 3 ? _mm256_loadu_pd(a + 3 * lda) : z;
  // t0 = (r0k0 r1k0 r0k2 r1k2), t1 = (r0k1 r1k1 r0k3 r1k3), likewise t2, t3 for rows 2-3.
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst + 0 * MR, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + 1 * MR, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * MR, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * MR, _mm256_permute2f128_pd(t1, t3, 0x31));
}

// A 12-row panel of `rows` real rows (the rest zero): dst[k * MR + r] = a[r * lda + k] for
// k < kc; writes nothing past dst + kc * MR.
template <bool Full>
void pack_a_panel(const double* a, i64 lda, i64 kc, int rows, double* dst) {
  if (Full) rows = MR;
  i64 k = 0;
  for (; k + 4 <= kc; k += 4)
    for (int g = 0; g < MR; g += 4) transpose_4x4(a + g * lda + k, lda, rows - g, dst + k * MR + g);
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[r * lda + k] : 0.0;
}

void pack_a_full(const double* a, i64 lda, i64 kc, double* dst) { pack_a_panel<true>(a, lda, kc, MR, dst); }
void pack_a_edge(const double* a, i64 lda, i64 kc, int rows, double* dst) {
  pack_a_panel<false>(a, lda, kc, rows, dst);
}

// Each row of B is copied with two (masked, for the last panel) vector loads per panel.
void pack_b_16(const double* b, i64 ldb, i64 kc, i64 nc, i64 j0, i64 j1, double* dst) {
  for (i64 k = 0; k < kc; ++k) {
    const double* src = b + k * ldb;
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * NR, cols = nc - c0 < NR ? nc - c0 : NR;
      double* d = dst + (j * kc + k) * NR;
      if (cols == NR) {
        _mm512_store_pd(d, _mm512_loadu_pd(src + c0));
        _mm512_store_pd(d + 8, _mm512_loadu_pd(src + c0 + 8));
      } else {
        const int c = static_cast<int>(cols);
        _mm512_store_pd(d, _mm512_maskz_loadu_pd(first(c), src + c0));
        _mm512_store_pd(d + 8, _mm512_maskz_loadu_pd(c > 8 ? first(c - 8) : 0, src + c0 + 8));
      }
    }
  }
}

}  // namespace

MicroKernelF64 gemm_f64_kernel() {
  MicroKernelF64 k{MR, NR, full_tile, pack_a_full};
  k.pack_a_edge = pack_a_edge;
  k.pack_b = pack_b_16;
  k.tile = tile;
  k.tile_row_a = any_tile<AFrom::kRows>;
  // Deeper k slices (a 64 KiB B panel) and shorter A blocks (192 KiB) than the defaults: half the
  // passes over C, whose rows 8-16 KiB apart (n = 1024, 2048) collide in L1. Measured on Zen 4,
  // one thread: 50-52 -> 54-55 GFLOP/s at n = 512 and 1024 (kc 256-1024, mc 24-192 swept).
  k.kc = 512;
  k.mc = 48;
  return k;
}

}  // namespace avx512
}  // namespace needle_cpu

