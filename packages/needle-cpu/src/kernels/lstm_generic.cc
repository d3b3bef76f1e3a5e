// Portable LSTM cell loops (baseline ISA).
#define NEEDLE_ISA_NS generic
#include "kernels/lstm_impl.h"
