#include <algorithm>
#include <cstring>
#include <memory>

#include "kernels/buffer.h"
#include "kernels/gemm.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

struct Free {
  std::size_t count;
  void operator()(float* p) const noexcept { free_floats(p, count); }
};

}  // namespace

void conv2d_nhwc(const float* a, const float* b, float* out, std::int64_t n, std::int64_t h, std::int64_t w,
                 std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw, std::int64_t sh,
                 std::int64_t sw) {
  using i64 = std::int64_t;
  const i64 ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1;
  const i64 rows = n * ho * wo, k = kh * kw * c_in, run = kw * c_in;
  if (rows <= 0 || c_out <= 0) return;
  // Rows per block: enough to amortise packing the weight, small enough for the im2col block
  // to stay in L2 (at most ~256 KiB).
  const i64 block = std::max<i64>(16, std::min<i64>(512, (i64(64) << 10) / std::max<i64>(k, 1)));
  const i64 blocks = (rows + block - 1) / block;
  auto do_block = [&](i64 blk, int threads) {
    const i64 r0 = blk * block, r1 = std::min(rows, r0 + block);
    const std::size_t count = static_cast<std::size_t>((r1 - r0) * k);
    std::unique_ptr<float, Free> owner(alloc_floats(count), Free{count});  // freed if the GEMM throws
    float* cols = owner.get();
    for (i64 r = r0; r < r1; ++r) {
      const i64 img = r / (ho * wo), rem = r % (ho * wo), i = rem / wo, j = rem % wo;
      const float* src = a + ((img * h + i * sh) * w + j * sw) * c_in;
      float* dst = cols + (r - r0) * k;
      for (i64 p = 0; p < kh; ++p) std::memcpy(dst + p * run, src + p * w * c_in, run * sizeof(float));
    }
    sgemm(r1 - r0, k, c_out, cols, k, b, c_out, out + r0 * c_out, c_out, nullptr, threads);
  };
  if (blocks == 1) return do_block(0, 0);  // one block: let the GEMM use the threads
  parallel_chunks(threads_for(blocks, 1), blocks, [&](i64 blk) { do_block(blk, 1); });
}

void conv2d_nhwc_grad_weight(const float* a, const float* g, float* out, std::int64_t n, std::int64_t h,
                             std::int64_t w, std::int64_t c_in, std::int64_t c_out, std::int64_t kh, std::int64_t kw,
                             std::int64_t sh, std::int64_t sw) {
  using i64 = std::int64_t;
  const i64 ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1;
  const i64 rows = n * ho * wo, k = kh * kw * c_in, run = kw * c_in;
  if (k <= 0 || c_out <= 0) return;
  if (rows <= 0) {
    std::fill(out, out + k * c_out, 0.0f);
    return;
  }
  // Rows per block: the gathered block (block x k floats) stays around 1 MiB; each block's
  // product (k x c_out) is accumulated, so blocks are long enough to amortise that.
  const i64 block = std::max<i64>(64, std::min<i64>(rows, (i64(256) << 10) / std::max<i64>(k, 1)));
  const std::size_t cols_count = static_cast<std::size_t>(block * k), part_count = static_cast<std::size_t>(k * c_out);
  std::unique_ptr<float, Free> cols_owner(alloc_floats(cols_count), Free{cols_count});
  std::unique_ptr<float, Free> part_owner(alloc_floats(part_count), Free{part_count});
  float *cols = cols_owner.get(), *part = part_owner.get();
  for (i64 r0 = 0; r0 < rows; r0 += block) {
    const i64 r1 = std::min(rows, r0 + block);
    for (i64 r = r0; r < r1; ++r) {
      const i64 img = r / (ho * wo), rem = r % (ho * wo), i = rem / wo, j = rem % wo;
      const float* src = a + ((img * h + i * sh) * w + j * sw) * c_in;
      float* dst = cols + (r - r0) * k;
      for (i64 p = 0; p < kh; ++p) std::memcpy(dst + p * run, src + p * w * c_in, run * sizeof(float));
    }
    float* c = r0 == 0 ? out : part;  // the first block writes out; later ones are added to it
    sgemm_tn(k, r1 - r0, c_out, cols, k, g + r0 * c_out, c_out, c, c_out, nullptr, 0);
    if (r0 != 0)
      for (i64 e = 0; e < k * c_out; ++e) out[e] += part[e];
  }
}

}  // namespace needle_cpu
