#include "kernels/softmax_xent.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu_features.h"
#include "kernels/ewise.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Row elements per thread below which a second thread costs more than it saves (the forward
// computes exp: the grain of ewise's costly kernels).
constexpr i64 kGrainForward = 1 << 13;

// The active ISA's elementwise kernels, called per row directly: through the dispatching
// ewise_* functions each call would check the threading grain again, which costs more than the
// work on a short row (the MLP's 10 classes).
const EwiseTable* ewise() { return NEEDLE_CPU_PICK(ewise_table); }

// One row in a few passes: the logits are read from memory once and the softmax written once;
// the passes after the first find the row in cache (L1 for rows up to several thousand classes).
void forward_row(const EwiseTable& t, const float* z, i64 label, float* p, float* loss, i64 k) {
  const float mx = t.row_max(z, k);
  t.scalar[static_cast<int>(ScalarOp::kAdd)](z, -mx, p, k);  // z + (-mx) rounds exactly as z - mx
  t.unary[static_cast<int>(Unary::kExp)](p, p, k);
  const float s = t.row_sum(p, k);
  *loss = std::log(s) - (z[label] - mx);
  t.scalar[static_cast<int>(ScalarOp::kMul)](p, 1.0f / s, p, k);  // a division per element costs as much as the exp
}

}  // namespace

i64 labels_to_classes(const float* labels, i64 m, i64 k, i64* classes) {
  const double count = static_cast<double>(k);
  for (i64 r = 0; r < m; ++r) {
    const double v = labels[r];  // one read: what is checked is what is used
    if (!(v >= 0.0 && v < count && v == std::floor(v))) return r;  // nan fails the first test
    classes[r] = static_cast<i64>(v);
  }
  return -1;
}

void softmax_xent_forward(const float* z, const i64* classes, float* probs, float* loss_rows, i64 m, i64 k) {
  if (m <= 0 || k <= 0) return;
  const EwiseTable& t = *ewise();
  parallel_for(m, std::max<i64>(1, kGrainForward / k), [&](i64 lo, i64 hi) {
    for (i64 r = lo; r < hi; ++r)
      forward_row(t, z + r * k, classes[r], probs + r * k, loss_rows + r, k);
  });
}

void softmax_xent_backward(const float* probs, const i64* classes, float scale, float* out, i64 m, i64 k) {
  if (m <= 0 || k <= 0) return;
  ewise_scalar(ScalarOp::kMul, probs, scale, out, m * k);  // (p - 0) * scale off the label
  for (i64 r = 0; r < m; ++r) {
    const i64 i = r * k + classes[r];
    out[i] = (probs[i] - 1.0f) * scale;
  }
}

}  // namespace needle_cpu
