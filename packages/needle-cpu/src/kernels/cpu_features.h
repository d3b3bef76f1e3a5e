// Which instruction set the kernels use, chosen once at run time from the CPU's features.
#pragma once

namespace needle_cpu {

// Ordered: each level's kernels need everything the levels below it need.
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// True when this build has AVX2 kernels and the CPU runs AVX2 and FMA.
bool cpu_has_avx2_fma();
// True when this build has AVX-512 kernels and the CPU (and OS) runs AVX-512 F, VL, DQ and FMA.
bool cpu_has_avx512();
// Whether this CPU and build can run `isa`'s kernels.
bool cpu_supports(Isa isa);
// The ISA in use: the best the CPU supports, capped by NEEDLE_CPU_ISA=generic|avx2|avx512 (or set_isa).
Isa active_isa();
// Switch ISA (tests use it to cover every path); false when the CPU cannot run it.
bool set_isa(Isa isa);
const char* isa_name(Isa isa);
// The ISA named `name` ("generic", "avx2", "avx512"); false when no ISA has that name.
bool isa_from_name(const char* name, Isa* isa);

// The kernel table of the active ISA, falling back a level when this build lacks one (the AVX
// table functions return null then). Every per-ISA family (ewise, lstm, optim) picks this way.
template <typename Table>
const Table* active_table(const Table* (*avx512)(), const Table* (*avx2)(), const Table* (*generic)()) {
  const Isa isa = active_isa();
  if (isa == Isa::kAvx512) {
    if (const Table* t = avx512()) return t;
  }
  if (isa == Isa::kAvx512 || isa == Isa::kAvx2) {
    if (const Table* t = avx2()) return t;
  }
  return generic();
}

}  // namespace needle_cpu
