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

}  // namespace needle_cpu
