// Hand-written AVX-512 exp, tanh and sigmoid for the AVX-512 elementwise table
// (portable/ewise_loops.cc compiled for AVX-512 calls use_vector_math). GCC's vectorised forms of
// those spend most of their time on the exponent arithmetic and a full-precision division; here
// vscalefps applies 2^n (denormal results included) and the reciprocal is rcp14 plus one Newton
// step (about 2^-28 relative error). Same polynomials and special values (inf, nan, -0,
// denormals) as the portable loops.
#include <cstdint>

#include "kernels/ewise.h"
#include "kernels/ewise_math.h"

// GCC 12 warns about its own intrinsics' _mm512_undefined_ps (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

namespace needle_cpu {
namespace avx512 {
namespace {

using i64 = std::int64_t;
using namespace ewise_math;

inline __m512 set1(float v) { return _mm512_set1_ps(v); }

// exp on x already in [kExpLo, kExpHi]: x = n ln2 + r, exp(r) by the polynomial, times 2^n.
inline __m512 exp_in_range(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, set1(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, set1(kLn2Lo), r);
  __m512 p = set1(kExpPoly[0]);
  p = _mm512_fmadd_ps(p, r, set1(kExpPoly[1]));
  p = _mm512_fmadd_ps(p, r, set1(kExpPoly[2]));
  p = _mm512_fmadd_ps(p, r, set1(kExpPoly[3]));
  p = _mm512_fmadd_ps(p, r, set1(kExpPoly[4]));
  p = _mm512_fmadd_ps(p, r, set1(kExpPoly[5]));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), set1(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __m512 exp16(__m512 x) {
  __m512 y = exp_in_range(_mm512_min_ps(_mm512_max_ps(x, set1(kExpLo)), set1(kExpHi)));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, set1(kExpHi), _CMP_GT_OQ), set1(kInf));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, set1(kExpLo), _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// 1 / d for d >= 1 (finite): rcp14, then q + q (1 - d q).
inline __m512 recip(__m512 d) {
  const __m512 q = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(q, _mm512_fnmadd_ps(d, q, set1(1.0f)), q);
}

inline __m512 tanh16(__m512 x) {
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const __m512 ax = _mm512_andnot_ps(sign, x);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 s = set1(kTanhPoly[0]);
  s = _mm512_fmadd_ps(s, z, set1(kTanhPoly[1]));
  s = _mm512_fmadd_ps(s, z, set1(kTanhPoly[2]));
  s = _mm512_fmadd_ps(s, z, set1(kTanhPoly[3]));
  s = _mm512_fmadd_ps(s, z, set1(kTanhPoly[4]));
  s = _mm512_fmadd_ps(_mm512_mul_ps(s, z), ax, ax);  // tanh(|x|): x's sign goes on last (-0 too)
  // tanh(x) rounds to 1 from x = 9.01: clamping keeps exp finite (and inf out of the reciprocal).
  const __m512 ac = _mm512_min_ps(ax, set1(10.0f));
  const __m512 e = exp_in_range(_mm512_add_ps(ac, ac));
  const __m512 l = _mm512_fnmadd_ps(set1(2.0f), recip(_mm512_add_ps(e, set1(1.0f))), set1(1.0f));  // >= 0
  // nan fails the compare and keeps the polynomial, which is nan; then x's sign on either.
  const __m512 t = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(ax, set1(kTanhSmall), _CMP_GE_OQ), l);
  return _mm512_or_ps(t, _mm512_and_ps(x, sign));
}

// As sigmoid_f: exp(-|x|) never overflows; 1 / (1 + e) for x >= 0, e / (1 + e) below.
inline __m512 sigmoid16(__m512 x) {
  const __m512 e = exp16(_mm512_or_ps(x, _mm512_set1_ps(-0.0f)));  // exp(-|x|), nan stays nan
  const __m512 s = recip(_mm512_add_ps(e, set1(1.0f)));
  return _mm512_mask_mov_ps(_mm512_mul_ps(e, s), _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), s);
}

// Whole vectors, then one masked vector for the tail; in place (out == a) is fine.
template <__m512 (*F)(__m512)>
void vector_unary(const float* a, float* out, i64 n) {
  i64 i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, F(_mm512_loadu_ps(a + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, F(_mm512_maskz_loadu_ps(m, a + i)));
  }
}

}  // namespace

void use_vector_math(EwiseTable& t) {
  t.unary[static_cast<int>(Unary::kExp)] = vector_unary<exp16>;
  t.unary[static_cast<int>(Unary::kTanh)] = vector_unary<tanh16>;
  t.unary[static_cast<int>(Unary::kSigmoid)] = vector_unary<sigmoid16>;
}

}  // namespace avx512
}  // namespace needle_cpu
