// AVX2+FMA 6x8 double micro-kernel: 12 ymm accumulators, 2 for B, 1 broadcast of A (15 of 16
// registers), the float 6x16 kernel at double width. Compiled with -mavx2 -mfma; called only
// when the CPU has both. Edge tiles go through the loop nest's buffer.
#include "kernels/gemm.h"

#include <immintrin.h>

namespace needle_cpu {
namespace avx2 {
namespace {

using i64 = std::int64_t;
constexpr int MR = 6, NR = 8;

void kernel_6x8(i64 kc, const double* __restrict Ap, const double* __restrict Bp, double* C, i64 ldc,
                bool accumulate) {
  __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
  __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
  __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
  __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
  __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
  __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + NR - 1), _MM_HINT_T0);
  }
  // No unrolling: with 15 of 16 ymm registers live an unrolled body spills (see gemm_6x16.cc).
#pragma GCC unroll 1
  for (i64 k = 0; k < kc; ++k) {
    const __m256d b0 = _mm256_load_pd(Bp), b1 = _mm256_load_pd(Bp + 4);
    __m256d a;
    a = _mm256_broadcast_sd(Ap + 0);
    c00 = _mm256_fmadd_pd(a, b0, c00); c01 = _mm256_fmadd_pd(a, b1, c01);
    a = _mm256_broadcast_sd(Ap + 1);
    c10 = _mm256_fmadd_pd(a, b0, c10); c11 = _mm256_fmadd_pd(a, b1, c11);
    a = _mm256_broadcast_sd(Ap + 2);
    c20 = _mm256_fmadd_pd(a, b0, c20); c21 = _mm256_fmadd_pd(a, b1, c21);
    a = _mm256_broadcast_sd(Ap + 3);
    c30 = _mm256_fmadd_pd(a, b0, c30); c31 = _mm256_fmadd_pd(a, b1, c31);
    a = _mm256_broadcast_sd(Ap + 4);
    c40 = _mm256_fmadd_pd(a, b0, c40); c41 = _mm256_fmadd_pd(a, b1, c41);
    a = _mm256_broadcast_sd(Ap + 5);
    c50 = _mm256_fmadd_pd(a, b0, c50); c51 = _mm256_fmadd_pd(a, b1, c51);
    Ap += MR;
    Bp += NR;
  }

  auto store = [&](double* row, __m256d lo, __m256d hi) {
    if (accumulate) {
      lo = _mm256_add_pd(lo, _mm256_loadu_pd(row));
      hi = _mm256_add_pd(hi, _mm256_loadu_pd(row + 4));
    }
    _mm256_storeu_pd(row, lo);
    _mm256_storeu_pd(row + 4, hi);
  };
  store(C + 0 * ldc, c00, c01);
  store(C + 1 * ldc, c10, c11);
  store(C + 2 * ldc, c20, c21);
  store(C + 3 * ldc, c30, c31);
  store(C + 4 * ldc, c40, c41);
  store(C + 5 * ldc, c50, c51);
}

// Packing a 6-row panel is a transpose, 4 k at a time: rows 0-3 as a 4x4 transpose (one
// 4-double store per k), rows 4-5 as pairs (one 2-double store per k); nothing past the panel.
void pack_a_6(const double* a, i64 lda, i64 kc, double* dst) {
  i64 k = 0;
  for (; k + 4 <= kc; k += 4) {
    const __m256d r0 = _mm256_loadu_pd(a + 0 * lda + k), r1 = _mm256_loadu_pd(a + 1 * lda + k);
    const __m256d r2 = _mm256_loadu_pd(a + 2 * lda + k), r3 = _mm256_loadu_pd(a + 3 * lda + k);
    const __m256d r4 = _mm256_loadu_pd(a + 4 * lda + k), r5 = _mm256_loadu_pd(a + 5 * lda + k);
    // t0 = (r0k0 r1k0 r0k2 r1k2), t1 = (r0k1 r1k1 r0k3 r1k3), likewise t2, t3 for rows 2-3.
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    const __m256d t4 = _mm256_unpacklo_pd(r4, r5), t5 = _mm256_unpackhi_pd(r4, r5);
    double* d = dst + k * MR;
    _mm256_storeu_pd(d + 0 * MR, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(d + 1 * MR, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(d + 2 * MR, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(d + 3 * MR, _mm256_permute2f128_pd(t1, t3, 0x31));
    _mm_storeu_pd(d + 0 * MR + 4, _mm256_castpd256_pd128(t4));
    _mm_storeu_pd(d + 1 * MR + 4, _mm256_castpd256_pd128(t5));
    _mm_storeu_pd(d + 2 * MR + 4, _mm256_extractf128_pd(t4, 1));
    _mm_storeu_pd(d + 3 * MR + 4, _mm256_extractf128_pd(t5, 1));
  }
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = a[r * lda + k];
}

}  // namespace

MicroKernelF64 gemm_f64_kernel() { return {MR, NR, kernel_6x8, pack_a_6}; }

}  // namespace avx2
}  // namespace needle_cpu

