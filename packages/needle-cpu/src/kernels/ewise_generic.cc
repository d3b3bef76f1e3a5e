// Portable elementwise kernels (baseline ISA).
#include <algorithm>
#define NEEDLE_ISA_NS generic
#include "kernels/ewise_impl.h"
