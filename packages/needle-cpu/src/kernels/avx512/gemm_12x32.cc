// AVX-512 micro-kernels: MR x 32 tiles, MR x 2 zmm accumulators, two B vectors per k and
// A broadcast from memory. Edge tiles (fewer rows, fewer columns) run as their own template
// instances with masked B loads and masked C loads/stores, so they cost only their real work
// and never touch memory outside the tile. Compiled with -mavx512f -mavx512vl -mavx512dq -mfma;
// called only when the CPU has them.
#include "kernels/gemm.h"

#include <immintrin.h>

#include <utility>

namespace needle_cpu {
namespace avx512 {
namespace {

using i64 = std::int64_t;

// 12 x 32: 24 accumulators + 2 B vectors + 1 broadcast of the 32 zmm registers; a 12-row A
// panel packs as three 4-row transposes.
constexpr int MR = 12, NR = 32;

// Where a tile reads A: a packed panel (row r's k-th value at Ap[k * MR + r]), or A in place,
// row-major (Ap[r * lda + k]) or transposed (Ap[k * lda + r]).
enum class AFrom { kPacked, kRows, kCols };

// R rows x H 16-float halves; m0/m1 mask the columns of each half (all ones inside the panel).
// Full (R = MR, H = 2, no masks) uses plain loads and stores.
template <int R, int H, bool Full = false, AFrom From = AFrom::kPacked>
void tile_kernel(i64 kc, const float* __restrict Ap, i64 lda, const float* __restrict Bp, i64 rs_b, float* C,
                 i64 ldc, bool accumulate, __mmask16 m0, __mmask16 m1) {
  if (Full) m0 = m1 = 0xffff;
  const i64 row_step = From == AFrom::kRows ? lda : 1;
  const i64 k_step = From == AFrom::kRows ? 1 : From == AFrom::kCols ? lda : MR;
  __m512 c[R][H];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) c[r][h] = _mm512_setzero_ps();

#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);

#pragma GCC unroll 2
  for (i64 k = 0; k < kc; ++k) {
    __m512 b[H];
    if (Full) {
      b[0] = _mm512_loadu_ps(Bp);
      b[H - 1] = _mm512_loadu_ps(Bp + 16);
    } else {
      b[0] = _mm512_maskz_loadu_ps(m0, Bp);
      if (H > 1) b[H - 1] = _mm512_maskz_loadu_ps(m1, Bp + 16);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(Ap[r * row_step]);
#pragma GCC unroll 2
      for (int h = 0; h < H; ++h) c[r][h] = _mm512_fmadd_ps(a, b[h], c[r][h]);
    }
    Ap += k_step;
    Bp += rs_b;
  }

#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int h = 0; h < H; ++h) {
      float* row = C + r * ldc + 16 * h;
      const __mmask16 m = h == 0 ? m0 : m1;
      __m512 v = c[r][h];
      if (Full) {
        if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(row));
        _mm512_storeu_ps(row, v);
      } else {
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, row));
        _mm512_mask_storeu_ps(row, m, v);
      }
    }
}

using TileFn = void (*)(i64, const float*, i64, const float*, i64, float*, i64, bool, __mmask16, __mmask16);

template <int... Rs>
struct Table {
  static constexpr TileFn one[] = {tile_kernel<Rs + 1, 1>...};
  static constexpr TileFn two[] = {tile_kernel<Rs + 1, 2>...};
  static constexpr TileFn one_rows[] = {tile_kernel<Rs + 1, 1, false, AFrom::kRows>...};
  static constexpr TileFn two_rows[] = {tile_kernel<Rs + 1, 2, false, AFrom::kRows>...};
  static constexpr TileFn one_cols[] = {tile_kernel<Rs + 1, 1, false, AFrom::kCols>...};
  static constexpr TileFn two_cols[] = {tile_kernel<Rs + 1, 2, false, AFrom::kCols>...};
};
template <int... Rs>
Table<Rs...> make_table(std::integer_sequence<int, Rs...>);
using Tiles = decltype(make_table(std::make_integer_sequence<int, MR>{}));

