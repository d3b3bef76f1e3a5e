// Portable 4x4 double micro-kernel: plain loops the compiler keeps in registers (8 SSE2
// accumulators on baseline x86-64; any other CPU gets whatever its compiler makes of them).
#include "kernels/gemm_f64.h"

namespace needle_cpu {
namespace generic {
namespace {

constexpr int MR = 4, NR = 4;

void kernel_4x4(std::int64_t kc, const double* __restrict Ap, const double* __restrict Bp, double* C,
                std::int64_t ldc, bool accumulate) {
  double acc[MR][NR] = {};
  for (std::int64_t k = 0; k < kc; ++k) {
    const double* a = Ap + k * MR;
    const double* b = Bp + k * NR;
    for (int r = 0; r < MR; ++r)
      for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
  }
  for (int r = 0; r < MR; ++r) {
    double* row = C + r * ldc;
    if (accumulate) for (int c = 0; c < NR; ++c) row[c] += acc[r][c];
    else for (int c = 0; c < NR; ++c) row[c] = acc[r][c];
  }
}

}  // namespace

MicroKernelF64 gemm_f64_kernel() { return {MR, NR, kernel_4x4}; }

}  // namespace generic
}  // namespace needle_cpu
