// Fused LSTM cell kernels (the protocol's lstm_cell_forward / lstm_cell_backward) on compact
// float32 buffers. One call does a whole step's elementwise work over the (batch, 4 * hid) gates,
// instead of a dozen elementwise kernels plus compact copies of the four strided gate columns.
// Gates are in the order i, f, g, o, each hid wide, in every row.
#pragma once
#include <cstdint>

namespace needle_cpu {

// One step. On entry `gates` (batch x 4hid) holds h_prev @ W_hh; `x` (batch x 4hid, the input's
// share) is added, then `gates` is overwritten with the activations sigmoid(i), sigmoid(f), tanh(g),
// sigmoid(o). c = sf * c_prev + si * tg, tc = tanh(c), h = so * tc (batch x hid each); h is written
// to both `h` and `h_copy`. No output may overlap another buffer.
void lstm_cell_forward(float* gates, const float* x, const float* c_prev, float* c, float* tc, float* h,
                       float* h_copy, std::int64_t batch, std::int64_t hid);

// The step's backward, from the forward's activations `act`, c_prev and tc. dh (batch x hid) is the
// gradient of h from later steps and dh_out that of the step's output; dc (batch x hid) holds the
// gradient of c on entry and that of c_prev on exit. The pre-activation gradients (batch x 4hid)
// go to `dg` and to `dg_copy`. No output may overlap another buffer.
void lstm_cell_backward(const float* dh, const float* dh_out, const float* act, const float* c_prev,
                        const float* tc, float* dc, float* dg, float* dg_copy, std::int64_t batch,
                        std::int64_t hid);

// Per-ISA loops over `rows` rows (portable/lstm_loops.cc); sigmoid and tanh come from the ewise kernels.
struct LstmTable {
  // c = sf * c_prev + si * tg for rows of act (4hid wide) and c_prev, c (hid wide).
  void (*cell)(const float* act, const float* c_prev, float* c, std::int64_t rows, std::int64_t hid);
  // h = h_copy = so * tc.
  void (*output)(const float* act, const float* tc, float* h, float* h_copy, std::int64_t rows,
                 std::int64_t hid);
  // The whole backward of `rows` rows (see lstm_cell_backward).
  void (*backward)(const float* dh, const float* dh_out, const float* act, const float* c_prev,
                   const float* tc, float* dc, float* dg, float* dg_copy, std::int64_t rows, std::int64_t hid);
};

namespace generic { const LstmTable* lstm_table(); }
namespace avx2 { const LstmTable* lstm_table(); }    // x86-64 builds only
namespace avx512 { const LstmTable* lstm_table(); }  // x86-64 builds only

}  // namespace needle_cpu
