// Matrix multiply in float32 and float64: one packed, cache-blocked GEMM loop nest (BLIS-style,
// gemm.cc) around a register-blocked micro-kernel chosen at run time: AVX-512 12x32, AVX2+FMA 6x16
// or a portable 4x8 for float; 12x16, 6x8 or 4x4 for double.
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

// C (m x p, ldc) = A (m x n, lda) @ transpose(Bt) [+ bias], where Bt is the p x n matrix B^T (row
// stride ldb): the input gradient g @ W^T without a transposed copy of W. Same rules as sgemm.
void sgemm_nt(std::int64_t m, std::int64_t n, std::int64_t p, const float* A, std::int64_t lda, const float* Bt,
              std::int64_t ldb, float* C, std::int64_t ldc, const float* bias = nullptr, int nthreads = 0);

// batch independent products of compact (m x n) @ (n x p) matrices.
void sgemm_batched(std::int64_t batch, std::int64_t m, std::int64_t n, std::int64_t p, const float* A,
                   const float* B, float* C);

// c (m x p) = a (m x n) @ b (n x p) in float64, all compact row-major. c must not overlap a or b.
// Any sizes >= 0 (n == 0 gives zeros); threads through the kernel pool (num_threads()).
void gemm_f64(const double* a, const double* b, double* c, std::int64_t m, std::int64_t n, std::int64_t p);

// A micro-kernel on elements T (float or double) computes a full MR x NR tile from packed panels:
// C[r][c] (+)= sum_k Ap[k * MR + r] * Bp[k * NR + c], accumulating into C when `accumulate`.
// The optional members (null: the loop nest's portable code):
//  - pack_a packs one full MR-row panel: dst[k * MR + r] = a[r * lda + k] for k < kc; it may write
//    up to 8 elements past dst + kc * MR (callers leave that slack); pack_a_edge packs `rows` < MR
//    rows, zero-padded to MR;
//  - pack_b packs the NR-wide panels [j0, j1) of the kc x nc block at b (row stride ldb),
//    zero-padded: dst[(j * kc + k) * NR + c] = b[k * ldb + j * NR + c];
//  - tile computes any rows x cols tile (rows <= MR, cols <= NR) straight into C, reading B rows
//    rs_b elements apart (NR in packed panels); with it the loop nest needs no edge buffer and may
//    read a small B in place; tile_row_a does the same reading A in place (row r at A + r * lda),
//    tile_col_a reading a transposed A in place (row r's k-th value at A + k * lda + r).
template <class T>
struct MicroKernelT {
  int mr, nr;
  void (*fn)(std::int64_t kc, const T* Ap, const T* Bp, T* C, std::int64_t ldc, bool accumulate);
  void (*pack_a)(const T* a, std::int64_t lda, std::int64_t kc, T* dst) = nullptr;
  void (*tile)(std::int64_t kc, const T* Ap, const T* Bp, std::int64_t rs_b, T* C, std::int64_t ldc,
               bool accumulate, int rows, int cols) = nullptr;
  void (*tile_row_a)(std::int64_t kc, const T* A, std::int64_t lda, const T* Bp, std::int64_t rs_b, T* C,
                     std::int64_t ldc, bool accumulate, int rows, int cols) = nullptr;
  void (*tile_col_a)(std::int64_t kc, const T* A, std::int64_t lda, const T* Bp, std::int64_t rs_b, T* C,
                     std::int64_t ldc, bool accumulate, int rows, int cols) = nullptr;
  void (*pack_a_edge)(const T* a, std::int64_t lda, std::int64_t kc, int rows, T* dst) = nullptr;
  void (*pack_b)(const T* b, std::int64_t ldb, std::int64_t kc, std::int64_t nc, std::int64_t j0, std::int64_t j1,
                 T* dst) = nullptr;
  std::int64_t kc = 0;  // the deepest k slice (0: the loop nest's default)
  std::int64_t mc = 0;  // the tallest block of A packed at once (0: the loop nest's default)
};
using MicroKernel = MicroKernelT<float>;
using MicroKernelF64 = MicroKernelT<double>;

