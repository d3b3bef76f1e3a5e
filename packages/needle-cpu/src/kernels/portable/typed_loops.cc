// The kernels of typed.h, written once as templates over the dtype and compiled once per ISA by
// CMakeLists.txt (baseline, -mavx2 -mfma, -mavx512f/vl/dq), each inside its own namespace
// NEEDLE_ISA_NS, as ewise_loops.cc is. The loops
// are plain and branch-free so that GCC vectorises them for every element type (integer ones
// included: build with -fopt-info-vec to see which).
//
// Integer arithmetic is done in the unsigned type of the same width (it wraps modulo 2**bits,
// never overflows into undefined behaviour); bool bytes are read as `!= 0` and written as 0/1.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "kernels/typed.h"

#ifndef NEEDLE_ISA_NS
#error "NEEDLE_ISA_NS is defined by CMakeLists.txt, which compiles this file once per ISA"
#endif

namespace needle_cpu {
namespace NEEDLE_ISA_NS {
namespace {

// The type integer arithmetic runs in: the unsigned twin (wraps without UB); floats are themselves.
template <class T> struct Wrap { using type = T; };
template <> struct Wrap<std::int32_t> { using type = std::uint32_t; };
template <> struct Wrap<std::int64_t> { using type = std::uint64_t; };
template <class T> using wrap_t = typename Wrap<T>::type;

// An element's value: a bool byte counts as 0 or 1.
template <DType D>
inline storage_t<D> load(storage_t<D> x) {
  if constexpr (D == DType::kBool) return x != 0;
  else return x;
}

template <DType D>
inline storage_t<D> get(Scalar v) {
  if constexpr (D == DType::kBool || D == DType::kUint8) return v.u8;
  else if constexpr (D == DType::kInt32) return v.i32;
  else if constexpr (D == DType::kInt64) return v.i64;
  else if constexpr (D == DType::kFloat32) return v.f32;
  else return v.f64;
}

// maximum/minimum with numpy's NaN propagation (a NaN on either side gives NaN).
template <class T> inline T max_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (a >= b || a != a) ? a : b;
  else return a > b ? a : b;
}
template <class T> inline T min_of(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (a <= b || a != a) ? a : b;
  else return a < b ? a : b;
}

template <class T> inline T sigmoid(T x) {  // exp(-|x|) never overflows
  T e = std::exp(-std::fabs(x));
  T s = T(1) / (T(1) + e);
  return x >= T(0) ? s : e * s;
}

// ---- elementwise operations on loaded values
template <TBinary Op, DType D>
inline storage_t<D> binary_op(storage_t<D> a, storage_t<D> b) {
  using T = storage_t<D>;
  using W = wrap_t<T>;
  if constexpr (Op == TBinary::kAdd) return T(W(a) + W(b));
  else if constexpr (Op == TBinary::kSub) return T(W(a) - W(b));
  else if constexpr (Op == TBinary::kMul) return T(W(a) * W(b));
  else if constexpr (Op == TBinary::kDiv) return a / b;
  else if constexpr (Op == TBinary::kMaximum) return max_of(a, b);
  else if constexpr (Op == TBinary::kMinimum) return min_of(a, b);
  else if constexpr (Op == TBinary::kPower) return std::pow(a, b);
  else if constexpr (Op == TBinary::kAnd) return T(a & b);
  else if constexpr (Op == TBinary::kOr) return T(a | b);
  else return T(a ^ b);
}

template <TCompare Op, class T>
inline bool compare_op(T a, T b) {  // IEEE: every comparison with NaN is false but !=
  if constexpr (Op == TCompare::kEq) return a == b;
  else if constexpr (Op == TCompare::kNe) return a != b;
  else if constexpr (Op == TCompare::kLt) return a < b;
  else if constexpr (Op == TCompare::kLe) return a <= b;
  else if constexpr (Op == TCompare::kGt) return a > b;
  else return a >= b;
}

template <TScalar Op, DType D>
inline storage_t<D> scalar_op(storage_t<D> a, storage_t<D> v) {
  using T = storage_t<D>;
  using W = wrap_t<T>;
  if constexpr (Op == TScalar::kAdd) return T(W(a) + W(v));
  else if constexpr (Op == TScalar::kMul) return T(W(a) * W(v));
  else if constexpr (Op == TScalar::kDiv) return a / v;
  else if constexpr (Op == TScalar::kPower) return std::pow(a, v);
  else if constexpr (Op == TScalar::kMaximum) return max_of(a, v);
  else if constexpr (Op == TScalar::kMinimum) return min_of(a, v);
  else if constexpr (Op == TScalar::kRsub) return T(W(v) - W(a));
  else return v / a;
}

template <TUnary Op, DType D>
inline storage_t<D> unary_op(storage_t<D> a) {
  using T = storage_t<D>;
  using W = wrap_t<T>;
  if constexpr (Op == TUnary::kNeg) {
    if constexpr (std::is_floating_point_v<T>) return -a;
    else return T(W(0) - W(a));
  } else if constexpr (Op == TUnary::kAbs) {
    if constexpr (std::is_floating_point_v<T>) return std::fabs(a);
    else if constexpr (std::is_signed_v<T>) return a < 0 ? T(W(0) - W(a)) : a;  // abs(min) wraps to min, as numpy
    else return a;
  } else if constexpr (Op == TUnary::kNot) {
    if constexpr (D == DType::kBool) return T(a == 0);
    else return T(~a);
  } else if constexpr (Op == TUnary::kLog) return std::log(a);
  else if constexpr (Op == TUnary::kExp) return std::exp(a);
  else if constexpr (Op == TUnary::kTanh) return std::tanh(a);
  else if constexpr (Op == TUnary::kSqrt) return std::sqrt(a);
  else if constexpr (Op == TUnary::kSigmoid) return sigmoid(a);
  else return a > T(0) ? a : (a != a ? a : T(0));  // relu keeps NaN
}

// Value conversion for cast. Float to integer truncates toward zero; NaN gives 0 and values beyond
// the target's range its nearest end (out of range is undefined behaviour in C++, so clamp first).
template <DType From, DType To>
inline storage_t<To> convert(storage_t<From> x) {
  using S = storage_t<From>;
  using R = storage_t<To>;
  if constexpr (To == DType::kBool) {
    return R(x != 0);  // NaN != 0: True
  } else if constexpr (From == DType::kBool) {
    return R(std::int32_t(std::min<std::uint8_t>(x, 1)));  // this form vectorises (x != 0 does not, to floats)
  } else if constexpr (std::is_floating_point_v<S> && std::is_same_v<R, std::uint8_t>) {
    S c = x >= S(0) ? x : S(0);  // NaN fails both compares: 0
    c = c <= S(255) ? c : S(255);
    return R(std::int32_t(c));  // through int32: vectorises
  } else if constexpr (std::is_floating_point_v<S> && !std::is_floating_point_v<R>) {
    constexpr S lo = S(std::numeric_limits<R>::min());  // 0 or -2**(bits-1): exact in S
    constexpr S hi = std::is_signed_v<R> ? -lo : S(std::numeric_limits<R>::max()) + S(1);  // 2**bits(-1): exact
    return x != x ? R(0) : (x <= lo ? std::numeric_limits<R>::min() : (x >= hi ? std::numeric_limits<R>::max() : R(x)));
  } else {
    return static_cast<R>(x);  // integer narrowing wraps (as numpy); to float rounds
  }
}

// ---- loops over [0, n). `out` may be an input: each element is read before it is written.
template <TBinary Op, DType D>
void binary_kernel(const void* a_, const void* b_, void* out_, i64 n) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  T* out = static_cast<T*>(out_);
  for (i64 i = 0; i < n; ++i) out[i] = binary_op<Op, D>(load<D>(a[i]), load<D>(b[i]));
}

template <TCompare Op, DType D>
void compare_kernel(const void* a_, const void* b_, std::uint8_t* out, i64 n) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  const T* b = static_cast<const T*>(b_);
  for (i64 i = 0; i < n; ++i) out[i] = compare_op<Op>(load<D>(a[i]), load<D>(b[i]));
}

