// Elementwise kernels written once as plain, branch-free loops that the compiler vectorises;
// CMakeLists.txt compiles this file once per ISA (baseline, -mavx2 -mfma, -mavx512f/vl/dq), each
// inside its own namespace NEEDLE_ISA_NS. The AVX-512 table then takes the hand-written exp, tanh
// and sigmoid of avx512/ewise_math.cc. The math functions are polynomial approximations (about
// 1-2 ulp) so that exp/log/tanh vectorise too; special values (inf, nan, 0, denormals) follow
// IEEE/numpy.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/ewise.h"
#include "kernels/ewise_math.h"

#ifndef NEEDLE_ISA_NS
#error "NEEDLE_ISA_NS is defined by CMakeLists.txt, which compiles this file once per ISA"
#endif

namespace needle_cpu {
namespace NEEDLE_ISA_NS {
namespace {

using i64 = std::int64_t;
using namespace ewise_math;

inline float as_float(std::int32_t i) { return __builtin_bit_cast(float, i); }
inline std::int32_t as_int(float f) { return __builtin_bit_cast(std::int32_t, f); }

// max that returns nan when either side is nan, as numpy.maximum does.
inline float nan_max(float a, float b) { return (a >= b || a != a) ? a : b; }

inline float exp_f(float x) {
  const float hi = kExpHi, lo = kExpLo;
  float xc = x != x ? 0.0f : (x > hi ? hi : (x < lo ? lo : x));
  // n = round(x / ln2) with the 1.5 * 2^23 trick (exact for |v| < 2^22).
  float n = (xc * kLog2e + 12582912.0f) - 12582912.0f;
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kExpPoly[0];
  p = p * r + kExpPoly[1];
  p = p * r + kExpPoly[2];
  p = p * r + kExpPoly[3];
  p = p * r + kExpPoly[4];
  p = p * r + kExpPoly[5];
  p = p * r * r + r + 1.0f;
  // 2^n in two factors so that n down to -150 (denormal results) stays representable.
  std::int32_t ni = static_cast<std::int32_t>(n);
  std::int32_t n1 = ni >> 1, n2 = ni - n1;
  float y = p * as_float((n1 + 127) << 23) * as_float((n2 + 127) << 23);
  y = x > hi ? kInf : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

inline float log_f(float x) {
  // Denormals: scale into the normal range first.
  bool den = x < 1.17549435e-38f;
  float xs = den ? x * 8388608.0f : x;
  std::int32_t bits = as_int(xs);
  std::int32_t e = ((bits >> 23) & 0xff) - 126;  // xs = m * 2^e, m in [0.5, 1)
  e = den ? e - 23 : e;
  float m = as_float((bits & 0x007fffff) | 0x3f000000);
  bool low = m < 0.707106781186547524f;  // keep the argument of log1p in [-0.29, 0.41]
  float f = low ? m + m - 1.0f : m - 1.0f;
  float ef = static_cast<float>(low ? e - 1 : e);
  float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y = y - 2.12194440e-4f * ef;
  y = y - 0.5f * z;
  float r = f + y + 0.693359375f * ef;
  r = x == 0.0f ? -kInf : r;
  r = x < 0.0f ? kNan : r;
  r = x == kInf ? kInf : r;
  return x != x ? x : r;
}

inline float tanh_f(float x) {
  float ax = std::fabs(x);
  // Small |x|: odd polynomial (no cancellation); large: 1 - 2 / (exp(2|x|) + 1).
  float z = x * x;
  float s = kTanhPoly[0];
  s = s * z + kTanhPoly[1];
  s = s * z + kTanhPoly[2];
  s = s * z + kTanhPoly[3];
  s = s * z + kTanhPoly[4];
  s = std::copysign(s * z * x + x, x);  // tanh(-0) is -0 (x + ... rounds -0 + 0 to +0)
  float l = 1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f);
  l = x < 0.0f ? -l : l;
  return ax < kTanhSmall ? s : l;
}

// exp of -|x| never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0 (keeps tiny results).
inline float sigmoid_f(float x) {
  float e = exp_f(-std::fabs(x));
  float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

template <class Op>
void binary_loop(const float* __restrict a, const float* __restrict b, float* __restrict out, i64 n) {
  Op op;
  for (i64 i = 0; i < n; ++i) out[i] = op(a[i], b[i]);
}
// In-place variants (out aliasing an input) take the same loop without restrict.
template <class Op>
void binary_kernel(const float* a, const float* b, float* out, i64 n) {
  if (out == a || out == b) {
    Op op;
    for (i64 i = 0; i < n; ++i) out[i] = op(a[i], b[i]);
  } else {
    binary_loop<Op>(a, b, out, n);
  }
}

template <class Op>
void scalar_kernel(const float* a, float v, float* out, i64 n) {
  Op op;
  if (out == a) {
    for (i64 i = 0; i < n; ++i) out[i] = op(out[i], v);
  } else {
    const float* __restrict ar = a;
    float* __restrict o = out;
    for (i64 i = 0; i < n; ++i) o[i] = op(ar[i], v);
  }
}

template <class Op>
void unary_kernel(const float* a, float* out, i64 n) {
  Op op;
  if (out == a) {
    for (i64 i = 0; i < n; ++i) out[i] = op(out[i]);
  } else {
    const float* __restrict ar = a;
    float* __restrict o = out;
    for (i64 i = 0; i < n; ++i) o[i] = op(ar[i]);
  }
}

struct Add { float operator()(float a, float b) const { return a + b; } };
struct Sub { float operator()(float a, float b) const { return a - b; } };
struct Mul { float operator()(float a, float b) const { return a * b; } };
struct Div { float operator()(float a, float b) const { return a / b; } };
struct Max { float operator()(float a, float b) const { return nan_max(a, b); } };
struct Eq { float operator()(float a, float b) const { return a == b ? 1.0f : 0.0f; } };
struct Ge { float operator()(float a, float b) const { return a >= b ? 1.0f : 0.0f; } };
struct Pow { float operator()(float a, float b) const { return std::pow(a, b); } };
struct ReluBackward { float operator()(float x, float g) const { return x > 0.0f ? g : 0.0f; } };
struct RSub { float operator()(float a, float v) const { return v - a; } };
struct RDiv { float operator()(float a, float v) const { return v / a; } };

struct Neg { float operator()(float a) const { return -a; } };
struct Log { float operator()(float a) const { return log_f(a); } };
struct Exp { float operator()(float a) const { return exp_f(a); } };
struct Tanh { float operator()(float a) const { return tanh_f(a); } };
struct Sqrt { float operator()(float a) const { return std::sqrt(a); } };
struct Sigmoid { float operator()(float a) const { return sigmoid_f(a); } };
struct Relu { float operator()(float a) const { return a > 0.0f ? a : (a != a ? a : 0.0f); } };

// Sums in 32 independent lanes (vectorisable without reassociation), blocks folded into a
// double so long rows keep float32-level accuracy.
float row_sum(const float* a, i64 n) {
  constexpr int L = 32;
  double total = 0.0;
  i64 i = 0;
  while (n - i >= L) {
    float acc[L] = {};
    i64 end = i + std::min<i64>((n - i) / L * L, 4096);
    for (; i < end; i += L)
      for (int j = 0; j < L; ++j) acc[j] += a[i + j];
    float s = 0.0f;
    for (int j = 0; j < L; ++j) s += acc[j];
    total += s;
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i];
  return static_cast<float>(total + tail);
}

// Plain max per lane (vectorises to maxps) with a separate "saw a nan" flag per lane, cheaper
// than a nan-propagating select on every element; a nan anywhere makes the result nan.
float row_max(const float* a, i64 n) {
  constexpr int L = 32;
  float m = a[0];
  bool nan = a[0] != a[0];
  i64 i = 0;
  if (n >= L) {
    float acc[L];
    std::int32_t seen[L] = {};
    for (int j = 0; j < L; ++j) {
      acc[j] = a[j];
      seen[j] = a[j] != a[j] ? -1 : 0;
    }
    for (i = L; i + L <= n; i += L)
      for (int j = 0; j < L; ++j) {
        float x = a[i + j];
        acc[j] = acc[j] > x ? acc[j] : x;
        seen[j] |= x != x ? -1 : 0;
      }
    for (int j = 0; j < L; ++j) {
      m = nan_max(m, acc[j]);
      nan = nan || seen[j] != 0;
    }
  }
  for (; i < n; ++i) m = nan_max(m, a[i]);
  return nan ? kNan : m;
}

EwiseTable make_table() {
  EwiseTable t{};
  auto B = [&](Binary op, void (*f)(const float*, const float*, float*, i64)) { t.binary[static_cast<int>(op)] = f; };
  auto S = [&](ScalarOp op, void (*f)(const float*, float, float*, i64)) { t.scalar[static_cast<int>(op)] = f; };
  auto U = [&](Unary op, void (*f)(const float*, float*, i64)) { t.unary[static_cast<int>(op)] = f; };
  B(Binary::kAdd, binary_kernel<Add>);
  B(Binary::kSub, binary_kernel<Sub>);
  B(Binary::kMul, binary_kernel<Mul>);
  B(Binary::kDiv, binary_kernel<Div>);
  B(Binary::kMaximum, binary_kernel<Max>);
  B(Binary::kEq, binary_kernel<Eq>);
  B(Binary::kGe, binary_kernel<Ge>);
  B(Binary::kPower, binary_kernel<Pow>);
  B(Binary::kReluBackward, binary_kernel<ReluBackward>);
  S(ScalarOp::kAdd, scalar_kernel<Add>);
  S(ScalarOp::kMul, scalar_kernel<Mul>);
  S(ScalarOp::kDiv, scalar_kernel<Div>);
  S(ScalarOp::kPower, scalar_kernel<Pow>);
  S(ScalarOp::kMaximum, scalar_kernel<Max>);
  S(ScalarOp::kEq, scalar_kernel<Eq>);
  S(ScalarOp::kGe, scalar_kernel<Ge>);
  S(ScalarOp::kRsub, scalar_kernel<RSub>);
  S(ScalarOp::kRdiv, scalar_kernel<RDiv>);
  U(Unary::kNeg, unary_kernel<Neg>);
  U(Unary::kLog, unary_kernel<Log>);
  U(Unary::kExp, unary_kernel<Exp>);
  U(Unary::kTanh, unary_kernel<Tanh>);
  U(Unary::kSqrt, unary_kernel<Sqrt>);
  U(Unary::kSigmoid, unary_kernel<Sigmoid>);
  U(Unary::kRelu, unary_kernel<Relu>);
  t.row_sum = row_sum;
  t.row_max = row_max;
#ifdef NEEDLE_ISA_AVX512
  use_vector_math(t);  // avx512/ewise_math.cc
#endif
  return t;
}

}  // namespace

const EwiseTable* ewise_table() {
  static const EwiseTable table = make_table();
  return &table;
}

}  // namespace NEEDLE_ISA_NS
}  // namespace needle_cpu
