// Kernels on every dtype for AVX2+FMA: the same source as typed_generic.cc, compiled with -mavx2 -mfma.
#include "kernels/typed.h"

#if defined(__AVX2__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx2
#include "kernels/typed_impl.h"
#else
namespace needle_cpu {
namespace avx2 {
const TypedTable* typed_table() { return nullptr; }
}  // namespace avx2
}  // namespace needle_cpu
#endif