template <TScalar Op, DType D>
void scalar_kernel(const void* a_, Scalar v, void* out_, i64 n) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  T* out = static_cast<T*>(out_);
  const T val = get<D>(v);
  for (i64 i = 0; i < n; ++i) out[i] = scalar_op<Op, D>(load<D>(a[i]), val);
}

template <TCompare Op, DType D>
void scalar_compare_kernel(const void* a_, Scalar v, std::uint8_t* out, i64 n) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  const T val = get<D>(v);
  for (i64 i = 0; i < n; ++i) out[i] = compare_op<Op>(load<D>(a[i]), val);
}

template <TUnary Op, DType D>
void unary_kernel(const void* a_, void* out_, i64 n) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  T* out = static_cast<T*>(out_);
  for (i64 i = 0; i < n; ++i) out[i] = unary_op<Op, D>(load<D>(a[i]));
}

template <DType From, DType To>
void cast_kernel(const void* a_, void* out_, i64 n) {
  const storage_t<From>* a = static_cast<const storage_t<From>*>(a_);
  storage_t<To>* out = static_cast<storage_t<To>*>(out_);
  for (i64 i = 0; i < n; ++i) out[i] = convert<From, To>(a[i]);
}

// where only moves bits: the elements are handled as unsigned words of their width, and the select
// is a mask (a ?: on elements wider than the byte of cond does not vectorise with GCC 12).
template <DType D>
void where_kernel(const std::uint8_t* cond, const void* a_, const void* b_, void* out_, i64 n) {
  using M = std::conditional_t<sizeof(storage_t<D>) == 1, std::uint8_t,
                               std::conditional_t<sizeof(storage_t<D>) == 4, std::uint32_t, std::uint64_t>>;
  const M* a = static_cast<const M*>(a_);
  const M* b = static_cast<const M*>(b_);
  M* out = static_cast<M*>(out_);
  for (i64 i = 0; i < n; ++i) {
    const M m = M(M(0) - M(cond[i] != 0));
    out[i] = M((a[i] & m) | (b[i] & M(~m)));
  }
}

