#include "kernels/optim.h"

#include <cmath>

#include "kernels/cpu_features.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Elements per thread below which a second thread costs more than it saves. Each element is
// several loads and stores (and a sqrt and a division for Adam/RMSprop): more work than one
// cheap elementwise kernel's element, so a smaller grain than ewise's 1 << 15.
constexpr i64 kGrainCheap = 1 << 14;
constexpr i64 kGrainRoot = 1 << 13;

const OptimTable* table() { return NEEDLE_CPU_PICK(optim_table); }

}  // namespace

void adam_step(const float* w, const float* g, float* m, float* v, float* out, i64 n, double lr, double beta1,
               double beta2, double eps, double weight_decay, double bias_c1, double bias_c2, bool decoupled) {
  if (n <= 0) return;
  // The scalars exactly as needle.optim.Adam forms them in Python (double), then rounded once.
  const double root2 = std::sqrt(bias_c2);
  const AdamScalars s{static_cast<float>(beta1),        static_cast<float>(1 - beta1),
                      static_cast<float>(beta2),        static_cast<float>(1 - beta2),
                      static_cast<float>(weight_decay), static_cast<float>(1 - lr * weight_decay),
                      static_cast<float>(lr * root2 / bias_c1), static_cast<float>(eps * root2)};
  const AdamDecay mode = weight_decay == 0 ? AdamDecay::kNone : decoupled ? AdamDecay::kDecoupled : AdamDecay::kL2;
  auto f = table()->adam[static_cast<int>(mode)];
  parallel_for(n, kGrainRoot, [&](i64 lo, i64 hi) { f(w + lo, g + lo, m + lo, v + lo, out + lo, hi - lo, s); }, 16);
}

void sgd_step(const float* w, const float* g, float* u, float* out, i64 n, double lr, double momentum,
              double weight_decay) {
  if (n <= 0) return;
  const SgdScalars s{static_cast<float>(lr), static_cast<float>(momentum), static_cast<float>(1 - momentum),
                     static_cast<float>(weight_decay)};
  auto f = table()->sgd[weight_decay != 0][u != nullptr];
  parallel_for(n, kGrainCheap, [&](i64 lo, i64 hi) {
    f(w + lo, g + lo, u ? u + lo : nullptr, out + lo, hi - lo, s);
  }, 16);
}

void rmsprop_step(const float* w, const float* g, float* v, float* buf, float* out, i64 n, double lr, double alpha,
                  double eps, double weight_decay, double momentum) {
  if (n <= 0) return;
  const RmspropScalars s{static_cast<float>(lr),  static_cast<float>(alpha),        static_cast<float>(1 - alpha),
                         static_cast<float>(eps), static_cast<float>(weight_decay), static_cast<float>(momentum)};
  auto f = table()->rmsprop[weight_decay != 0][buf != nullptr];
  parallel_for(n, kGrainRoot, [&](i64 lo, i64 hi) {
    f(w + lo, g + lo, v + lo, buf ? buf + lo : nullptr, out + lo, hi - lo, s);
  }, 16);
}

}  // namespace needle_cpu
