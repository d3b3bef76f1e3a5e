// Kernels on every dtype (protocol 2): elementwise, comparisons, casts, where, reductions, argmax,
// matmul, row gather/scatter. Written once as templates over the element type (portable/typed_loops.cc),
// compiled per ISA like the float32 kernels, and picked at run time by NEEDLE_CPU_PICK. Buffers
// are compact and untyped here: the bindings have checked every dtype against the rules below.
//
// float32 arithmetic, math, sum and max keep their own SIMD kernels (ewise.h); the bindings send
// float32 there, and everything else here.
#pragma once
#include <cstdint>

#include "kernels/dtype.h"

namespace needle_cpu {

enum class TBinary { kAdd, kSub, kMul, kDiv, kMaximum, kMinimum, kPower, kAnd, kOr, kXor, kCount };
enum class TCompare { kEq, kNe, kLt, kLe, kGt, kGe, kCount };
// Scalar ops: out = op(a, val); kRsub is val - a, kRdiv val / a.
enum class TScalar { kAdd, kMul, kDiv, kPower, kMaximum, kMinimum, kRsub, kRdiv, kCount };
enum class TUnary { kNeg, kAbs, kNot, kLog, kExp, kTanh, kSqrt, kSigmoid, kRelu, kCount };
enum class TReduce { kSum, kMax, kMin, kCount };
enum class TArg { kArgmax, kArgmin, kCount };

// The dtypes each kernel accepts (protocol.py's rules). Arithmetic: all but bool; the math
// functions and true division: floats; bitwise/logical: integers and bool.
constexpr DTypeSet dtypes_of(TBinary op) {
  switch (op) {
    case TBinary::kAdd: case TBinary::kSub: case TBinary::kMul: return kNumericDTypes;
    case TBinary::kDiv: case TBinary::kPower: return kFloatDTypes;
    case TBinary::kMaximum: case TBinary::kMinimum: return kAllDTypes;
    default: return kIntBoolDTypes;
  }
}
constexpr DTypeSet dtypes_of(TScalar op) {
  switch (op) {
    case TScalar::kAdd: case TScalar::kMul: case TScalar::kRsub: return kNumericDTypes;
    case TScalar::kMaximum: case TScalar::kMinimum: return kAllDTypes;
    default: return kFloatDTypes;
  }
}
constexpr DTypeSet dtypes_of(TUnary op) {
  switch (op) {
    case TUnary::kNeg: case TUnary::kAbs: return kNumericDTypes;
    case TUnary::kNot: return kIntBoolDTypes;
    default: return kFloatDTypes;
  }
}
constexpr DTypeSet dtypes_of(TReduce op) { return op == TReduce::kSum ? kNumericDTypes : kAllDTypes; }

using i64 = std::int64_t;

// One scalar operand, already converted to the buffer's element type (the field of its dtype).
union Scalar {
  std::uint8_t u8;  // bool (0 or 1) and uint8
  std::int32_t i32;
  std::int64_t i64;
  float f32;
  double f64;
};

// Per-ISA tables (portable/typed_loops.cc fills them); an entry is null where the dtype is not accepted.
// Kernels take [0, n) of compact buffers; the dispatchers below split the work across threads.
struct TypedTable {
  void (*binary[static_cast<int>(TBinary::kCount)][kNumDTypes])(const void* a, const void* b, void* out, i64 n);
  void (*compare[static_cast<int>(TCompare::kCount)][kNumDTypes])(const void* a, const void* b, std::uint8_t* out,
                                                                   i64 n);
  void (*scalar[static_cast<int>(TScalar::kCount)][kNumDTypes])(const void* a, Scalar v, void* out, i64 n);
  void (*scalar_compare[static_cast<int>(TCompare::kCount)][kNumDTypes])(const void* a, Scalar v, std::uint8_t* out,
                                                                          i64 n);
  void (*unary[static_cast<int>(TUnary::kCount)][kNumDTypes])(const void* a, void* out, i64 n);
  void (*cast[kNumDTypes][kNumDTypes])(const void* a, void* out, i64 n);  // [from][to]
  void (*where[kNumDTypes])(const std::uint8_t* cond, const void* a, const void* b, void* out, i64 n);
  // rows x len -> rows results (len >= 1; sum also len == 0).
  void (*reduce[static_cast<int>(TReduce::kCount)][kNumDTypes])(const void* a, void* out, i64 rows, i64 len);
  void (*arg[static_cast<int>(TArg::kCount)][kNumDTypes])(const void* a, i64* out, i64 rows, i64 len);
  // Rows [r0, r1) of C (m x p) = A (m x n) @ B (n x p); integer products wrap.
  void (*matmul[kNumDTypes])(const void* a, const void* b, void* c, i64 n, i64 p, i64 r0, i64 r1);
  // out[idx[i]][c0:c1] += g[i][c0:c1] for i < count (indices checked), in order of i.
  void (*scatter_add[kNumDTypes])(const void* g, const i64* idx, void* out, i64 count, i64 row_size, i64 c0, i64 c1);
};

namespace generic { const TypedTable* typed_table(); }
namespace avx2 { const TypedTable* typed_table(); }    // x86-64 builds only
namespace avx512 { const TypedTable* typed_table(); }  // x86-64 builds only

// ---- dispatchers (typed.cc): the active ISA's kernel, threaded. dtype is that of the inputs.
void typed_binary(TBinary op, DType dt, const void* a, const void* b, void* out, i64 n);
void typed_compare(TCompare op, DType dt, const void* a, const void* b, std::uint8_t* out, i64 n);
void typed_scalar(TScalar op, DType dt, const void* a, Scalar v, void* out, i64 n);
void typed_scalar_compare(TCompare op, DType dt, const void* a, Scalar v, std::uint8_t* out, i64 n);
void typed_unary(TUnary op, DType dt, const void* a, void* out, i64 n);
void typed_cast(DType from, DType to, const void* a, void* out, i64 n);
void typed_where(DType dt, const std::uint8_t* cond, const void* a, const void* b, void* out, i64 n);
void typed_fill(DType dt, Scalar v, void* out, i64 n);
void copy_bytes(const void* a, void* out, std::size_t bytes);
void typed_reduce(TReduce op, DType dt, const void* a, void* out, i64 rows, i64 len);
void typed_arg(TArg op, DType dt, const void* a, i64* out, i64 rows, i64 len);
// C (m x p) = A (m x n) @ B (n x p), compact, C distinct from A and B; not for bool.
void typed_matmul(DType dt, const void* a, const void* b, void* c, i64 m, i64 n, i64 p);
// The float64 product (the one place a dedicated float64 GEMM plugs in).
void matmul_f64(const double* a, const double* b, double* c, i64 m, i64 n, i64 p);
// Index of the first idx[i] outside [0, rows), or -1.
i64 first_bad_index(const i64* idx, i64 count, i64 rows);
// out row i = a row idx[i] (indices checked); any dtype.
void gather_rows(DType dt, const void* a, const i64* idx, void* out, i64 row_size, i64 count);
void scatter_add_rows(DType dt, const void* g, const i64* idx, void* out, i64 row_size, i64 count);

}  // namespace needle_cpu
