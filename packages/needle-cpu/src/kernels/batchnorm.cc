#include "kernels/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Row ranges per thread: each sums its rows into its own double partials, then one reduction.
// Rows per part at least this many elements' worth, so small layers stay on one thread.
constexpr i64 kGrain = 1 << 15;

int parts_for(i64 m, i64 c) { return std::max(1, std::min<int>(threads_for(m * c, kGrain), static_cast<int>(m))); }

// acc[p * c + j] (p < parts) += f(r, j) over the rows of part p; returns the column sums in out.
template <class F>
void column_sums(i64 m, i64 c, int parts, std::vector<double>& acc, F f) {
  acc.assign(static_cast<std::size_t>(parts) * c, 0.0);
  parallel_chunks(parts, parts, [&](i64 p) {
    i64 lo, hi;
    split_range(m, p, parts, 1, &lo, &hi);
    double* a = acc.data() + p * c;
    for (i64 r = lo; r < hi; ++r) f(r, a);
  });
  for (int p = 1; p < parts; ++p)
    for (i64 j = 0; j < c; ++j) acc[j] += acc[p * c + j];
}

template <class F>
void rows_parallel(i64 m, int parts, F f) {
  parallel_chunks(parts, parts, [&](i64 p) {
    i64 lo, hi;
    split_range(m, p, parts, 1, &lo, &hi);
    for (i64 r = lo; r < hi; ++r) f(r);
  });
}

}  // namespace

void batchnorm_forward(const float* x, const float* weight, const float* bias, float* out, float* mean, float* var,
                       i64 m, i64 c, double eps) {
  if (m <= 0 || c <= 0) return;
  const int parts = parts_for(m, c);
  std::vector<double> acc;
  column_sums(m, c, parts, acc, [&](i64 r, double* a) {
    const float* row = x + r * c;
    for (i64 j = 0; j < c; ++j) a[j] += row[j];
  });
  std::vector<float> mu(c), scale(c);
  for (i64 j = 0; j < c; ++j) mu[j] = static_cast<float>(acc[j] / static_cast<double>(m));
  // Second pass around the float mean (what the composed graph subtracts).
  column_sums(m, c, parts, acc, [&](i64 r, double* a) {
    const float* row = x + r * c;
    for (i64 j = 0; j < c; ++j) {
      const float d = row[j] - mu[j];
      a[j] += static_cast<double>(d) * d;
    }
  });
  for (i64 j = 0; j < c; ++j) {
    const float v = static_cast<float>(acc[j] / static_cast<double>(m));
    mean[j] = mu[j];
    var[j] = v;
    scale[j] = static_cast<float>(weight[j] / std::sqrt(static_cast<double>(v) + eps));
  }
  rows_parallel(m, parts, [&](i64 r) {
    const float* row = x + r * c;
    float* o = out + r * c;
    for (i64 j = 0; j < c; ++j) o[j] = (row[j] - mu[j]) * scale[j] + bias[j];
  });
}

void batchnorm_backward(const float* x, const float* g, const float* weight, const float* mean, const float* var,
                        float* grad_x, float* grad_weight, float* grad_bias, i64 m, i64 c, double eps) {
  if (m <= 0 || c <= 0) return;
  const int parts = parts_for(m, c);
  std::vector<float> mu(mean, mean + c), inv(c);
  for (i64 j = 0; j < c; ++j) inv[j] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[j]) + eps));
  // Partials interleaved per part: [sum g (c) | sum g * (x - mean) (c)].
  std::vector<double> acc;
  column_sums(m, 2 * c, parts, acc, [&](i64 r, double* a) {
    const float* xr = x + r * c;
    const float* gr = g + r * c;
    for (i64 j = 0; j < c; ++j) {
      a[j] += gr[j];
      a[c + j] += static_cast<double>(gr[j]) * (xr[j] - mu[j]);
    }
  });
  std::vector<float> k_g(c), k_x(c), k_0(c);
  const double md = static_cast<double>(m);
  for (i64 j = 0; j < c; ++j) {
    const double gb = acc[j], gw = acc[c + j] * inv[j], wi = static_cast<double>(weight[j]) * inv[j];
    grad_bias[j] = static_cast<float>(gb);
    grad_weight[j] = static_cast<float>(gw);
    // grad_x = wi * g - wi * gb / m - wi * inv * gw / m * (x - mean)
    k_g[j] = static_cast<float>(wi);
    k_x[j] = static_cast<float>(-wi * inv[j] * gw / md);
    k_0[j] = static_cast<float>(-wi * gb / md);
  }
  rows_parallel(m, parts, [&](i64 r) {
    const float* xr = x + r * c;
    const float* gr = g + r * c;
    float* o = grad_x + r * c;
    for (i64 j = 0; j < c; ++j) o[j] = k_g[j] * gr[j] + k_x[j] * (xr[j] - mu[j]) + k_0[j];
  });
}

}  // namespace needle_cpu
