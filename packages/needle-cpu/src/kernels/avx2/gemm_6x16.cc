// AVX2+FMA 6x16 micro-kernel: 12 ymm accumulators, 2 for B, 1 broadcast of A (15 of 16 registers).
// Compiled with -mavx2 -mfma; called only when the CPU has both.
#include "kernels/gemm.h"

#include <immintrin.h>

namespace needle_cpu {
namespace avx2 {
namespace {

constexpr int MR = 6, NR = 16;

void kernel_6x16(std::int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C,
                 std::int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

#define NEEDLE_STEP(K)                                               \
  {                                                                  \
    __m256 b0 = _mm256_load_ps(Bp + (K) * NR);                       \
    __m256 b1 = _mm256_load_ps(Bp + (K) * NR + 8);                   \
    __m256 a;                                                        \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 0);                      \
    c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01); \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 1);                      \
    c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11); \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 2);                      \
    c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21); \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 3);                      \
    c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31); \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 4);                      \
    c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41); \
    a = _mm256_broadcast_ss(Ap + (K) * MR + 5);                      \
    c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51); \
  }

  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + NR - 1), _MM_HINT_T0);
  }
  // No unrolling: with 15 of 16 ymm registers live, an unrolled body made GCC spill an
  // accumulator to the stack in the inner loop (measured ~6% slower).
#pragma GCC unroll 1
  for (std::int64_t k = 0; k < kc; ++k) {
    NEEDLE_STEP(0)
    Ap += MR;
    Bp += NR;
  }
#undef NEEDLE_STEP

  auto store = [&](float* row, __m256 lo, __m256 hi) {
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(row));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, lo);
    _mm256_storeu_ps(row + 8, hi);
  };
  store(C + 0 * ldc, c00, c01);
  store(C + 1 * ldc, c10, c11);
  store(C + 2 * ldc, c20, c21);
  store(C + 3 * ldc, c30, c31);
  store(C + 4 * ldc, c40, c41);
  store(C + 5 * ldc, c50, c51);
}

// Packing a 6-row panel is a transpose: load 8 consecutive k of each row, transpose 8x8 in
// registers (rows 6 and 7 are zero), and store 8 floats per k at a 6-float pitch (each store's
// last two lanes are overwritten by the next one).
void pack_a_6(const float* a, std::int64_t lda, std::int64_t kc, float* dst) {
  std::int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r0 = _mm256_loadu_ps(a + 0 * lda + k), r1 = _mm256_loadu_ps(a + 1 * lda + k);
    __m256 r2 = _mm256_loadu_ps(a + 2 * lda + k), r3 = _mm256_loadu_ps(a + 3 * lda + k);
    __m256 r4 = _mm256_loadu_ps(a + 4 * lda + k), r5 = _mm256_loadu_ps(a + 5 * lda + k);
    __m256 r6 = _mm256_setzero_ps(), r7 = _mm256_setzero_ps();
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    float* d = dst + k * MR;
    _mm256_storeu_ps(d + 0 * MR, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + 1 * MR, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * MR, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * MR, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * MR, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * MR, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * MR, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * MR, _mm256_permute2f128_ps(u3, u7, 0x31));
  }
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = a[r * lda + k];
}

}  // namespace

MicroKernel gemm_kernel() { return {MR, NR, kernel_6x16, pack_a_6}; }

}  // namespace avx2
}  // namespace needle_cpu

