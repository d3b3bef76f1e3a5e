// Portable 4x8 micro-kernel: plain loops the compiler keeps in (SSE) registers.
#include "kernels/gemm.h"

namespace needle_cpu {
namespace generic {
namespace {

constexpr int MR = 4, NR = 8;

void kernel_4x8(std::int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, std::int64_t ldc,
                bool accumulate) {
  float acc[MR][NR] = {};
  for (std::int64_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * MR;
    const float* b = Bp + k * NR;
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
  for (int r = 0; r < MR; ++r) {
    float* row = C + r * ldc;
    if (accumulate) for (int c = 0; c < NR; ++c) row[c] += acc[r][c];
    else for (int c = 0; c < NR; ++c) row[c] = acc[r][c];
  }
}

}  // namespace

MicroKernel gemm_kernel() { return {MR, NR, kernel_4x8}; }

}  // namespace generic
}  // namespace needle_cpu
