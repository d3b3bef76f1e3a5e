// Double-precision matrix multiply: the float32 GEMM's design (packed, cache-blocked Goto/BLIS
// loop nest around a register-blocked micro-kernel chosen at run time) with double-width tiles:
// AVX-512 12x16, AVX2+FMA 6x8, or a portable 4x4.
#pragma once
#include <cstdint>

namespace needle_cpu {

// c (m x p) = a (m x n) @ b (n x p), all compact row-major. c must not overlap a or b. Any sizes
// >= 0 (n == 0 gives zeros); threads through the kernel pool (num_threads()).
void gemm_f64(const double* a, const double* b, double* c, std::int64_t m, std::int64_t n, std::int64_t p);

// A double micro-kernel computes a full MR x NR tile from packed panels:
// C[r][c] (+)= sum_k Ap[k * MR + r] * Bp[k * NR + c], accumulating into C when `accumulate`.
// The optional members mirror the float MicroKernel (gemm.h):
//  - pack_a packs one full MR-row panel: dst[k * MR + r] = a[r * lda + k] for k < kc (it writes
//    nothing past dst + kc * MR); pack_a_edge packs `rows` < MR rows, zero-padded to MR;
//  - pack_b packs the NR-wide panels [j0, j1) of the kc x nc block at b (row stride ldb),
//    zero-padded: dst[(j * kc + k) * NR + c] = b[k * ldb + j * NR + c];
//  - tile computes any rows x cols tile (rows <= MR, cols <= NR) straight into C, reading B rows
//    rs_b doubles apart (NR in packed panels); with it the loop nest needs no edge buffer and
//    may read a small B in place; tile_row_a does the same reading A in place (row r at A + r * lda).
struct MicroKernelF64 {
  int mr, nr;
  void (*fn)(std::int64_t kc, const double* Ap, const double* Bp, double* C, std::int64_t ldc, bool accumulate);
  void (*pack_a)(const double* a, std::int64_t lda, std::int64_t kc, double* dst) = nullptr;
  void (*pack_a_edge)(const double* a, std::int64_t lda, std::int64_t kc, int rows, double* dst) = nullptr;
  void (*pack_b)(const double* b, std::int64_t ldb, std::int64_t kc, std::int64_t nc, std::int64_t j0,
                 std::int64_t j1, double* dst) = nullptr;
  void (*tile)(std::int64_t kc, const double* Ap, const double* Bp, std::int64_t rs_b, double* C, std::int64_t ldc,
               bool accumulate, int rows, int cols) = nullptr;
  void (*tile_row_a)(std::int64_t kc, const double* A, std::int64_t lda, const double* Bp, std::int64_t rs_b,
                     double* C, std::int64_t ldc, bool accumulate, int rows, int cols) = nullptr;
  std::int64_t kc = 0;  // the deepest k slice (0: the loop nest's default)
  std::int64_t mc = 0;  // the tallest block of A packed at once (0: the loop nest's default)
};

namespace generic { MicroKernelF64 gemm_f64_kernel(); }
namespace avx2 { MicroKernelF64 gemm_f64_kernel(); }    // x86-64 builds only
namespace avx512 { MicroKernelF64 gemm_f64_kernel(); }  // x86-64 builds only

}  // namespace needle_cpu
