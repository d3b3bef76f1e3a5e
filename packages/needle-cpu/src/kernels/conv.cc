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

using i64 = std::int64_t;

// Kernel taps [t0, t1) along one axis that can land inside the unpadded input for some output
// position; taps outside only ever read zero padding (the outer taps of a 3x3 kernel on a 1x1 or
// 2x2 image), so their im2col columns and weight rows are left out of the GEMM.
struct TapRange {
  i64 t0, t1;
};

TapRange live_taps(i64 size, i64 k, i64 s, i64 pad, i64 out) {
  const i64 last = (out - 1) * s;  // offset of the last window
  i64 t0 = std::max<i64>(0, pad - last), t1 = std::min<i64>(k, pad + size);
  return t0 < t1 ? TapRange{t0, t1} : TapRange{0, 0};
}

// Geometry shared by the forward and the weight gradient: `a` unpadded (n, h, w, c_in), virtual
// zero padding (ph, pw), output (n, ho, wo, ...), columns for the live taps only (kk per row).
struct Geometry {
  i64 n, h, w, c_in, kh, kw, sh, sw, ph, pw, ho, wo;
  TapRange p, q;
  i64 kk;
  Geometry(i64 n_, i64 h_, i64 w_, i64 c_in_, i64 kh_, i64 kw_, i64 sh_, i64 sw_, i64 ph_, i64 pw_)
      : n(n_), h(h_), w(w_), c_in(c_in_), kh(kh_), kw(kw_), sh(sh_), sw(sw_), ph(ph_), pw(pw_),
        ho((h_ + 2 * ph_ - kh_) / sh_ + 1), wo((w_ + 2 * pw_ - kw_) / sw_ + 1),
        p(live_taps(h_, kh_, sh_, ph_, ho)), q(live_taps(w_, kw_, sw_, pw_, wo)),
        kk((p.t1 - p.t0) * (q.t1 - q.t0) * c_in_) {}
  // Weight rows of the live taps are one contiguous run of b (no gathered copy needed).
  bool contiguous() const { return p.t1 - p.t0 == 1 || (q.t0 == 0 && q.t1 == kw); }
  const float* live_rows(const float* b, i64 c_out) const { return b + (p.t0 * kw + q.t0) * c_in * c_out; }
  // Row r of im2col (live taps only) into dst (kk floats): zeros where a window leaves the input.
  void gather(const float* a, i64 r, float* dst) const {
    const i64 img = r / (ho * wo), rem = r % (ho * wo), i = rem / wo, j = rem % wo;
    const i64 qn = q.t1 - q.t0, run = qn * c_in;
    const i64 x0 = j * sw - pw + q.t0;  // input column of the first live tap
    const i64 lo = std::max<i64>(0, -x0), hi = std::min<i64>(qn, w - x0);  // taps inside [0, w)
    for (i64 t = p.t0; t < p.t1; ++t, dst += run) {
      const i64 y = i * sh - ph + t;
      if (y < 0 || y >= h || lo >= hi) {
        std::fill(dst, dst + run, 0.0f);
        continue;
      }
      std::fill(dst, dst + lo * c_in, 0.0f);
      std::memcpy(dst + lo * c_in, a + ((img * h + y) * w + x0 + lo) * c_in, (hi - lo) * c_in * sizeof(float));
      std::fill(dst + hi * c_in, dst + run, 0.0f);
    }
  }
  // The adjoint of gather: src (kk floats, row r of the columns) added into the windows of out.
  void scatter_add(const float* src, i64 r, float* out) const {
    const i64 img = r / (ho * wo), rem = r % (ho * wo), i = rem / wo, j = rem % wo;
    const i64 qn = q.t1 - q.t0, run = qn * c_in;
    const i64 x0 = j * sw - pw + q.t0;
    const i64 lo = std::max<i64>(0, -x0), hi = std::min<i64>(qn, w - x0);
    if (lo >= hi) return;
    for (i64 t = p.t0; t < p.t1; ++t, src += run) {
      const i64 y = i * sh - ph + t;
      if (y < 0 || y >= h) continue;
      float* dst = out + ((img * h + y) * w + x0 + lo) * c_in;
      const float* from = src + lo * c_in;
      for (i64 e = 0, count = (hi - lo) * c_in; e < count; ++e) dst[e] += from[e];
    }
  }
  // The live taps' rows of a (kh, kw, c_in, c_out) array packed into kk x c_out, and back.
  void pack_rows(const float* full, float* packed, i64 c_out) const {
    const i64 run = (q.t1 - q.t0) * c_in * c_out;
    for (i64 t = p.t0; t < p.t1; ++t)
      std::memcpy(packed + (t - p.t0) * run, full + (t * kw + q.t0) * c_in * c_out, run * sizeof(float));
  }
  void unpack_rows(const float* packed, float* full, i64 c_out) const {
    const i64 run = (q.t1 - q.t0) * c_in * c_out;
    for (i64 t = p.t0; t < p.t1; ++t)
      std::memcpy(full + (t * kw + q.t0) * c_in * c_out, packed + (t - p.t0) * run, run * sizeof(float));
  }
};

}  // namespace

