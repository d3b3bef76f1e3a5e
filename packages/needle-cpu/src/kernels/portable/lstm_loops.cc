// The LSTM cell's elementwise loops, written once as plain loops that the compiler vectorises;
// CMakeLists.txt compiles this file once per ISA, inside namespace NEEDLE_ISA_NS.
// Built with -ffp-contract=off, and every expression groups as the composed NDArray code does, so
// the fused step rounds exactly as the fallback's sequence of kernels.
#include <cstdint>

#include "kernels/lstm.h"

#ifndef NEEDLE_ISA_NS
#error "NEEDLE_ISA_NS is defined by CMakeLists.txt, which compiles this file once per ISA"
#endif

namespace needle_cpu {
namespace NEEDLE_ISA_NS {
namespace {

using i64 = std::int64_t;

// One row each; restrict on parameters (not on locals) is what lets GCC vectorise without
// run-time alias checks. Gate k of a row starts at k * hid.
void cell_row(const float* __restrict act, const float* __restrict cp, float* __restrict c, i64 hid) {
  const float* si = act;
  const float* sf = act + hid;
  const float* tg = act + 2 * hid;
  for (i64 j = 0; j < hid; ++j) c[j] = sf[j] * cp[j] + si[j] * tg[j];
}

void output_row(const float* __restrict act, const float* __restrict tc, float* __restrict h,
                float* __restrict h_copy, i64 hid) {
  const float* so = act + 3 * hid;
  for (i64 j = 0; j < hid; ++j) {
    const float v = so[j] * tc[j];
    h[j] = v;
    h_copy[j] = v;
  }
}

// Each gate's column block as a pointer of its own: offsets hid apart within one restrict pointer
// would need a run-time overlap check per pair, more than GCC versions a loop for.
struct GateRows {
  float* __restrict i;
  float* __restrict f;
  float* __restrict g;
  float* __restrict o;
};

inline GateRows gate_rows(float* row, i64 hid) { return {row, row + hid, row + 2 * hid, row + 3 * hid}; }

void backward_row(const float* __restrict dh, const float* __restrict dh_out, const float* __restrict si,
                  const float* __restrict sf, const float* __restrict tg, const float* __restrict so,
                  const float* __restrict cp, const float* __restrict tc, float* __restrict dc, GateRows d,
                  GateRows e, i64 hid) {
  for (i64 j = 0; j < hid; ++j) {
    const float dht = dh[j] + dh_out[j];
    const float dct = dc[j] + (dht * so[j]) * (1.0f - tc[j] * tc[j]);
    const float vi = ((dct * tg[j]) * si[j]) * (1.0f - si[j]);
    const float vf = ((dct * cp[j]) * sf[j]) * (1.0f - sf[j]);
    const float vg = (dct * si[j]) * (1.0f - tg[j] * tg[j]);
    const float vo = ((dht * tc[j]) * so[j]) * (1.0f - so[j]);
    d.i[j] = vi, d.f[j] = vf, d.g[j] = vg, d.o[j] = vo;
    e.i[j] = vi, e.f[j] = vf, e.g[j] = vg, e.o[j] = vo;
    dc[j] = dct * sf[j];
  }
}

void cell_rows(const float* act, const float* c_prev, float* c, i64 rows, i64 hid) {
  for (i64 r = 0; r < rows; ++r) cell_row(act + r * 4 * hid, c_prev + r * hid, c + r * hid, hid);
}

void output_rows(const float* act, const float* tc, float* h, float* h_copy, i64 rows, i64 hid) {
  for (i64 r = 0; r < rows; ++r) output_row(act + r * 4 * hid, tc + r * hid, h + r * hid, h_copy + r * hid, hid);
}

void backward_rows(const float* dh, const float* dh_out, const float* act, const float* c_prev, const float* tc,
                   float* dc, float* dg, float* dg_copy, i64 rows, i64 hid) {
  for (i64 r = 0; r < rows; ++r) {
    const i64 h0 = r * hid, g0 = r * 4 * hid;
    const float* a = act + g0;
    backward_row(dh + h0, dh_out + h0, a, a + hid, a + 2 * hid, a + 3 * hid, c_prev + h0, tc + h0, dc + h0,
                 gate_rows(dg + g0, hid), gate_rows(dg_copy + g0, hid), hid);
  }
}

}  // namespace

const LstmTable* lstm_table() {
  static const LstmTable table{cell_rows, output_rows, backward_rows};
  return &table;
}

}  // namespace NEEDLE_ISA_NS
}  // namespace needle_cpu
