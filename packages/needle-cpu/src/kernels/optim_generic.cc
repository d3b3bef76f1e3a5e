// Portable fused optimiser loops (baseline ISA).
#define NEEDLE_ISA_NS generic
#include "kernels/optim_impl.h"
