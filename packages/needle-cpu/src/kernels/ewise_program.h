// An elementwise program: a run of elementwise kernels over float32 buffers of n elements, run
// block by block (a few thousand elements) so that the buffers stay in cache between kernels.
// needle.jit builds such programs from the kernels it records (needle._jit._fuse).
#pragma once
#include <cstdint>

namespace needle_cpu {

// kind: what the instruction runs; op: its Binary / ScalarOp / Unary code (ewise.h).
enum class ProgramKind : std::int32_t { kBinary, kScalar, kUnary, kFill, kCopy, kCount };

struct ProgramStep {
  ProgramKind kind;
  std::int32_t op;
  std::int32_t out, a, b;  // buffer indices (a, b unused where the kind takes fewer)
  float value;             // the scalar of kScalar and kFill
};

// Runs `steps` in order on each block [lo, lo + block) of the buffers: each element goes through
// the same kernels (the ewise.h ones) in the same order as running them one after another over
// the whole buffers, so the results are the same bit for bit, aliasing included.
void ewise_program(const ProgramStep* steps, std::int64_t count, float* const* buffers, std::int64_t n,
                   std::int64_t block);

}  // namespace needle_cpu
