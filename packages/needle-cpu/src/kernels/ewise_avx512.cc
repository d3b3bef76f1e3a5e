// AVX-512 elementwise kernels: the same source as ewise_generic.cc, compiled with
// -mavx512f -mavx512vl -mavx512dq -mfma (16 floats per vector, masked tails).
#include <algorithm>

#include "kernels/ewise.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx512
#include "kernels/ewise_impl.h"
#else
namespace needle_cpu {
namespace avx512 {
const EwiseTable* ewise_table() { return nullptr; }
}  // namespace avx512
}  // namespace needle_cpu
#endif
