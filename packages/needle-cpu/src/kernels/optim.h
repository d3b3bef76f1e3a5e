// Fused optimiser updates (the protocol's adam_step / sgd_step / rmsprop_step) on compact float32
// buffers: one pass over a parameter reads the weights, the gradient and the optimiser's state,
// updates the state in place and writes the new weights to a separate buffer, where the composed
// NDArray update makes about a dozen elementwise passes. Every expression groups as the composed
// update does (built with -ffp-contract=off), so both round alike.
#pragma once
#include <cstdint>

namespace needle_cpu {

// Adam: g' = g + w * weight_decay (only when weight_decay != 0 and not decoupled);
// m = beta1 * m + (1 - beta1) * g'; v = beta2 * v + (1 - beta2) * g'^2;
// w' = w * (1 - lr * weight_decay) when decoupled (AdamW) and weight_decay != 0, else w;
// out = w' - (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)), c1 and c2 the bias corrections
// 1 - beta^t. The scalars are formed in double and rounded to float once, as the composed update's.
void adam_step(const float* w, const float* g, float* m, float* v, float* out, std::int64_t n, double lr,
               double beta1, double beta2, double eps, double weight_decay, double bias_c1, double bias_c2,
               bool decoupled);

// SGD with the course's momentum rule: g' = g + w * weight_decay (when != 0);
// u = momentum * u + (1 - momentum) * g' when u is not null (g' = u); out = w - lr * g'.
void sgd_step(const float* w, const float* g, float* u, float* out, std::int64_t n, double lr, double momentum,
              double weight_decay);

// RMSprop: g' = g + w * weight_decay (when != 0); v = alpha * v + (1 - alpha) * g'^2;
// d = g' / (sqrt(v) + eps); with buf not null, buf = momentum * buf + d (d = buf); out = w - lr * d.
void rmsprop_step(const float* w, const float* g, float* v, float* buf, float* out, std::int64_t n, double lr,
                  double alpha, double eps, double weight_decay, double momentum);

// The scalars of one update, rounded to float as the composed kernels round their arguments.
struct AdamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay, step, eps;
};
struct SgdScalars {
  float lr, momentum, one_minus_momentum, weight_decay;
};
struct RmspropScalars {
  float lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
};

// How Adam applies weight decay: not at all, as L2 on the gradient (Adam), or on the weights (AdamW).
enum class AdamDecay { kNone, kL2, kDecoupled, kCount };

// Per-ISA loops over [0, n) (portable/optim_loops.cc); sgd and rmsprop are indexed [weight decay][momentum].
struct OptimTable {
  void (*adam[static_cast<int>(AdamDecay::kCount)])(const float* w, const float* g, float* m, float* v, float* out, std::int64_t n,
                     const AdamScalars& s);
  void (*sgd[2][2])(const float* w, const float* g, float* u, float* out, std::int64_t n, const SgdScalars& s);
  void (*rmsprop[2][2])(const float* w, const float* g, float* v, float* buf, float* out, std::int64_t n,
                        const RmspropScalars& s);
};

namespace generic { const OptimTable* optim_table(); }
namespace avx2 { const OptimTable* optim_table(); }    // x86-64 builds only
namespace avx512 { const OptimTable* optim_table(); }  // x86-64 builds only

}  // namespace needle_cpu
