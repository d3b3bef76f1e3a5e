#include "kernels/ewise_program.h"

#include <algorithm>
#include <cstring>

#include "kernels/ewise.h"

namespace needle_cpu {

void ewise_program(const ProgramStep* steps, std::int64_t count, float* const* buffers, std::int64_t n,
                   std::int64_t block) {
  for (std::int64_t lo = 0; lo < n; lo += block) {
    const std::int64_t len = std::min(block, n - lo);
    for (std::int64_t s = 0; s < count; ++s) {
      const ProgramStep& st = steps[s];
      float* out = buffers[st.out] + lo;
      switch (st.kind) {
        case ProgramKind::kBinary:
          ewise_binary(static_cast<Binary>(st.op), buffers[st.a] + lo, buffers[st.b] + lo, out, len);
          break;
        case ProgramKind::kScalar:
          ewise_scalar(static_cast<ScalarOp>(st.op), buffers[st.a] + lo, st.value, out, len);
          break;
        case ProgramKind::kUnary:
          ewise_unary(static_cast<Unary>(st.op), buffers[st.a] + lo, out, len);
          break;
        case ProgramKind::kFill:
          std::fill(out, out + len, st.value);
          break;
        case ProgramKind::kCopy:
          if (buffers[st.a] + lo != out) std::memmove(out, buffers[st.a] + lo, len * sizeof(float));
          break;
        default:
          break;  // the binding checked every kind
      }
    }
  }
}

}  // namespace needle_cpu
