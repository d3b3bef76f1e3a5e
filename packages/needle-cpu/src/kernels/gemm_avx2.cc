// AVX2+FMA 6x16 micro-kernel: 12 ymm accumulators, 2 for B, 1 broadcast of A (15 of 16 registers).
// Compiled with -mavx2 -mfma; called only when the CPU has both.
#include "kernels/gemm.h"

#if defined(__AVX2__) && defined(__FMA__)
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
  std::int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 16 * NR), _MM_HINT_T0);
    NEEDLE_STEP(0) NEEDLE_STEP(1) NEEDLE_STEP(2) NEEDLE_STEP(3)
    Ap += 4 * MR;
    Bp += 4 * NR;
  }
  for (; k < kc; ++k) {
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

}  // namespace

MicroKernel gemm_kernel() { return {MR, NR, kernel_6x16}; }

}  // namespace avx2
}  // namespace needle_cpu

#else
namespace needle_cpu {
namespace avx2 {
MicroKernel gemm_kernel() { return {6, 16, nullptr}; }
}  // namespace avx2
}  // namespace needle_cpu
#endif
