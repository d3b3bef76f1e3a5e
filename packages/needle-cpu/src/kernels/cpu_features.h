// Which instruction set the kernels use, chosen once at run time from the CPU's features.
#pragma once

namespace needle_cpu {

enum class Isa { kGeneric = 0, kAvx2 = 1 };

// True when this build has AVX2 kernels and the CPU runs AVX2 and FMA.
bool cpu_has_avx2_fma();
// The ISA in use: the best the CPU supports unless NEEDLE_CPU_ISA=generic (or set_isa) says otherwise.
Isa active_isa();
// Switch ISA (tests use it to cover the portable path); false when the CPU cannot run it.
bool set_isa(Isa isa);
const char* isa_name(Isa isa);

}  // namespace needle_cpu
