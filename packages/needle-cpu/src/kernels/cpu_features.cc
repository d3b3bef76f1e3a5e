#include "kernels/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace needle_cpu {
namespace {

Isa detect() {
  const char* env = std::getenv("NEEDLE_CPU_ISA");
  if (env != nullptr && std::strcmp(env, "generic") == 0) return Isa::kGeneric;
  return cpu_has_avx2_fma() ? Isa::kAvx2 : Isa::kGeneric;
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

Isa active_isa() { return static_cast<Isa>(current().load(std::memory_order_relaxed)); }

bool set_isa(Isa isa) {
  if (isa == Isa::kAvx2 && !cpu_has_avx2_fma()) return false;
  current().store(static_cast<int>(isa));
  return true;
}

const char* isa_name(Isa isa) { return isa == Isa::kAvx2 ? "avx2" : "generic"; }

}  // namespace needle_cpu
