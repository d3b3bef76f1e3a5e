// AVX2+FMA LSTM cell loops: the same source as lstm_generic.cc, compiled with -mavx2 -mfma.
#include "kernels/lstm.h"

#if defined(__AVX2__) && defined(__FMA__)
#define NEEDLE_ISA_NS avx2
#include "kernels/lstm_impl.h"
#else
namespace needle_cpu {
namespace avx2 {
const LstmTable* lstm_table() { return nullptr; }
}  // namespace avx2
}  // namespace needle_cpu
#endif