void conv2d_nhwc_padded(const float* a, const float* b, float* out, i64 n, i64 h, i64 w, i64 c_in, i64 c_out, i64 kh,
                        i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
  const Geometry geo(n, h, w, c_in, kh, kw, sh, sw, ph, pw);
  const i64 rows = n * geo.ho * geo.wo, k = geo.kk;
  if (rows <= 0 || c_out <= 0) return;
  if (k == 0) {  // every window lies in the padding
    std::fill(out, out + rows * c_out, 0.0f);
    return;
  }
  const float* weight = geo.live_rows(b, c_out);
  std::unique_ptr<float, Free> packed;
  if (!geo.contiguous()) {
    const std::size_t count = static_cast<std::size_t>(k * c_out);
    packed = std::unique_ptr<float, Free>(alloc_floats(count), Free{count});
    geo.pack_rows(b, packed.get(), c_out);
    weight = packed.get();
  }
  // Rows per block: enough to amortise packing the weight, small enough for the im2col block
  // to stay in L2 (at most ~256 KiB).
  const i64 block = std::max<i64>(16, std::min<i64>(512, (i64(64) << 10) / k));
  const i64 blocks = (rows + block - 1) / block;
  auto do_block = [&](i64 blk, int threads) {
    const i64 r0 = blk * block, r1 = std::min(rows, r0 + block);
    const std::size_t count = static_cast<std::size_t>((r1 - r0) * k);
    std::unique_ptr<float, Free> owner(alloc_floats(count), Free{count});  // freed if the GEMM throws
    float* cols = owner.get();
    for (i64 r = r0; r < r1; ++r) geo.gather(a, r, cols + (r - r0) * k);
    sgemm(r1 - r0, k, c_out, cols, k, weight, c_out, out + r0 * c_out, c_out, nullptr, threads);
  };
  if (blocks == 1) return do_block(0, 0);  // one block: let the GEMM use the threads
  parallel_chunks(threads_for(blocks, 1), blocks, [&](i64 blk) { do_block(blk, 1); });
}

void conv2d_nhwc(const float* a, const float* b, float* out, i64 n, i64 h, i64 w, i64 c_in, i64 c_out, i64 kh, i64 kw,
                 i64 sh, i64 sw) {
  conv2d_nhwc_padded(a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw, 0, 0);
}

void conv2d_nhwc_grad_input_padded(const float* g, const float* b, float* out, i64 n, i64 h, i64 w, i64 c_in,
                                   i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
  const Geometry geo(n, h, w, c_in, kh, kw, sh, sw, ph, pw);
  const i64 per_image = geo.ho * geo.wo, k = geo.kk;
  if (n <= 0 || h <= 0 || w <= 0 || c_in <= 0) return;
  if (sh == 1 && sw == 1 && ph < kh && pw < kw && c_out > 0) {
    // Stride 1: a correlation of g, padded by k - 1 - p, with the flipped, transposed weight (a
    // small copy) writes each input pixel once, where adding windows back would revisit it.
    const std::size_t count = static_cast<std::size_t>(kh * kw * c_in * c_out);
    std::unique_ptr<float, Free> flipped(alloc_floats(count), Free{count});
    float* f = flipped.get();
    const Geometry inner(n, geo.ho, geo.wo, c_out, kh, kw, 1, 1, kh - 1 - ph, kw - 1 - pw);
    constexpr i64 tile = 16;  // transposed in tiles: neither side strides through memory
    for (i64 p = 0; p < kh; ++p)
      for (i64 q = 0; q < kw; ++q) {
        const float* src = b + ((kh - 1 - p) * kw + (kw - 1 - q)) * c_in * c_out;
        float* dst = f + (p * kw + q) * c_out * c_in;
        if (p < inner.p.t0 || p >= inner.p.t1 || q < inner.q.t0 || q >= inner.q.t1) {
          std::fill(dst, dst + c_out * c_in, 0.0f);  // a tap the correlation leaves out
          continue;
        }
        for (i64 c0 = 0; c0 < c_in; c0 += tile)
          for (i64 o0 = 0; o0 < c_out; o0 += tile)
            for (i64 ci = c0; ci < std::min(c_in, c0 + tile); ++ci)
              for (i64 co = o0; co < std::min(c_out, o0 + tile); ++co) dst[co * c_in + ci] = src[ci * c_out + co];
      }
    return conv2d_nhwc_padded(g, f, out, n, geo.ho, geo.wo, c_out, c_in, kh, kw, 1, 1, kh - 1 - ph, kw - 1 - pw);
  }
  std::fill(out, out + n * h * w * c_in, 0.0f);
  if (per_image <= 0 || k == 0 || c_out <= 0) return;
  const float* weight = geo.live_rows(b, c_out);
  std::unique_ptr<float, Free> packed;
  if (!geo.contiguous()) {
    const std::size_t count = static_cast<std::size_t>(k * c_out);
    packed = std::unique_ptr<float, Free>(alloc_floats(count), Free{count});
    geo.pack_rows(b, packed.get(), c_out);
    weight = packed.get();
  }
  // Whole images per block, so that blocks on different threads add into different images; the
  // block's columns (g @ W^T, W read transposed in place) stay around 256 KiB.
  const i64 images = std::max<i64>(1, std::min<i64>(n, (i64(64) << 10) / (per_image * k)));
  const i64 blocks = (n + images - 1) / images;
  auto do_block = [&](i64 blk, int threads) {
    const i64 r0 = blk * images * per_image, r1 = std::min(n, (blk + 1) * images) * per_image;
    const std::size_t count = static_cast<std::size_t>((r1 - r0) * k);
    std::unique_ptr<float, Free> owner(alloc_floats(count), Free{count});
    float* cols = owner.get();
    sgemm_nt(r1 - r0, c_out, k, g + r0 * c_out, c_out, weight, c_out, cols, k, nullptr, threads);
    for (i64 r = r0; r < r1; ++r) geo.scatter_add(cols + (r - r0) * k, r, out);
  };
  if (blocks == 1) return do_block(0, 0);
  parallel_chunks(threads_for(blocks, 1), blocks, [&](i64 blk) { do_block(blk, 1); });
}

