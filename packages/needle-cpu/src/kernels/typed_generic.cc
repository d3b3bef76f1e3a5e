// Portable kernels on every dtype (baseline ISA).
#define NEEDLE_ISA_NS generic
#include "kernels/typed_impl.h"