// ---- one row of a reduction
// Floats sum in L independent lanes (vectorisable without reassociating), blocks folded into a
// double; integers sum in their wrapping type, which the compiler vectorises as it is.
template <DType D>
storage_t<D> row_sum(const storage_t<D>* a, i64 n) {
  using T = storage_t<D>;
  if constexpr (std::is_floating_point_v<T>) {
    constexpr int L = 128 / sizeof(T);
    double total = 0.0;
    i64 i = 0;
    while (n - i >= L) {
      T acc[L] = {};
      const i64 end = i + std::min<i64>((n - i) / L * L, 4096);
      for (; i < end; i += L)
        for (int j = 0; j < L; ++j) acc[j] += a[i + j];
      T s = 0;
      for (int j = 0; j < L; ++j) s += acc[j];
      total += s;
    }
    T tail = 0;
    for (; i < n; ++i) tail += a[i];
    return static_cast<T>(total + tail);
  } else {
    using W = wrap_t<T>;
    W acc = 0;
    for (i64 i = 0; i < n; ++i) acc = W(acc + W(a[i]));
    return T(acc);
  }
}

// max (Max) or min of a row of n >= 1: floats keep a plain max per lane plus a "saw a NaN" flag
// per lane (a NaN anywhere gives NaN); bool is any / all.
template <DType D, bool Max>
storage_t<D> row_extreme(const storage_t<D>* a, i64 n) {
  using T = storage_t<D>;
  if constexpr (D == DType::kBool) {
    std::uint8_t r = Max ? 0 : 1;
    for (i64 i = 0; i < n; ++i) {
      if constexpr (Max) r |= a[i];
      else r &= std::uint8_t(a[i] != 0);
    }
    return T(r != 0);
  } else if constexpr (std::is_floating_point_v<T>) {
    constexpr int L = 32;  // not 16 for double: GCC 12 unrolls a 16-lane loop fully and then cannot vectorise it
    using Flag = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
    T m = a[0];
    bool nan = a[0] != a[0];
    i64 i = 0;
    if (n >= L) {
      T acc[L];
      Flag seen[L] = {};
      for (int j = 0; j < L; ++j) {
        acc[j] = a[j];
        seen[j] = a[j] != a[j] ? -1 : 0;
      }
      for (i = L; i + L <= n; i += L)
        for (int j = 0; j < L; ++j) {
          const T x = a[i + j];
          if constexpr (Max) acc[j] = acc[j] > x ? acc[j] : x;
          else acc[j] = acc[j] < x ? acc[j] : x;
          seen[j] |= x != x ? -1 : 0;
        }
      for (int j = 0; j < L; ++j) {
        m = Max ? max_of(m, acc[j]) : min_of(m, acc[j]);
        nan = nan || seen[j] != 0;
      }
    }
    for (; i < n; ++i) m = Max ? max_of(m, a[i]) : min_of(m, a[i]);
    return nan ? std::numeric_limits<T>::quiet_NaN() : m;
  } else {
    T m = a[0];
    for (i64 i = 1; i < n; ++i) {
      if constexpr (Max) m = a[i] > m ? a[i] : m;
      else m = a[i] < m ? a[i] : m;
    }
    return m;
  }
}