// The hand-written micro-kernels (avx2/, avx512/); the portable ones live in gemm.cc.
namespace avx2 {  // x86-64 builds only
MicroKernel gemm_kernel();
MicroKernelF64 gemm_f64_kernel();
}  // namespace avx2
namespace avx512 {  // x86-64 builds only
MicroKernel gemm_kernel();
MicroKernelF64 gemm_f64_kernel();
}  // namespace avx512

// The course's tiled layout: a is (m/T, n/T, T, T), b is (n/T, p/T, T, T), out (m/T, p/T, T, T).
constexpr int kTile = 8;
void matmul_tiled(const float* a, const float* b, float* out, std::int64_t m, std::int64_t n, std::int64_t p);
// The input gradient (n, h, w, c_in) of conv2d_nhwc_padded for the output gradient g (n, ho, wo,
// c_out): g @ W^T a block of whole images at a time (W read transposed in place), each row's
// windows added back into place (col2im); no dilated or padded gradient. At stride 1 (p < k) it is
// instead conv2d_nhwc_padded of g with a flipped, transposed copy of the (small) weight.
void conv2d_nhwc_grad_input_padded(const float* g, const float* b, float* out, std::int64_t n, std::int64_t h,
                                   std::int64_t w, std::int64_t c_in, std::int64_t c_out, std::int64_t kh,
                                   std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t ph,
                                   std::int64_t pw);

}  // namespace needle_cpu

namespace needle_cpu {

// NHWC convolution, no padding (the caller pads): a (n, h, w, c_in) compact, b (kh, kw, c_in, c_out)
// compact, out (n, (h - kh) / sh + 1, (w - kw) / sw + 1, c_out). Blocks of output pixels are
// gathered into im2col rows (kh runs of kw * c_in contiguous floats each) and multiplied by b.
void conv2d_nhwc(const float* a, const float* b, float* out, std::int64_t n, std::int64_t h, std::int64_t w,
                 std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw, std::int64_t sh,
                 std::int64_t sw);

// Its weight gradient: out (kh, kw, c_in, c_out) = im2col(a)^T @ g, g (n, ho, wo, c_out) compact, a
// as above. The im2col rows are gathered a block at a time (cache-sized, never the whole matrix)
// and each block's product added into out.
void conv2d_nhwc_grad_weight(const float* a, const float* g, float* out, std::int64_t n, std::int64_t h,
                             std::int64_t w, std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw,
                             std::int64_t sh, std::int64_t sw);

// Both with virtual zero padding (ph, pw): a is the unpadded input (n, h, w, c_in), the output
// (n, (h + 2ph - kh) / sh + 1, (w + 2pw - kw) / sw + 1, c_out). No padded copy is made, and kernel
// taps that only ever read padding are left out of the GEMM (their weight-gradient rows are zero).
void conv2d_nhwc_padded(const float* a, const float* b, float* out, std::int64_t n, std::int64_t h, std::int64_t w,
                        std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw, std::int64_t sh,
                        std::int64_t sw, std::int64_t ph, std::int64_t pw);
void conv2d_nhwc_grad_weight_padded(const float* a, const float* g, float* out, std::int64_t n, std::int64_t h,
                                    std::int64_t w, std::int64_t c_in, std::int64_t c_out, std::int64_t kh,
                                    std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t ph,
                                    std::int64_t pw);
// The input gradient (n, h, w, c_in) of conv2d_nhwc_padded for the output gradient g (n, ho, wo,
// c_out): g @ W^T a block of whole images at a time (W read transposed in place), each row's
// windows added back into place (col2im); no dilated or padded gradient. At stride 1 (p < k) it is
// instead conv2d_nhwc_padded of g with a flipped, transposed copy of the (small) weight.
void conv2d_nhwc_grad_input_padded(const float* g, const float* b, float* out, std::int64_t n, std::int64_t h,
                                   std::int64_t w, std::int64_t c_in, std::int64_t c_out, std::int64_t kh,
                                   std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t ph,
                                   std::int64_t pw);

}  // namespace needle_cpu