__mmask16 first(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

// Any rows x cols tile: the full one, or the masked instance for its edge.
template <AFrom From>
void any_tile(i64 kc, const float* Ap, i64 lda, const float* Bp, i64 rs_b, float* C, i64 ldc, bool accumulate,
              int rows, int cols) {
  constexpr const TileFn* one = From == AFrom::kPacked ? Tiles::one : From == AFrom::kRows ? Tiles::one_rows : Tiles::one_cols;
  constexpr const TileFn* two = From == AFrom::kPacked ? Tiles::two : From == AFrom::kRows ? Tiles::two_rows : Tiles::two_cols;
  if (rows == MR && cols == NR)
    tile_kernel<MR, 2, true, From>(kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, 0xffff, 0xffff);
  else if (cols > 16)
    two[rows - 1](kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, 0xffff, first(cols - 16));
  else
    one[rows - 1](kc, Ap, lda, Bp, rs_b, C, ldc, accumulate, first(cols), 0);
}

void tile(i64 kc, const float* Ap, const float* Bp, i64 rs_b, float* C, i64 ldc, bool accumulate, int rows,
          int cols) {
  any_tile<AFrom::kPacked>(kc, Ap, MR, Bp, rs_b, C, ldc, accumulate, rows, cols);
}

void full_tile(i64 kc, const float* Ap, const float* Bp, float* C, i64 ldc, bool accumulate) {
  tile_kernel<MR, 2, true>(kc, Ap, 1, Bp, NR, C, ldc, accumulate, 0xffff, 0xffff);
}

// Transposes 4 rows x 8 consecutive k (rows at a, a + lda, ...; rows >= `rows` read as zero) and
// stores each k's 4 floats at dst + k * MR. Only in-lane shuffles, and 128-bit stores instead
// of cross-lane permutes: packing is shuffle-port bound.
inline void transpose_4x8(const float* a, i64 lda, int rows, float* dst) {
  const __m256 z = _mm256_setzero_ps();
  __m256 r0 = rows > 0 ? _mm256_loadu_ps(a) : z, r1 = rows > 1 ? _mm256_loadu_ps(a + lda) : z;
  __m256 r2 = rows > 2 ? _mm256_loadu_ps(a + 2 * lda) : z, r3 = rows > 3 ? _mm256_loadu_ps(a + 3 * lda) : z;
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  _mm_storeu_ps(dst + 0 * MR, _mm256_castps256_ps128(u0));
  _mm_storeu_ps(dst + 1 * MR, _mm256_castps256_ps128(u1));
  _mm_storeu_ps(dst + 2 * MR, _mm256_castps256_ps128(u2));
  _mm_storeu_ps(dst + 3 * MR, _mm256_castps256_ps128(u3));
  _mm_storeu_ps(dst + 4 * MR, _mm256_extractf128_ps(u0, 1));
  _mm_storeu_ps(dst + 5 * MR, _mm256_extractf128_ps(u1, 1));
  _mm_storeu_ps(dst + 6 * MR, _mm256_extractf128_ps(u2, 1));
  _mm_storeu_ps(dst + 7 * MR, _mm256_extractf128_ps(u3, 1));
}

// A 12-row panel of `rows` real rows (the rest zero): dst[k * MR + r] = a[r * lda + k] for
// k < kc; writes nothing past dst + kc * MR.
template <bool Full>
void pack_a_panel(const float* a, i64 lda, i64 kc, int rows, float* dst) {
  if (Full) rows = MR;
  i64 k = 0;
  for (; k + 8 <= kc; k += 8)
    for (int g = 0; g < MR; g += 4) transpose_4x8(a + g * lda + k, lda, rows - g, dst + k * MR + g);
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[r * lda + k] : 0.0f;
}

void pack_a_full(const float* a, i64 lda, i64 kc, float* dst) { pack_a_panel<true>(a, lda, kc, MR, dst); }
void pack_a_edge(const float* a, i64 lda, i64 kc, int rows, float* dst) {
  pack_a_panel<false>(a, lda, kc, rows, dst);
}

// Each row of B is copied with two (masked, for the last panel) vector loads per panel.
void pack_b_32(const float* b, i64 ldb, i64 kc, i64 nc, i64 j0, i64 j1, float* dst) {
  for (i64 k = 0; k < kc; ++k) {
    const float* src = b + k * ldb;
    for (i64 j = j0; j < j1; ++j) {
      const i64 c0 = j * NR, cols = nc - c0 < NR ? nc - c0 : NR;
      float* d = dst + (j * kc + k) * NR;
      if (cols == NR) {
        _mm512_store_ps(d, _mm512_loadu_ps(src + c0));
        _mm512_store_ps(d + 16, _mm512_loadu_ps(src + c0 + 16));
      } else {
        const int c = static_cast<int>(cols);
        _mm512_store_ps(d, _mm512_maskz_loadu_ps(first(c), src + c0));
        _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(c > 16 ? first(c - 16) : 0, src + c0 + 16));
      }
    }
  }
}

}  // namespace

MicroKernel gemm_kernel() {
  MicroKernel k{MR, NR, full_tile, pack_a_full};
  k.pack_a_edge = pack_a_edge;
  k.tile = tile;
  k.tile_row_a = any_tile<AFrom::kRows>;
  k.tile_col_a = any_tile<AFrom::kCols>;
  k.pack_b = pack_b_32;
  // Deeper than the default 256 (a 64 KiB B panel streams from L2 well): half the passes over C,
  // whose rows 4 KiB apart (n = 1024, 2048) collide in L1; measured 5-10% faster at n >= 1000.
  k.kc = 512;
  return k;
}

}  // namespace avx512
}  // namespace needle_cpu

