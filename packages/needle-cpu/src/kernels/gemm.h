// Single-precision matrix multiply: a packed, cache-blocked GEMM (BLIS-style loop nest) around
// a register-blocked micro-kernel chosen at run time (AVX-512 12x32, AVX2+FMA 6x16, or a portable 4x8).
#pragma once
#include <cstdint>

namespace needle_cpu {

// C (m x p, row stride ldc) = A (m x n, lda) @ B (n x p, ldb) [+ bias[j] on every row when bias != null].
// C must not overlap A, B or bias. nthreads <= 0 means "as many as useful".
void sgemm(std::int64_t m, std::int64_t n, std::int64_t p, const float* A, std::int64_t lda, const float* B,
           std::int64_t ldb, float* C, std::int64_t ldc, const float* bias = nullptr, int nthreads = 0);

// C (m x p, ldc) = transpose(At) @ B (n x p, ldb) [+ bias], where At is the n x m matrix A^T (row
// stride lda): the weight gradient x^T @ g without a transposed copy of x. Same rules as sgemm.
void sgemm_tn(std::int64_t m, std::int64_t n, std::int64_t p, const float* At, std::int64_t lda, const float* B,
              std::int64_t ldb, float* C, std::int64_t ldc, const float* bias = nullptr, int nthreads = 0);

// batch independent products of compact (m x n) @ (n x p) matrices.
void sgemm_batched(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t p, const float* A,
                   const float* B, float* C);

// A micro-kernel computes a full MR x NR tile from packed panels:
// C[r][c] (+)= sum_k Ap[k * MR + r] * Bp[k * NR + c], accumulating into C when `accumulate`.
// pack_a (optional) packs one full MR-row panel: dst[k * MR + r] = a[r * lda + k] for k < kc; it may
// write up to 8 floats past dst + kc * MR (callers leave that slack).
// tile (optional) computes any rows x cols tile (rows <= MR, cols <= NR) straight into C, reading
// B rows rs_b floats apart (NR in packed panels); when set, the loop nest uses it for every tile,
// edges included.
struct MicroKernel {
  int mr, nr;
  void (*fn)(std::int64_t kc, const float* Ap, const float* Bp, float* C, std::int64_t ldc, bool accumulate);
  void (*pack_a)(const float* a, std::int64_t lda, std::int64_t kc, float* dst) = nullptr;
  void (*tile)(std::int64_t kc, const float* Ap, const float* Bp, std::int64_t rs_b, float* C, std::int64_t ldc,
               bool accumulate, int rows, int cols) = nullptr;
  // pack_b (optional) packs the NR-wide panels [j0, j1) of the kc x nc block at b (row stride ldb),
  // zero-padded: dst[(j * kc + k) * NR + c] = b[k * ldb + j * NR + c].
  // tile_row_a (optional): tile reading A in place (row r at A + r * lda) instead of packed.
  void (*tile_row_a)(std::int64_t kc, const float* A, std::int64_t lda, const float* Bp, std::int64_t rs_b, float* C,
                     std::int64_t ldc, bool accumulate, int rows, int cols) = nullptr;
  // tile_col_a (optional): tile reading a transposed A in place (row r's k-th value at A + k * lda + r).
  void (*tile_col_a)(std::int64_t kc, const float* A, std::int64_t lda, const float* Bp, std::int64_t rs_b, float* C,
                     std::int64_t ldc, bool accumulate, int rows, int cols) = nullptr;
  // pack_a_edge (optional) packs a panel of rows < MR rows, zero-padded to MR.
  void (*pack_a_edge)(const float* a, std::int64_t lda, std::int64_t kc, int rows, float* dst) = nullptr;
  void (*pack_b)(const float* b, std::int64_t ldb, std::int64_t kc, std::int64_t nc, std::int64_t j0, std::int64_t j1,
                 float* dst) = nullptr;
  std::int64_t kc = 0;  // the deepest k slice (0: the loop nest's default)
};

namespace generic { MicroKernel gemm_kernel(); }
namespace avx2 { MicroKernel gemm_kernel(); }    // x86-64 builds only
namespace avx512 { MicroKernel gemm_kernel(); }  // x86-64 builds only

// The course's tiled layout: a is (m/T, n/T, T, T), b is (n/T, p/T, T, T), out (m/T, p/T, T, T).
constexpr int kTile = 8;
void matmul_tiled(const float* a, const float* b, float* out, std::int64_t m, std::int64_t n, std::int64_t p);

}  // namespace needle_cpu

namespace needle_cpu {

// NHWC convolution, no padding (the caller pads): a (n, h, w, c_in) compact, b (kh, kw, c_in, c_out)
// compact, out (n, (h - kh) / sh + 1, (w - kw) / sw + 1, c_out). Blocks of output pixels are
// gathered into im2col rows (kh runs of kw * c_in contiguous floats each) and multiplied by b.
void conv2d_nhwc(const float* a, const float* b, float* out, std::int64_t n, std::int64_t h, std::int64_t w,
                 std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw, std::int64_t sh,
                 std::int64_t sw);

}  // namespace needle_cpu
