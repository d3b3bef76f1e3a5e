// The fused optimiser loops, written once as plain loops that the compiler vectorises; compiled
// once per ISA by CMakeLists.txt, inside namespace NEEDLE_ISA_NS. Built with
// -ffp-contract=off, and every expression groups as the composed NDArray update (needle.optim) does,
// so the fused step rounds exactly as the fallback's sequence of kernels.
#include <cmath>
#include <cstdint>

#include "kernels/optim.h"

#ifndef NEEDLE_ISA_NS
#error "NEEDLE_ISA_NS is defined by CMakeLists.txt, which compiles this file once per ISA"
#endif

namespace needle_cpu {
namespace NEEDLE_ISA_NS {
namespace {

using i64 = std::int64_t;

// restrict on the parameters lets GCC vectorise without run-time alias checks; w and g may be the
// same buffer (both are only read), the bindings keep every written buffer apart from the rest, but
// out may be w itself (IN_PLACE_UPDATES): those two are not restrict, each iteration reads w[i] once
// before it writes out[i], and ivdep (no dependence between iterations) keeps the loops vectorised
// without alias checks. The scalars are copied to locals first: read through the struct they could
// alias the outputs.
template <AdamDecay kDecay>
void adam_loop(const float* w, const float* __restrict g, float* __restrict m, float* __restrict v, float* out,
               i64 n, const AdamScalars& s) {
  const float b1 = s.beta1, c1 = s.one_minus_beta1, b2 = s.beta2, c2 = s.one_minus_beta2;
  const float wd = s.weight_decay, decay = s.decay, step = s.step, eps = s.eps;
#pragma GCC ivdep
  for (i64 i = 0; i < n; ++i) {
    const float wr = w[i];
    float gi = g[i];
    if constexpr (kDecay == AdamDecay::kL2) gi = wr * wd + gi;
    const float mi = m[i] * b1 + gi * c1;
    const float vi = v[i] * b2 + (gi * gi) * c2;
    m[i] = mi;
    v[i] = vi;
    float wi = wr;
    if constexpr (kDecay == AdamDecay::kDecoupled) wi = wi * decay;
    out[i] = wi - (mi * step) / (std::sqrt(vi) + eps);
  }
}

template <bool kDecay, bool kMomentum>
void sgd_loop(const float* w, const float* __restrict g, float* __restrict u, float* out, i64 n,
              const SgdScalars& s) {
  const float lr = s.lr, mom = s.momentum, c = s.one_minus_momentum, wd = s.weight_decay;
#pragma GCC ivdep
  for (i64 i = 0; i < n; ++i) {
    const float wi = w[i];
    float gi = g[i];
    if constexpr (kDecay) gi = gi + wi * wd;
    if constexpr (kMomentum) {
      gi = u[i] * mom + gi * c;
      u[i] = gi;
    }
    out[i] = wi - gi * lr;
  }
}

template <bool kDecay, bool kMomentum>
void rmsprop_loop(const float* w, const float* __restrict g, float* __restrict v, float* __restrict buf, float* out,
                  i64 n, const RmspropScalars& s) {
  const float lr = s.lr, a = s.alpha, c = s.one_minus_alpha, eps = s.eps, wd = s.weight_decay, mom = s.momentum;
#pragma GCC ivdep
  for (i64 i = 0; i < n; ++i) {
    const float wi = w[i];
    float gi = g[i];
    if constexpr (kDecay) gi = gi + wi * wd;
    const float vi = v[i] * a + (gi * gi) * c;
    v[i] = vi;
    float d = gi / (std::sqrt(vi) + eps);
    if constexpr (kMomentum) {
      d = buf[i] * mom + d;
      buf[i] = d;
    }
    out[i] = wi - d * lr;
  }
}

}  // namespace

const OptimTable* optim_table() {
  static const OptimTable table{
      {adam_loop<AdamDecay::kNone>, adam_loop<AdamDecay::kL2>, adam_loop<AdamDecay::kDecoupled>},
      {{sgd_loop<false, false>, sgd_loop<false, true>}, {sgd_loop<true, false>, sgd_loop<true, true>}},
      {{rmsprop_loop<false, false>, rmsprop_loop<false, true>}, {rmsprop_loop<true, false>, rmsprop_loop<true, true>}},
  };
  return &table;
}

}  // namespace NEEDLE_ISA_NS
}  // namespace needle_cpu
