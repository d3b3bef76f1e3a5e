// Elementwise, scalar and reduction kernels on compact float32 buffers.
// Each picks the ISA table at run time and splits large inputs across threads.
#pragma once
#include <cstdint>

namespace needle_cpu {

enum class Binary { kAdd, kSub, kMul, kDiv, kMaximum, kEq, kGe, kPower, kReluBackward, kCount };
enum class ScalarOp { kAdd, kMul, kDiv, kPower, kMaximum, kEq, kGe, kRsub, kRdiv, kCount };
enum class Unary { kNeg, kLog, kExp, kTanh, kSqrt, kSigmoid, kRelu, kCount };

void ewise_binary(Binary op, const float* a, const float* b, float* out, std::int64_t n);
void ewise_scalar(ScalarOp op, const float* a, float value, float* out, std::int64_t n);
void ewise_unary(Unary op, const float* a, float* out, std::int64_t n);
void fill(float* out, float value, std::int64_t n);
void copy(const float* a, float* out, std::int64_t n);

// out[r] = sum / max of a[r * len : (r + 1) * len] for r < rows (len >= 1 for max).
void reduce_sum(const float* a, float* out, std::int64_t rows, std::int64_t len);
void reduce_max(const float* a, float* out, std::int64_t rows, std::int64_t len);

// Per-ISA function tables (portable/ewise_loops.cc fills them).
struct EwiseTable {
  void (*binary[static_cast<int>(Binary::kCount)])(const float*, const float*, float*, std::int64_t);
  void (*scalar[static_cast<int>(ScalarOp::kCount)])(const float*, float, float*, std::int64_t);
  void (*unary[static_cast<int>(Unary::kCount)])(const float*, float*, std::int64_t);
  float (*row_sum)(const float*, std::int64_t);
  float (*row_max)(const float*, std::int64_t);
};

namespace generic { const EwiseTable* ewise_table(); }
namespace avx2 { const EwiseTable* ewise_table(); }  // x86-64 builds only, as every avx2/avx512 name
namespace avx512 {
const EwiseTable* ewise_table();
void use_vector_math(EwiseTable& t);  // avx512/ewise_math.cc: hand-written exp, tanh, sigmoid
}  // namespace avx512

}  // namespace needle_cpu
