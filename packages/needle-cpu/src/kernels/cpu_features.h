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

// What the active ISA's `fn` returns: avx512(), else avx2(), else generic(), a level taken only
// when it is active (or above) and this build has it. The avx2 and avx512 kernels are built on
// x86-64 only (CMakeLists.txt); NEEDLE_CPU_PICK passes null for them elsewhere.
template <typename R>
R for_active_isa(R (*avx512)(), R (*avx2)(), R (*generic)()) {
  const Isa isa = active_isa();
  if (isa == Isa::kAvx512 && avx512 != nullptr) return avx512();
  if ((isa == Isa::kAvx512 || isa == Isa::kAvx2) && avx2 != nullptr) return avx2();
  return generic();
}

}  // namespace needle_cpu

#ifdef NEEDLE_CPU_HAVE_AVX512
#define NEEDLE_CPU_IF_AVX512(f) f
#else
#define NEEDLE_CPU_IF_AVX512(f) nullptr
#endif
#ifdef NEEDLE_CPU_HAVE_AVX2
#define NEEDLE_CPU_IF_AVX2(f) f
#else
#define NEEDLE_CPU_IF_AVX2(f) nullptr
#endif
// The active ISA's `fn` of the per-ISA namespaces: NEEDLE_CPU_PICK(ewise_table) is the table of
// generic::ewise_table, avx2::ewise_table or avx512::ewise_table.
#define NEEDLE_CPU_PICK(fn)                                                                              \
  ::needle_cpu::for_active_isa<decltype(generic::fn())>(NEEDLE_CPU_IF_AVX512(avx512::fn),               \
                                                        NEEDLE_CPU_IF_AVX2(avx2::fn), generic::fn)