// The first i with pred(a[i]) (there is one): blocks of 64 tested with a vectorised OR, then the
// block that hits searched one by one.
template <class T, class Pred>
i64 find_first(const T* a, i64 n, Pred pred) {
  constexpr i64 B = 64;
  i64 i = 0;
  for (; i + B <= n; i += B) {
    std::uint8_t hit = 0;
    for (i64 j = 0; j < B; ++j) hit |= std::uint8_t(pred(a[i + j]));
    if (hit) break;
  }
  for (; i < n; ++i)
    if (pred(a[i])) return i;
  return 0;
}

// argmax/argmin in two vectorised passes: the extreme, then its first position (the first NaN
// when there is one: NaN counts as the extreme, as in numpy).
template <DType D, bool Max>
i64 row_arg(const storage_t<D>* a, i64 n) {
  using T = storage_t<D>;
  const T m = row_extreme<D, Max>(a, n);
  if constexpr (std::is_floating_point_v<T>) {
    if (m != m) return find_first(a, n, [](T x) { return x != x; });
  }
  return find_first(a, n, [m](T x) { return load<D>(x) == m; });
}

template <TReduce Op, DType D>
void reduce_kernel(const void* a_, void* out_, i64 rows, i64 len) {
  using T = storage_t<D>;
  const T* a = static_cast<const T*>(a_);
  T* out = static_cast<T*>(out_);
  for (i64 r = 0; r < rows; ++r) {
    if constexpr (Op == TReduce::kSum) out[r] = row_sum<D>(a + r * len, len);
    else out[r] = row_extreme<D, Op == TReduce::kMax>(a + r * len, len);
  }
}

template <TArg Op, DType D>
void arg_kernel(const void* a_, i64* out, i64 rows, i64 len) {
  const storage_t<D>* a = static_cast<const storage_t<D>*>(a_);
  for (i64 r = 0; r < rows; ++r) out[r] = row_arg<D, Op == TArg::kArgmax>(a + r * len, len);
}

// Rows [r0, r1) of C = A @ B, cache-blocked: a kKB x kJB block of B (at most 256 KiB) is reused by
// every row, and the innermost loop (c[j] += a_ik * b[k][j]) is a vectorised axpy. Integer
// products accumulate in the wrapping type: the result is the product modulo 2**bits.
template <DType D>
void matmul_kernel(const void* a_, const void* b_, void* c_, i64 n, i64 p, i64 r0, i64 r1) {
  using W = wrap_t<storage_t<D>>;  // int32 data read as uint32 (an allowed alias) and so on
  constexpr i64 kKB = 128, kJB = 256;
  const W* a = static_cast<const W*>(a_);
  const W* b = static_cast<const W*>(b_);
  W* c = static_cast<W*>(c_);
  std::fill(c + r0 * p, c + r1 * p, W(0));
  for (i64 j0 = 0; j0 < p; j0 += kJB) {
    const i64 j1 = std::min(p, j0 + kJB);
    for (i64 k0 = 0; k0 < n; k0 += kKB) {
      const i64 k1 = std::min(n, k0 + kKB);
      for (i64 i = r0; i < r1; ++i) {
        W* __restrict ci = c + i * p;
        const W* ai = a + i * n;
        for (i64 k = k0; k < k1; ++k) {
          const W aik = ai[k];
          const W* __restrict bk = b + k * p;
          for (i64 j = j0; j < j1; ++j) ci[j] = W(ci[j] + W(aik * bk[j]));
        }
      }
    }
  }
}

