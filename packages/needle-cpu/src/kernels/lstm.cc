#include "kernels/lstm.h"

#include <algorithm>

#include "kernels/cpu_features.h"
#include "kernels/ewise.h"
#include "kernels/threads.h"

namespace needle_cpu {
namespace {

using i64 = std::int64_t;

// Gate elements per thread below which a second thread costs more than it saves: the forward
// computes sigmoid/tanh (the grain of ewise's costly kernels), the backward only arithmetic.
constexpr i64 kGrainForward = 1 << 13;
constexpr i64 kGrainBackward = 1 << 15;

const LstmTable* table() { return NEEDLE_CPU_PICK(lstm_table); }

// f(lo, hi) over row ranges of [0, batch), threaded when the step is large enough.
template <class F>
void over_rows(i64 batch, i64 hid, i64 grain, F&& f) {
  parallel_for(batch, std::max<i64>(1, grain / (4 * hid)), f);
}

}  // namespace

void lstm_cell_forward(float* gates, const float* x, const float* c_prev, float* c, float* tc, float* h,
                       float* h_copy, i64 batch, i64 hid) {
  if (batch <= 0 || hid <= 0) return;
  const LstmTable* t = table();
  const i64 w = 4 * hid;
  over_rows(batch, hid, kGrainForward, [&](i64 lo, i64 hi) {
    const i64 rows = hi - lo;
    float* g = gates + lo * w;
    ewise_binary(Binary::kAdd, g, x + lo * w, g, rows * w);
    // The activations in place, with the ewise kernels (the same values as the fallback's).
    for (i64 r = 0; r < rows; ++r) {
      float* row = g + r * w;
      ewise_unary(Unary::kSigmoid, row, row, 2 * hid);                  // i, f
      ewise_unary(Unary::kTanh, row + 2 * hid, row + 2 * hid, hid);      // g
      ewise_unary(Unary::kSigmoid, row + 3 * hid, row + 3 * hid, hid);   // o
    }
    t->cell(g, c_prev + lo * hid, c + lo * hid, rows, hid);
    ewise_unary(Unary::kTanh, c + lo * hid, tc + lo * hid, rows * hid);
    t->output(g, tc + lo * hid, h + lo * hid, h_copy + lo * hid, rows, hid);
  });
}

void lstm_cell_backward(const float* dh, const float* dh_out, const float* act, const float* c_prev,
                        const float* tc, float* dc, float* dg, float* dg_copy, i64 batch, i64 hid) {
  if (batch <= 0 || hid <= 0) return;
  const LstmTable* t = table();
  const i64 w = 4 * hid;
  over_rows(batch, hid, kGrainBackward, [&](i64 lo, i64 hi) {
    const i64 o = lo * hid;
    t->backward(dh + o, dh_out + o, act + lo * w, c_prev + o, tc + o, dc + o, dg + lo * w, dg_copy + lo * w,
                hi - lo, hid);
  });
}

}  // namespace needle_cpu
