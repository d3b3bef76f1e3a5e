// AVX2+FMA elementwise kernels: the same source as ewise_generic.cc, compiled with -mavx2 -mfma.
#include <algorithm>

#include "kernels/ewise.h"

#if defined(__AVX2__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx2
#include "kernels/ewise_impl.h"
#else
namespace needle_cpu {
namespace avx2 {
const EwiseTable* ewise_table() { return nullptr; }
}  // namespace avx2
}  // namespace needle_cpu
#endif
