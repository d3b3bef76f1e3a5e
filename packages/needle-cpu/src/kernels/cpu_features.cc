#include "kernels/cpu_features.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace needle_cpu {
namespace {

Isa best_supported() {
  if (cpu_has_avx512()) return Isa::kAvx512;
  if (cpu_has_avx2_fma()) return Isa::kAvx2;
  return Isa::kGeneric;
}

// NEEDLE_CPU_ISA caps the level: asking for avx512 on an AVX2-only CPU gives avx2, never a
// kernel the CPU cannot run.
Isa detect() {
  Isa best = best_supported();
  const char* env = std::getenv("NEEDLE_CPU_ISA");
  if (env == nullptr || *env == '\0') return best;
  Isa want;
  if (!isa_from_name(env, &want)) {
    std::fprintf(stderr, "needle_cpu: ignoring NEEDLE_CPU_ISA=%s (expected generic, avx2 or avx512)\n", env);
    return best;
  }
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>(detect())};
  return isa;
}

}  // namespace

bool cpu_has_avx2_fma() {
#if defined(NEEDLE_CPU_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(NEEDLE_CPU_HAVE_AVX512) && (defined(__x86_64__) || defined(__i386__))
  // libgcc reports avx512* only when the OS also saves the zmm and mask registers (XCR0).
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return cpu_has_avx512();
    case Isa::kAvx2: return cpu_has_avx2_fma();
    default: return true;
  }
}

Isa active_isa() { return static_cast<Isa>(current().load(std::memory_order_relaxed)); }

bool set_isa(Isa isa) {
  if (!cpu_supports(isa)) return false;
  current().store(static_cast<int>(isa));
  return true;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

bool isa_from_name(const char* name, Isa* isa) {
  for (Isa i : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(name, isa_name(i)) == 0) {
      *isa = i;
      return true;
    }
  }
  return false;
}

}  // namespace needle_cpu
