// AVX2+FMA fused optimiser loops: the same source as optim_generic.cc, compiled with -mavx2 -mfma.
#include "kernels/optim.h"

#if defined(__AVX2__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx2
#include "kernels/optim_impl.h"
#else
namespace needle_cpu {
namespace avx2 {
const OptimTable* optim_table() { return nullptr; }
}  // namespace avx2
}  // namespace needle_cpu
#endif
