// Kernels on every dtype for AVX-512: the same source as typed_generic.cc, compiled with
// -mavx512f -mavx512vl -mavx512dq -mfma (512-bit vectors; vpmullq and vpmaxsq for int64).
#include "kernels/typed.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx512
#include "kernels/typed_impl.h"
#else
namespace needle_cpu {
namespace avx512 {
const TypedTable* typed_table() { return nullptr; }
}  // namespace avx512
}  // namespace needle_cpu
#endif
