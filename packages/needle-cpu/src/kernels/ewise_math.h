// Constants of the float32 exp and tanh approximations, shared by the portable loops
// (portable/ewise_loops.cc) and their hand-written AVX-512 forms (avx512/ewise_math.cc).
#pragma once
#include <limits>

namespace needle_cpu {
namespace ewise_math {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kExpHi = 88.72283935546875f, kExpLo = -103.972084045410f;
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
// exp(r) = 1 + r + r^2 * poly(r) on |r| <= ln2 / 2, highest power first.
constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
// tanh(x) = x + x^3 * poly(x^2) for |x| < kTanhSmall, highest power first.
constexpr float kTanhSmall = 0.625f;
constexpr float kTanhPoly[5] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f,
                                1.33314422036e-1f, -3.33332819422e-1f};

}  // namespace ewise_math
}  // namespace needle_cpu
