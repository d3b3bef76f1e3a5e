// The course's tiled matmul, kept for compatibility (nd.cpu().matmul_tiled, __tile_size__):
// operands are stored tile by tile, so each T x T tile product reads contiguous memory.
#include <algorithm>

#include "kernels/gemm.h"
#include "kernels/threads.h"

namespace needle_cpu {

void matmul_tiled(const float* a, const float* b, float* out, std::int64_t m, std::int64_t n, std::int64_t p) {
  constexpr int T = kTile;
  const std::int64_t mt = m / T, nt = n / T, pt = p / T;
  parallel_for(mt * pt, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(nt, 1)), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t i = t / pt, j = t % pt;
      float acc[T][T] = {};
      for (std::int64_t k = 0; k < nt; ++k) {
        const float* at = a + (i * nt + k) * T * T;
        const float* bt = b + (k * pt + j) * T * T;
        for (int r = 0; r < T; ++r)
          for (int q = 0; q < T; ++q)
            for (int c = 0; c < T; ++c) acc[r][c] += at[r * T + q] * bt[q * T + c];
      }
      float* ot = out + (i * pt + j) * T * T;
      for (int r = 0; r < T; ++r)
        for (int c = 0; c < T; ++c) ot[r * T + c] = acc[r][c];
    }
  });
}

}  // namespace needle_cpu
