// Binary elementwise float32 ops whose operands are strided views (a broadcast operand has
// stride 0 along the broadcast axes): out = a op b without first copying either operand compact.
// The caller has checked that every index of both views lies inside its buffer and that `out`
// (compact, the views' shape) shares memory with neither.
#pragma once
#include "kernels/strided.h"

namespace needle_cpu {

enum class StridedOp { kAdd, kSub, kMul, kDiv };

// a_view and b_view have the same shape; out is compact of that shape.
void ewise_binary_strided_f32(StridedOp op, const float* a, const View& a_view, const float* b, const View& b_view,
                              float* out);

}  // namespace needle_cpu