void conv2d_nhwc_grad_weight_padded(const float* a, const float* g, float* out, i64 n, i64 h, i64 w, i64 c_in,
                                    i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
  const Geometry geo(n, h, w, c_in, kh, kw, sh, sw, ph, pw);
  const i64 rows = n * geo.ho * geo.wo, k = geo.kk, full = kh * kw * c_in;
  if (full <= 0 || c_out <= 0) return;
  if (rows <= 0 || k == 0 || !geo.contiguous() || k != full)
    std::fill(out, out + full * c_out, 0.0f);  // the dead taps' rows stay zero
  if (rows <= 0 || k == 0) return;
  // Rows per block: the gathered block (block x k floats) stays around 1 MiB; each block's
  // product (k x c_out) is accumulated, so blocks are long enough to amortise that.
  const i64 block = std::max<i64>(64, std::min<i64>(rows, (i64(256) << 10) / k));
  const std::size_t cols_count = static_cast<std::size_t>(block * k), part_count = static_cast<std::size_t>(k * c_out);
  std::unique_ptr<float, Free> cols_owner(alloc_floats(cols_count), Free{cols_count});
  std::unique_ptr<float, Free> part_owner(alloc_floats(part_count), Free{part_count});
  std::unique_ptr<float, Free> sum_owner;
  float *cols = cols_owner.get(), *part = part_owner.get();
  // The sum of the live rows: out itself when they are one run of it, else a buffer scattered at the end.
  float* sum = geo.contiguous() ? out + (geo.p.t0 * kw + geo.q.t0) * c_in * c_out : nullptr;
  if (sum == nullptr) {
    sum_owner = std::unique_ptr<float, Free>(alloc_floats(part_count), Free{part_count});
    sum = sum_owner.get();
  }
  for (i64 r0 = 0; r0 < rows; r0 += block) {
    const i64 r1 = std::min(rows, r0 + block);
    for (i64 r = r0; r < r1; ++r) geo.gather(a, r, cols + (r - r0) * k);
    float* c = r0 == 0 ? sum : part;  // the first block writes the sum; later ones are added to it
    sgemm_tn(k, r1 - r0, c_out, cols, k, g + r0 * c_out, c_out, c, c_out, nullptr, 0);
    if (r0 != 0)
      for (i64 e = 0; e < k * c_out; ++e) sum[e] += part[e];
  }
  if (sum_owner) geo.unpack_rows(sum, out, c_out);
}

void conv2d_nhwc_grad_weight(const float* a, const float* g, float* out, i64 n, i64 h, i64 w, i64 c_in, i64 c_out,
                             i64 kh, i64 kw, i64 sh, i64 sw) {
  conv2d_nhwc_grad_weight_padded(a, g, out, n, h, w, c_in, c_out, kh, kw, sh, sw, 0, 0);
}

}  // namespace needle_cpu
