// AVX-512 fused optimiser loops: the same source as optim_generic.cc, compiled with -mavx512f/vl/dq.
#include "kernels/optim.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx512
#include "kernels/optim_impl.h"
#else
namespace needle_cpu {
namespace avx512 {
const OptimTable* optim_table() { return nullptr; }
}  // namespace avx512
}  // namespace needle_cpu
#endif