template <DType D>
void scatter_add_kernel(const void* g_, const i64* idx, void* out_, i64 count, i64 row_size, i64 c0, i64 c1) {
  using W = wrap_t<storage_t<D>>;
  const W* g = static_cast<const W*>(g_);
  W* out = static_cast<W*>(out_);
  for (i64 i = 0; i < count; ++i) {
    W* __restrict o = out + idx[i] * row_size;
    const W* __restrict gi = g + i * row_size;
    for (i64 c = c0; c < c1; ++c) o[c] = W(o[c] + gi[c]);
  }
}

// ---- the table: an entry per (op, dtype) that the op's rule accepts
template <DType D> constexpr bool accepts(DTypeSet s) { return contains(s, D); }

template <DType D, int... Ops>
void add_binary(TypedTable& t, std::integer_sequence<int, Ops...>) {
  auto one = [&](auto op) {
    constexpr TBinary Op = TBinary(decltype(op)::value);
    if constexpr (accepts<D>(dtypes_of(Op))) t.binary[int(Op)][int(D)] = binary_kernel<Op, D>;
  };
  (one(std::integral_constant<int, Ops>{}), ...);
}

template <DType D, int... Ops>
void add_compare(TypedTable& t, std::integer_sequence<int, Ops...>) {
  ((t.compare[Ops][int(D)] = compare_kernel<TCompare(Ops), D>), ...);
  ((t.scalar_compare[Ops][int(D)] = scalar_compare_kernel<TCompare(Ops), D>), ...);
}

template <DType D, int... Ops>
void add_scalar(TypedTable& t, std::integer_sequence<int, Ops...>) {
  auto one = [&](auto op) {
    constexpr TScalar Op = TScalar(decltype(op)::value);
    if constexpr (accepts<D>(dtypes_of(Op))) t.scalar[int(Op)][int(D)] = scalar_kernel<Op, D>;
  };
  (one(std::integral_constant<int, Ops>{}), ...);
}

template <DType D, int... Ops>
void add_unary(TypedTable& t, std::integer_sequence<int, Ops...>) {
  auto one = [&](auto op) {
    constexpr TUnary Op = TUnary(decltype(op)::value);
    if constexpr (accepts<D>(dtypes_of(Op))) t.unary[int(Op)][int(D)] = unary_kernel<Op, D>;
  };
  (one(std::integral_constant<int, Ops>{}), ...);
}

template <DType D, int... To>
void add_casts(TypedTable& t, std::integer_sequence<int, To...>) {
  ((t.cast[int(D)][To] = cast_kernel<D, DType(To)>), ...);
}

template <DType D>
void add_dtype(TypedTable& t) {
  add_binary<D>(t, std::make_integer_sequence<int, int(TBinary::kCount)>{});
  add_compare<D>(t, std::make_integer_sequence<int, int(TCompare::kCount)>{});
  add_scalar<D>(t, std::make_integer_sequence<int, int(TScalar::kCount)>{});
  add_unary<D>(t, std::make_integer_sequence<int, int(TUnary::kCount)>{});
  add_casts<D>(t, std::make_integer_sequence<int, kNumDTypes>{});
  t.where[int(D)] = where_kernel<D>;
  if constexpr (accepts<D>(kNumericDTypes)) {
    t.reduce[int(TReduce::kSum)][int(D)] = reduce_kernel<TReduce::kSum, D>;
    t.matmul[int(D)] = matmul_kernel<D>;
    t.scatter_add[int(D)] = scatter_add_kernel<D>;
  }
  t.reduce[int(TReduce::kMax)][int(D)] = reduce_kernel<TReduce::kMax, D>;
  t.reduce[int(TReduce::kMin)][int(D)] = reduce_kernel<TReduce::kMin, D>;
  t.arg[int(TArg::kArgmax)][int(D)] = arg_kernel<TArg::kArgmax, D>;
  t.arg[int(TArg::kArgmin)][int(D)] = arg_kernel<TArg::kArgmin, D>;
}

TypedTable make_table() {
  TypedTable t{};
  add_dtype<DType::kBool>(t);
  add_dtype<DType::kUint8>(t);
  add_dtype<DType::kInt32>(t);
  add_dtype<DType::kInt64>(t);
  add_dtype<DType::kFloat32>(t);
  add_dtype<DType::kFloat64>(t);
  return t;
}

}  // namespace

const TypedTable* typed_table() {
  static const TypedTable table = make_table();
  return &table;
}

}  // namespace NEEDLE_ISA_NS
}  // namespace needle_cpu
