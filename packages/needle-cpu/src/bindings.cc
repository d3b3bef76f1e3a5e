// Python bindings: argument checks and registration only; the kernels know nothing of Python.
//
// Every size, offset and stride that Python passes is checked here, before any kernel runs,
// so no argument can make a kernel read or write outside a buffer: bad values raise
// ValueError, wrong types TypeError. Long kernels release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "array_type.h"
#include "dlpack.h"
#include "kernels/buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/ewise.h"
#include "kernels/ewise_strided.h"
#include "kernels/gemm.h"
#include "kernels/lstm.h"
#include "kernels/optim.h"
#include "kernels/batchnorm.h"
#include "kernels/softmax_xent.h"
#include "kernels/strided.h"
#include "kernels/threads.h"
#include "kernels/typed.h"

namespace py = pybind11;

namespace needle_cpu_py { void add_ewise_program(py::module_& m); }
using needle_cpu::Buffer;
using needle_cpu::DType;
using needle_cpu::DTypeSet;
using i64 = std::int64_t;

namespace {

constexpr i64 kMaxElements = i64(1) << 58;  // far beyond any real buffer; keeps index math in range
constexpr i64 kReleaseGilAbove = i64(1) << 14;
constexpr std::size_t kMaxDims = 32;

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string join(const std::vector<i64>& v) {
  std::ostringstream s;
  s << "(";
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << (v.size() == 1 ? ",)" : ")");
  return s.str();
}

i64 count_arg(const char* kernel, const char* name, i64 v) {
  if (v < 0 || v > kMaxElements) fail(std::string(kernel) + ": " + name + "=" + std::to_string(v) + " must be in [0, 2**58]");
  return v;
}

i64 product(const char* kernel, std::initializer_list<i64> xs) {
  i64 r = 1;
  for (i64 x : xs)
    if (__builtin_mul_overflow(r, x, &r) || r > kMaxElements) fail(std::string(kernel) + ": sizes overflow");
  return r;
}

void need_size(const char* kernel, const char* name, const Buffer& b, i64 want, bool exact) {
  if (exact ? b.size() != want : b.size() < want)
    fail(std::string(kernel) + ": buffer " + name + " has " + std::to_string(b.size()) + " elements, needs " +
         (exact ? "" : "at least ") + std::to_string(want));
}

// Argument checks declared once per kernel: every count in [0, 2**58], then each buffer holding at
// least the product of its dimensions (an overflowing product is an error too), in the order given.
void need_counts(const char* kernel, std::initializer_list<std::pair<const char*, i64>> counts) {
  for (auto [name, v] : counts) count_arg(kernel, name, v);
}
struct Holds {  // buffer `name` holds at least the product of `dims` elements
  const char* name;
  const Buffer& buf;
  std::initializer_list<i64> dims;
};
void need_sizes(const char* kernel, std::initializer_list<Holds> rules) {
  for (const Holds& r : rules) need_size(kernel, r.name, r.buf, product(kernel, r.dims), false);
}

// Runs `write(dst)` with dst the memory of out, or, when out shares memory with an input
// (`aliased`), a scratch buffer of `count` elements of out's dtype that is copied over out after:
// no kernel reads what it is writing.
template <class Write>
void write_via_scratch_if(bool aliased, Buffer& out, i64 count, Write&& write) {
  if (!aliased) return write(out.raw());
  Buffer tmp(count, out.dtype());
  write(tmp.raw());
  needle_cpu::copy_bytes(tmp.raw(), out.raw(), tmp.nbytes());
}

// The view (shape, strides, offset) over `buf`, checked to stay inside it; *total = its element count.
needle_cpu::View checked_view(const char* kernel, const char* name, const Buffer& buf, std::vector<i64> shape,
                              std::vector<i64> strides, i64 offset, i64* total) {
  if (shape.size() != strides.size())
    fail(std::string(kernel) + ": shape " + join(shape) + " and strides " + join(strides) + " differ in length");
  if (shape.size() > kMaxDims) fail(std::string(kernel) + ": at most 32 dimensions, got " + std::to_string(shape.size()));
  i64 n = 1, extent = 1;  // extent: the product of the nonzero dimensions (numpy's strides for to_numpy)
  for (i64 s : shape) {
    if (s < 0) fail(std::string(kernel) + ": shape " + join(shape) + " has a negative dimension");
    if (__builtin_mul_overflow(n, s, &n) || n > kMaxElements || (s > 0 && __builtin_mul_overflow(extent, s, &extent)) ||
        extent > kMaxElements)
      fail(std::string(kernel) + ": shape " + join(shape) + " is too large");
  }
  if (n > 0) {
    __int128 lo = offset, hi = offset;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      __int128 reach = static_cast<__int128>(shape[d] - 1) * strides[d];
      (reach < 0 ? lo : hi) += reach;
    }
    if (lo < 0 || hi >= buf.size()) {
      std::ostringstream s;
      s << kernel << ": the view shape " << join(shape) << ", strides " << join(strides) << ", offset " << offset
        << " reaches outside buffer " << name << " of " << buf.size() << " elements";
      fail(s.str());
    }
  }
  *total = n;
  return needle_cpu::View{std::move(shape), std::move(strides), offset};
}

// Releases the GIL for the rest of the scope when the work is large enough to be worth it.
struct MaybeRelease {
  std::optional<py::gil_scoped_release> release;
  explicit MaybeRelease(i64 work) {
    if (work >= kReleaseGilAbove) release.emplace();
  }
};

bool overlaps(const Buffer& x, const Buffer& y) { return &x == &y || x.raw() == y.raw(); }

// ---- dtype checks: a buffer of the wrong dtype is a TypeError naming the kernel, the argument and
// the dtypes (kernels never reinterpret bytes).
constexpr DType kF32 = DType::kFloat32;

std::string dtype_list(DTypeSet set) {
  std::string r;
  for (int d = 0; d < needle_cpu::kNumDTypes; ++d)
    if (needle_cpu::contains(set, DType(d))) r += std::string(r.empty() ? "" : ", ") + needle_cpu::dtype_name(DType(d));
  return r;
}

[[noreturn]] void dtype_fail(const char* kernel, const char* arg, const Buffer& b, const std::string& expected) {
  throw py::type_error(std::string(kernel) + ": " + arg + " has dtype " + needle_cpu::dtype_name(b.dtype()) +
                       ", expected " + expected);
}

void need_dtype_in(const char* kernel, const char* arg, const Buffer& b, DTypeSet allowed) {
  if (needle_cpu::contains(allowed, b.dtype())) return;
  const bool one = (allowed & (allowed - 1)) == 0;
  dtype_fail(kernel, arg, b, one ? dtype_list(allowed) : "one of (" + dtype_list(allowed) + ")");
}

void need_dtype(const char* kernel, const char* arg, const Buffer& b, DType want) {
  if (b.dtype() != want) dtype_fail(kernel, arg, b, needle_cpu::dtype_name(want));
}

void need_same_dtype(const char* kernel, const char* arg, const Buffer& b, const char* ref_arg, const Buffer& ref) {
  if (b.dtype() != ref.dtype())
    dtype_fail(kernel, arg, b, std::string(needle_cpu::dtype_name(ref.dtype())) + " (the dtype of " + ref_arg + ")");
}

// The fused kernels (protocol.FUSED_KERNELS), conv2d_nhwc and matmul_tiled run on float32 only.
void need_float32(const char* kernel, std::initializer_list<std::pair<const char*, const Buffer*>> args) {
  for (auto [name, b] : args)
    if (b != nullptr && b->dtype() != kF32)
      dtype_fail(kernel, name, *b, "float32 (needle-cpu's fused kernels run on FUSED_DTYPES = ('float32',))");
}

// A Python scalar as an element of dtype `dt`: a float (or int) for float buffers; an int in range
// for integer and bool buffers (an int64 never goes through a double).
needle_cpu::Scalar to_scalar(const char* kernel, DType dt, py::handle val) {
  needle_cpu::Scalar s{};
  if (needle_cpu::is_float(dt)) {
    const double d = PyFloat_Check(val.ptr()) ? PyFloat_AS_DOUBLE(val.ptr()) : PyFloat_AsDouble(val.ptr());
    if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    if (dt == kF32) s.f32 = static_cast<float>(d);
    else s.f64 = d;
    return s;
  }
  if (!PyLong_Check(val.ptr()) && !(PyIndex_Check(val.ptr()) && !PyFloat_Check(val.ptr())))
    throw py::type_error(std::string(kernel) + ": val must be an int for a " + needle_cpu::dtype_name(dt) +
                         " buffer, got " + py::repr(val).cast<std::string>());
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(val.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  long long lo = std::numeric_limits<long long>::min(), hi = std::numeric_limits<long long>::max();
  if (dt == DType::kBool) lo = 0, hi = 1;
  else if (dt == DType::kUint8) lo = 0, hi = 255;
  else if (dt == DType::kInt32) lo = std::numeric_limits<std::int32_t>::min(), hi = std::numeric_limits<std::int32_t>::max();
  if (overflow || v < lo || v > hi)
    fail(std::string(kernel) + ": val=" + py::repr(val).cast<std::string>() + " is out of range for " +
         needle_cpu::dtype_name(dt) + " [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  if (dt == DType::kInt64) s.i64 = v;
  else if (dt == DType::kInt32) s.i32 = static_cast<std::int32_t>(v);
  else s.u8 = static_cast<std::uint8_t>(v);
  return s;
}

float to_float(py::handle val) {
  const double d = PyFloat_Check(val.ptr()) ? PyFloat_AS_DOUBLE(val.ptr()) : PyFloat_AsDouble(val.ptr());
  if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<float>(d);
}

using needle_cpu::Binary;
using needle_cpu::ScalarOp;
using needle_cpu::TBinary;
using needle_cpu::TCompare;
using needle_cpu::TScalar;
using needle_cpu::TUnary;
using needle_cpu::Unary;
constexpr int kNoFast = -1;  // no float32 SIMD kernel of its own: float32 goes through the typed table

// out = op(a, b), one dtype throughout; float32 goes to its SIMD kernel (ewise.h) when it has one.
void def_binary(py::module_& m, const char* name, TBinary op, int fast, const char* doc) {
  m.def(name, [name, op, fast](const Buffer& a, const Buffer& b, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    need_size(name, "b", b, out.size(), true);
    if (fast != kNoFast && a.dtype() == kF32 && b.dtype() == kF32 && out.dtype() == kF32) {
      MaybeRelease gil(out.size());
      needle_cpu::ewise_binary(Binary(fast), a.data(), b.data(), out.data(), out.size());
      return;
    }
    need_dtype_in(name, "a", a, needle_cpu::dtypes_of(op));
    need_same_dtype(name, "b", b, "a", a);
    need_same_dtype(name, "out", out, "a", a);
    MaybeRelease gil(out.size());
    needle_cpu::typed_binary(op, a.dtype(), a.raw(), b.raw(), out.raw(), out.size());
  }, py::arg("a"), py::arg("b"), py::arg("out"), doc);
}

// out (bool) = a op b. `legacy` (eq, ge): a float32 out of float32 inputs gets protocol 1's 1.0/0.0
// mask, so a core that still speaks protocol 1 keeps working (remove once core is on protocol 2).
void def_compare(py::module_& m, const char* name, TCompare op, int legacy, const char* doc) {
  m.def(name, [name, op, legacy](const Buffer& a, const Buffer& b, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    need_size(name, "b", b, out.size(), true);
    need_same_dtype(name, "b", b, "a", a);
    if (legacy != kNoFast && out.dtype() == kF32 && a.dtype() == kF32) {
      MaybeRelease gil(out.size());
      needle_cpu::ewise_binary(Binary(legacy), a.data(), b.data(), out.data(), out.size());
      return;
    }
    need_dtype(name, "out", out, DType::kBool);
    MaybeRelease gil(out.size());
    needle_cpu::typed_compare(op, a.dtype(), a.raw(), b.raw(), out.as<std::uint8_t>(), out.size());
  }, py::arg("a"), py::arg("b"), py::arg("out"), doc);
}

void def_scalar(py::module_& m, const char* name, TScalar op, int fast, const char* doc) {
  m.def(name, [name, op, fast](const Buffer& a, py::handle val, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    if (fast != kNoFast && a.dtype() == kF32 && out.dtype() == kF32) {
      const float v = to_float(val);
      MaybeRelease gil(out.size());
      needle_cpu::ewise_scalar(ScalarOp(fast), a.data(), v, out.data(), out.size());
      return;
    }
    need_dtype_in(name, "a", a, needle_cpu::dtypes_of(op));
    need_same_dtype(name, "out", out, "a", a);
    const needle_cpu::Scalar v = to_scalar(name, a.dtype(), val);
    MaybeRelease gil(out.size());
    needle_cpu::typed_scalar(op, a.dtype(), a.raw(), v, out.raw(), out.size());
  }, py::arg("a"), py::arg("val"), py::arg("out"), doc);
}

void def_scalar_compare(py::module_& m, const char* name, TCompare op, int legacy, const char* doc) {
  m.def(name, [name, op, legacy](const Buffer& a, py::handle val, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    if (legacy != kNoFast && out.dtype() == kF32 && a.dtype() == kF32) {  // protocol 1's float mask (def_compare)
      const float v = to_float(val);
      MaybeRelease gil(out.size());
      needle_cpu::ewise_scalar(ScalarOp(legacy), a.data(), v, out.data(), out.size());
      return;
    }
    need_dtype(name, "out", out, DType::kBool);
    const needle_cpu::Scalar v = to_scalar(name, a.dtype(), val);
    MaybeRelease gil(out.size());
    needle_cpu::typed_scalar_compare(op, a.dtype(), a.raw(), v, out.as<std::uint8_t>(), out.size());
  }, py::arg("a"), py::arg("val"), py::arg("out"), doc);
}

void def_unary(py::module_& m, const char* name, TUnary op, int fast, const char* doc) {
  m.def(name, [name, op, fast](const Buffer& a, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    if (fast != kNoFast && a.dtype() == kF32 && out.dtype() == kF32) {
      MaybeRelease gil(out.size());
      needle_cpu::ewise_unary(Unary(fast), a.data(), out.data(), out.size());
      return;
    }
    need_dtype_in(name, "a", a, needle_cpu::dtypes_of(op));
    need_same_dtype(name, "out", out, "a", a);
    MaybeRelease gil(out.size());
    needle_cpu::typed_unary(op, a.dtype(), a.raw(), out.raw(), out.size());
  }, py::arg("a"), py::arg("out"), doc);
}

// out[i] = op over a[i * reduce_size : (i + 1) * reduce_size]; out of a's dtype (argmax/argmin: int64).
void def_reduce(py::module_& m, const char* name, int op, bool arg, const char* doc) {
  m.def(name, [name, op, arg](const Buffer& a, Buffer& out, i64 reduce_size) {
    count_arg(name, "reduce_size", reduce_size);
    const bool sum = !arg && needle_cpu::TReduce(op) == needle_cpu::TReduce::kSum;
    if (!sum && reduce_size == 0 && out.size() > 0)
      fail(std::string(name) + ": zero-size reduction (reduce_size=0) has no " + (name + 7));  // "max", "argmin", ...
    need_size(name, "a", a, product(name, {out.size(), reduce_size}), false);
    if (overlaps(a, out) && (arg || reduce_size != 1)) fail(std::string(name) + ": out must not be a");
    need_dtype_in(name, "a", a, arg ? needle_cpu::kAllDTypes : needle_cpu::dtypes_of(needle_cpu::TReduce(op)));
    if (arg) need_dtype(name, "out", out, DType::kInt64);
    else need_same_dtype(name, "out", out, "a", a);
    MaybeRelease gil(out.size() * reduce_size);
    if (arg) {
      needle_cpu::typed_arg(needle_cpu::TArg(op), a.dtype(), a.raw(), out.as<i64>(), out.size(), reduce_size);
    } else if (a.dtype() == kF32 && op != int(needle_cpu::TReduce::kMin)) {  // float32 sum/max: ewise.h's kernels
      if (sum) needle_cpu::reduce_sum(a.data(), out.data(), out.size(), reduce_size);
      else needle_cpu::reduce_max(a.data(), out.data(), out.size(), reduce_size);
    } else {
      needle_cpu::typed_reduce(needle_cpu::TReduce(op), a.dtype(), a.raw(), out.raw(), out.size(), reduce_size);
    }
  }, py::arg("a"), py::arg("out"), py::arg("reduce_size"), doc);
}

// Which operand of a 2-D float32 product is stored transposed.
enum class Transposed { kNone, kA, kB };

// out = a @ b (+ bias) for `batch` compact products (m x n) @ (n x p), transpose(a) @ b when
// kA (a is then n x m) or a @ transpose(b) when kB (b is then p x n); sizes and dtypes checked by
// the caller.
void matmul_into(const char* kernel, const Buffer& a, const Buffer& b, const Buffer* bias, Buffer& out, i64 batch,
                 i64 m, i64 n, i64 p, Transposed transposed = Transposed::kNone) {
  const bool aliased = overlaps(a, out) || overlaps(b, out) || (bias != nullptr && overlaps(*bias, out));
  MaybeRelease gil(product(kernel, {batch, m, n, p}));
  write_via_scratch_if(aliased, out, batch * m * p, [&](void* dst) {
    if (a.dtype() != kF32) {  // the other dtypes: typed.h's blocked kernel, one product after another
      const i64 item = static_cast<i64>(needle_cpu::itemsize(a.dtype()));
      const char* pa = static_cast<const char*>(a.raw());
      const char* pb = static_cast<const char*>(b.raw());
      for (i64 i = 0; i < batch; ++i)
        needle_cpu::typed_matmul(a.dtype(), pa + i * m * n * item, pb + i * n * p * item,
                                 static_cast<char*>(dst) + i * m * p * item, m, n, p);
      return;
    }
    float* c = static_cast<float*>(dst);
    const float* bias_p = bias ? bias->data() : nullptr;
    if (transposed == Transposed::kA) needle_cpu::sgemm_tn(m, n, p, a.data(), m, b.data(), p, c, p, bias_p);
    else if (transposed == Transposed::kB) needle_cpu::sgemm_nt(m, n, p, a.data(), n, b.data(), n, c, p, bias_p);
    else if (bias != nullptr) needle_cpu::sgemm(m, n, p, a.data(), n, b.data(), p, c, p, bias->data());
    else needle_cpu::sgemm_batched(batch, m, n, p, a.data(), b.data(), c);
  });
}

// The fused kernels (LSTM, softmax cross-entropy, optimisers) write each output while reading the
// others and the inputs: refuses an output that is another output or an input buffer (in-place
// gates/dc/state are one argument each).
void need_unaliased_outputs(const char* kernel, std::initializer_list<const Buffer*> outs,
                            std::initializer_list<const Buffer*> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    for (auto p = o + 1; p != outs.end(); ++p)
      if (overlaps(**o, **p)) fail(std::string(kernel) + ": two outputs are the same buffer");
    for (const Buffer* in : ins)
      if (overlaps(**o, *in)) fail(std::string(kernel) + ": an output is also an input buffer");
  }
}

// The optimiser steps (IN_PLACE_UPDATES): out may be param itself, the whole buffer (the loops read
// each weight before writing it), when grad is another buffer; the state buffers stay apart from all.
void need_step_buffers(const char* kernel, const Buffer& param, const Buffer& grad, const Buffer& out,
                       std::initializer_list<const Buffer*> states) {
  if (overlaps(out, param)) {  // the very same buffer: the callers checked both hold n elements
    need_unaliased_outputs(kernel, states, {&param, &grad, &out});
    if (overlaps(out, grad)) fail(std::string(kernel) + ": out is param and grad is the same buffer");
    return;
  }
  std::vector<const Buffer*> outs(states);
  outs.push_back(&out);
  for (std::size_t i = 0; i < outs.size(); ++i) {
    for (std::size_t j = i + 1; j < outs.size(); ++j)
      if (overlaps(*outs[i], *outs[j])) fail(std::string(kernel) + ": two outputs are the same buffer");
    if (overlaps(*outs[i], param) || overlaps(*outs[i], grad))
      fail(std::string(kernel) + ": an output is also an input buffer");
  }
}

// The softmax cross-entropy kernels index rows with their labels: every one must be a class index.
// The labels are copied (under the GIL) and the copy is checked and used: another Python thread may
// write the buffer while the kernel runs without the GIL.
std::vector<i64> checked_classes(const char* kernel, const Buffer& labels, i64 m, i64 k) {
  std::vector<float> snapshot(labels.data(), labels.data() + m);
  std::vector<i64> classes(static_cast<std::size_t>(m));
  const i64 bad = needle_cpu::labels_to_classes(snapshot.data(), m, k, classes.data());
  if (bad < 0) return classes;
  std::ostringstream s;
  s.precision(9);
  s << kernel << ": labels must be integers in [0, " << k << "), got labels[" << bad << "] = " << snapshot[bad];
  fail(s.str());
}

// The row indices of gather_rows / scatter_add_rows, copied and checked (as checked_classes).
std::vector<i64> checked_rows(const char* kernel, const Buffer& idx, i64 count, i64 rows) {
  std::vector<i64> snapshot(idx.as<i64>(), idx.as<i64>() + count);
  const i64 bad = needle_cpu::first_bad_index(snapshot.data(), count, rows);
  if (bad >= 0)
    throw py::index_error(std::string(kernel) + ": idx[" + std::to_string(bad) + "] = " +
                          std::to_string(snapshot[bad]) + " is out of range for " + std::to_string(rows) + " rows");
  return snapshot;
}

// _gemm_f64(a, b): a @ b for two C-contiguous 2-D float64 numpy arrays, into a new array (the
// float64 GEMM, for tests and benchmarks until matmul takes dtypes).
py::array_t<double> gemm_f64_numpy(const py::object& a_obj, const py::object& b_obj) {
  auto checked = [](const py::object& obj, const char* name) {
    if (!py::isinstance<py::array>(obj))
      throw py::type_error(std::string("_gemm_f64: ") + name + " must be a numpy array, got " +
                           py::repr(py::type::of(obj)).cast<std::string>());
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<double>()))
      throw py::type_error(std::string("_gemm_f64: ") + name + " must have dtype float64, got " +
                           py::str(arr.dtype()).cast<std::string>());
    if (arr.ndim() != 2) fail(std::string("_gemm_f64: ") + name + " must be 2-D, got " + std::to_string(arr.ndim()) + "-D");
    if (!(arr.flags() & py::array::c_style)) fail(std::string("_gemm_f64: ") + name + " must be C-contiguous");
    return arr;
  };
  py::array a = checked(a_obj, "a"), b = checked(b_obj, "b");
  const i64 m = a.shape(0), n = a.shape(1), p = b.shape(1);
  if (b.shape(0) != n)
    fail("_gemm_f64: a is " + std::to_string(m) + " x " + std::to_string(n) + " but b is " +
         std::to_string(b.shape(0)) + " x " + std::to_string(p) + " (b needs " + std::to_string(n) + " rows)");
  py::array_t<double> c({static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(p)});
  const double* ad = static_cast<const double*>(a.data());
  const double* bd = static_cast<const double*>(b.data());
  double* cd = c.mutable_data();
  i64 work;
  if (__builtin_mul_overflow(m, n, &work) || __builtin_mul_overflow(work, p, &work)) work = kMaxElements;
  MaybeRelease gil(work);
  needle_cpu::gemm_f64(ad, bd, cd, m, n, p);
  return c;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "needle-cpu kernels (flat buffers of float32, float64, int32, int64, uint8, bool); see needle_cpu._backend\n"
            "for the protocol module";
  m.attr("FUSED_DTYPES") = py::make_tuple("float32");

  needle_cpu_py::add_array_type(m);  // Array: a plain CPython type (array_type.h)
  needle_cpu_py::add_ewise_program(m);  // needle.jit's elementwise programs (ewise_program_bindings.cc)

  m.def("from_numpy", [](const py::object& src, Buffer& out) {
    needle_cpu::visit_dtype(out.dtype(), [&](auto tag) {
      constexpr DType D = decltype(tag)::value;
      // bool buffers read numpy bool (0/1 bytes); the rest their own C type.
      using NpT = std::conditional_t<D == DType::kBool, bool, needle_cpu::storage_t<D>>;
      auto arr = py::array_t<NpT, py::array::c_style | py::array::forcecast>::ensure(src);
      if (!arr) {
        PyErr_Clear();
        throw py::type_error("from_numpy: cannot convert " + py::repr(py::type::of(src)).cast<std::string>() + " to " +
                             needle_cpu::dtype_name(D));
      }
      if (arr.size() != out.size())
        fail("from_numpy: array has " + std::to_string(arr.size()) + " elements, buffer out has " +
             std::to_string(out.size()));
      MaybeRelease gil(out.size());
      needle_cpu::copy_bytes(arr.data(), out.raw(), out.nbytes());
    });
  }, py::arg("np_array"), py::arg("out"),
     "Copy a numpy array (any layout; converted to out's dtype) into out.");

  m.def("to_numpy", [](const Buffer& a, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("to_numpy", "a", a, shape, strides, offset, &n);
    return needle_cpu::visit_dtype(a.dtype(), [&](auto tag) -> py::array {
      constexpr DType D = decltype(tag)::value;
      using NpT = std::conditional_t<D == DType::kBool, bool, needle_cpu::storage_t<D>>;
      py::array_t<NpT> result(std::vector<py::ssize_t>(shape.begin(), shape.end()));
      void* dst = result.mutable_data();
      {
        MaybeRelease gil(n);
        if (n > 0) needle_cpu::compact(a.raw(), dst, view, needle_cpu::itemsize(D));
      }
      return std::move(result);
    });
  }, py::arg("a"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "A new numpy array (of a's dtype) holding the strided view (strides in elements) of a.");

  m.def("to_dlpack", [](py::handle a, std::vector<i64> shape, std::vector<i64> strides, i64 offset,
                        py::object max_version) {
    if (!PyObject_TypeCheck(a.ptr(), &needle_cpu_py::ArrayType))
      throw py::type_error("to_dlpack: a must be a needle_cpu.Array, got " + py::repr(py::type::of(a)).cast<std::string>());
    const Buffer& buf = reinterpret_cast<needle_cpu_py::ArrayObject*>(a.ptr())->buffer();
    i64 n;
    auto view = checked_view("to_dlpack", "a", buf, std::move(shape), std::move(strides), offset, &n);
    // DLPack 1.x (a versioned capsule, which can say "writable") for a consumer that reads it.
    const bool versioned = !max_version.is_none() && py::len(max_version) >= 1 && max_version[py::int_(0)].cast<i64>() >= 1;
    return needle_cpu_py::dlpack_export(a, buf, view, versioned);
  }, py::arg("a"), py::arg("shape"), py::arg("strides"), py::arg("offset"), py::arg("max_version") = py::none(),
     "A DLPack capsule over the strided view of a, sharing its memory: 'dltensor_versioned' (DLPack 1.0) when\n"
     "max_version is (1, x) or later, else 'dltensor'; a stays alive until the consumer releases the capsule.");

  m.def("from_dlpack_capsule", &needle_cpu_py::dlpack_import, py::arg("capsule"),
     "(Array, shape, strides, offset, copied) from a DLPack capsule of host memory: the Array adopts the\n"
     "producer's memory (released through its deleter when the Array dies), or is a compact copy (copied\n"
     "True) when the tensor is read-only or not aligned to its element size.");

  m.def("fill", [](Buffer& out, py::handle value) {
    if (out.dtype() == kF32) {
      const float v = to_float(value);
      MaybeRelease gil(out.size());
      needle_cpu::fill(out.data(), v, out.size());
      return;
    }
    const needle_cpu::Scalar v = to_scalar("fill", out.dtype(), value);
    MaybeRelease gil(out.size());
    needle_cpu::typed_fill(out.dtype(), v, out.raw(), out.size());
  }, py::arg("out"), py::arg("value"), "Set every element of out to value.");

  m.def("compact", [](const Buffer& a, Buffer& out, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("compact", "a", a, std::move(shape), std::move(strides), offset, &n);
    need_size("compact", "out", out, n, true);
    need_same_dtype("compact", "out", out, "a", a);
    const std::size_t item = needle_cpu::itemsize(a.dtype());
    MaybeRelease gil(n);
    write_via_scratch_if(overlaps(a, out), out, n, [&](void* dst) { needle_cpu::compact(a.raw(), dst, view, item); });
  }, py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Gather the strided view of a into the compact buffer out (of a's dtype).");

  m.def("ewise_setitem", [](const Buffer& a, Buffer& out, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("ewise_setitem", "out", out, std::move(shape), std::move(strides), offset, &n);
    need_size("ewise_setitem", "a", a, n, false);
    need_same_dtype("ewise_setitem", "a", a, "out", out);
    const std::size_t item = needle_cpu::itemsize(a.dtype());
    MaybeRelease gil(n);
    if (overlaps(a, out)) {
      Buffer tmp(n, a.dtype());
      needle_cpu::copy_bytes(a.raw(), tmp.raw(), tmp.nbytes());
      needle_cpu::ewise_setitem(tmp.raw(), out.raw(), view, item);
    } else {
      needle_cpu::ewise_setitem(a.raw(), out.raw(), view, item);
    }
  }, py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Scatter the compact buffer a into the strided view of out (same dtype).");

  m.def("scalar_setitem", [](i64 size, py::handle val, Buffer& out, std::vector<i64> shape, std::vector<i64> strides,
                             i64 offset) {
    count_arg("scalar_setitem", "size", size);
    i64 n;
    auto view = checked_view("scalar_setitem", "out", out, std::move(shape), std::move(strides), offset, &n);
    const needle_cpu::Scalar v = to_scalar("scalar_setitem", out.dtype(), val);
    MaybeRelease gil(n);
    needle_cpu::scalar_setitem(&v, out.raw(), view, needle_cpu::itemsize(out.dtype()));
  }, py::arg("size"), py::arg("val"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Set the strided view of out to val (size, the view's element count, is implied by shape).");

  def_binary(m, "ewise_add", TBinary::kAdd, int(Binary::kAdd), "out = a + b (integers wrap)");
  def_binary(m, "ewise_sub", TBinary::kSub, int(Binary::kSub), "out = a - b (integers wrap)");
  def_binary(m, "ewise_mul", TBinary::kMul, int(Binary::kMul), "out = a * b (integers wrap)");
  def_binary(m, "ewise_div", TBinary::kDiv, int(Binary::kDiv), "out = a / b (float dtypes)");
  def_binary(m, "ewise_maximum", TBinary::kMaximum, int(Binary::kMaximum), "out = maximum(a, b) (nan propagates)");
  def_binary(m, "ewise_minimum", TBinary::kMinimum, kNoFast, "out = minimum(a, b) (nan propagates)");
  def_binary(m, "ewise_power", TBinary::kPower, int(Binary::kPower), "out = a ** b (float dtypes)");
  def_binary(m, "ewise_and", TBinary::kAnd, kNoFast, "out = a & b: bitwise on integers, logical on bool");
  def_binary(m, "ewise_or", TBinary::kOr, kNoFast, "out = a | b: bitwise on integers, logical on bool");
  def_binary(m, "ewise_xor", TBinary::kXor, kNoFast, "out = a ^ b: bitwise on integers, logical on bool");

  def_compare(m, "ewise_eq", TCompare::kEq, int(Binary::kEq), "out (bool) = a == b");
  def_compare(m, "ewise_ne", TCompare::kNe, kNoFast, "out (bool) = a != b (True for nan)");
  def_compare(m, "ewise_lt", TCompare::kLt, kNoFast, "out (bool) = a < b");
  def_compare(m, "ewise_le", TCompare::kLe, kNoFast, "out (bool) = a <= b");
  def_compare(m, "ewise_gt", TCompare::kGt, kNoFast, "out (bool) = a > b");
  def_compare(m, "ewise_ge", TCompare::kGe, int(Binary::kGe), "out (bool) = a >= b");

  m.def("ewise_relu_backward", [](const Buffer& a, const Buffer& b, Buffer& out) {
    const char* k = "ewise_relu_backward";
    need_size(k, "a", a, out.size(), true);
    need_size(k, "b", b, out.size(), true);
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    MaybeRelease gil(out.size());
    needle_cpu::ewise_binary(Binary::kReluBackward, a.data(), b.data(), out.data(), out.size());
  }, py::arg("a"), py::arg("b"), py::arg("out"),
     "Fused ReLU gradient: out = b where a > 0 else 0 (a: the ReLU input, b: the output gradient).");

  def_scalar(m, "scalar_add", TScalar::kAdd, int(ScalarOp::kAdd), "out = a + val (integers wrap)");
  def_scalar(m, "scalar_mul", TScalar::kMul, int(ScalarOp::kMul), "out = a * val (integers wrap)");
  def_scalar(m, "scalar_div", TScalar::kDiv, int(ScalarOp::kDiv), "out = a / val (float dtypes)");
  def_scalar(m, "scalar_power", TScalar::kPower, int(ScalarOp::kPower), "out = a ** val (float dtypes)");
  def_scalar(m, "scalar_maximum", TScalar::kMaximum, int(ScalarOp::kMaximum), "out = maximum(a, val)");
  def_scalar(m, "scalar_minimum", TScalar::kMinimum, kNoFast, "out = minimum(a, val)");
  def_scalar(m, "scalar_rsub", TScalar::kRsub, int(ScalarOp::kRsub), "out = val - a (integers wrap)");
  def_scalar(m, "scalar_rdiv", TScalar::kRdiv, int(ScalarOp::kRdiv), "out = val / a (float dtypes)");

  def_scalar_compare(m, "scalar_eq", TCompare::kEq, int(ScalarOp::kEq), "out (bool) = a == val");
  def_scalar_compare(m, "scalar_ne", TCompare::kNe, kNoFast, "out (bool) = a != val (True for nan)");
  def_scalar_compare(m, "scalar_lt", TCompare::kLt, kNoFast, "out (bool) = a < val");
  def_scalar_compare(m, "scalar_le", TCompare::kLe, kNoFast, "out (bool) = a <= val");
  def_scalar_compare(m, "scalar_gt", TCompare::kGt, kNoFast, "out (bool) = a > val");
  def_scalar_compare(m, "scalar_ge", TCompare::kGe, int(ScalarOp::kGe), "out (bool) = a >= val");

  def_unary(m, "ewise_neg", TUnary::kNeg, int(Unary::kNeg), "out = -a (integers wrap)");
  def_unary(m, "ewise_abs", TUnary::kAbs, kNoFast, "out = |a| (abs of the smallest signed integer wraps to itself)");
  def_unary(m, "ewise_not", TUnary::kNot, kNoFast, "out = ~a: bitwise on integers, logical on bool");
  def_unary(m, "ewise_log", TUnary::kLog, int(Unary::kLog), "out = log(a)");
  def_unary(m, "ewise_exp", TUnary::kExp, int(Unary::kExp), "out = exp(a)");
  def_unary(m, "ewise_tanh", TUnary::kTanh, int(Unary::kTanh), "out = tanh(a)");
  def_unary(m, "ewise_sqrt", TUnary::kSqrt, int(Unary::kSqrt), "out = sqrt(a)");
  def_unary(m, "ewise_sigmoid", TUnary::kSigmoid, int(Unary::kSigmoid), "out = 1 / (1 + exp(-a))");
  def_unary(m, "ewise_relu", TUnary::kRelu, int(Unary::kRelu), "out = maximum(a, 0)");

  m.def("cast", [](const Buffer& a, Buffer& out) {
    need_size("cast", "a", a, out.size(), true);
    MaybeRelease gil(out.size());
    needle_cpu::typed_cast(a.dtype(), out.dtype(), a.raw(), out.raw(), out.size());
  }, py::arg("a"), py::arg("out"),
     "out = a converted to out's dtype: floats to integers truncate (nan gives 0, values beyond the range its\n"
     "nearest end), integers narrow by wrapping, to bool is != 0, from bool 0 and 1.");

  m.def("where", [](const Buffer& cond, const Buffer& a, const Buffer& b, Buffer& out) {
    for (auto [name, buf] : {std::pair<const char*, const Buffer*>{"cond", &cond}, {"a", &a}, {"b", &b}})
      need_size("where", name, *buf, out.size(), true);
    need_dtype("where", "cond", cond, DType::kBool);
    need_same_dtype("where", "b", b, "a", a);
    need_same_dtype("where", "out", out, "a", a);
    MaybeRelease gil(out.size());
    needle_cpu::typed_where(a.dtype(), cond.as<std::uint8_t>(), a.raw(), b.raw(), out.raw(), out.size());
  }, py::arg("cond"), py::arg("a"), py::arg("b"), py::arg("out"), "out = a where cond else b (cond: bool).");

  m.def("matmul", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul";
    need_counts(k, {{"m", m_}, {"n", n}, {"p", p}});
    need_sizes(k, {{"a", a, {m_, n}}, {"b", b, {n, p}}, {"out", out, {m_, p}}});
    need_dtype_in(k, "a", a, needle_cpu::kNumericDTypes);
    need_same_dtype(k, "b", b, "a", a);
    need_same_dtype(k, "out", out, "a", a);
    matmul_into(k, a, b, nullptr, out, 1, m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (m x p) = a (m x n) @ b (n x p), compact row-major, any dtype but bool (integers wrap); float32:\n"
     "packed AVX-512/AVX2 GEMM, threaded.");

  m.def("matmul_tn", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_tn";
    need_counts(k, {{"m", m_}, {"n", n}, {"p", p}});
    need_sizes(k, {{"a", a, {n, m_}}, {"b", b, {n, p}}, {"out", out, {m_, p}}});
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    matmul_into(k, a, b, nullptr, out, 1, m_, n, p, Transposed::kA);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (m x p) = transpose(a) @ b with a (n x m) and b (n x p) compact: a weight gradient x^T @ g "
     "without a transposed copy of x.");

  m.def("matmul_nt", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_nt";
    need_counts(k, {{"m", m_}, {"n", n}, {"p", p}});
    need_sizes(k, {{"a", a, {m_, n}}, {"b", b, {p, n}}, {"out", out, {m_, p}}});
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    matmul_into(k, a, b, nullptr, out, 1, m_, n, p, Transposed::kB);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (m x p) = a @ transpose(b) with a (m x n) and b (p x n) compact: an input gradient g @ W^T "
     "without a transposed copy of W.");

  m.def("ewise_binary_strided", [](const std::string& op, const Buffer& a, std::vector<i64> a_strides, i64 a_offset,
                                   const Buffer& b, std::vector<i64> b_strides, i64 b_offset, Buffer& out,
                                   std::vector<i64> shape) {
    const char* k = "ewise_binary_strided";
    needle_cpu::StridedOp code;
    if (op == "add") code = needle_cpu::StridedOp::kAdd;
    else if (op == "sub") code = needle_cpu::StridedOp::kSub;
    else if (op == "mul") code = needle_cpu::StridedOp::kMul;
    else if (op == "div") code = needle_cpu::StridedOp::kDiv;
    else throw py::value_error(std::string(k) + ": op must be 'add', 'sub', 'mul' or 'div', got '" + op + "'");
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    i64 n, nb;
    auto av = checked_view(k, "a", a, shape, std::move(a_strides), a_offset, &n);
    auto bv = checked_view(k, "b", b, std::move(shape), std::move(b_strides), b_offset, &nb);
    need_size(k, "out", out, n, true);
    MaybeRelease gil(n);
    if (overlaps(a, out) || overlaps(b, out)) {  // writing over an operand: go through a copy
      Buffer tmp(n, out.dtype());
      needle_cpu::ewise_binary_strided_f32(code, a.data(), av, b.data(), bv, tmp.data());
      needle_cpu::copy_bytes(tmp.raw(), out.raw(), tmp.nbytes());
    } else {
      needle_cpu::ewise_binary_strided_f32(code, a.data(), av, b.data(), bv, out.data());
    }
  }, py::arg("op"), py::arg("a"), py::arg("a_strides"), py::arg("a_offset"), py::arg("b"), py::arg("b_strides"),
     py::arg("b_offset"), py::arg("out"), py::arg("shape"),
     "out (compact, shape) = a op b over two float32 strided views of one shape (op: add, sub, mul, div); a\n"
     "broadcast operand (stride 0) is read in place, with no compact copy.");

  m.def("matmul_bias", [](const Buffer& a, const Buffer& b, const Buffer& bias, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_bias";
    need_counts(k, {{"m", m_}, {"n", n}, {"p", p}});
    need_sizes(k, {{"a", a, {m_, n}}, {"b", b, {n, p}}, {"bias", bias, {p}}, {"out", out, {m_, p}}});
    need_float32(k, {{"a", &a}, {"b", &b}, {"bias", &bias}, {"out", &out}});
    matmul_into(k, a, b, &bias, out, 1, m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("bias"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "Fused linear layer: out (m x p) = a (m x n) @ b (n x p) + bias (p,) broadcast over rows.");

  m.def("matmul_batched", [](const Buffer& a, const Buffer& b, Buffer& out, i64 batch, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_batched";
    need_counts(k, {{"batch", batch}, {"m", m_}, {"n", n}, {"p", p}});
    need_sizes(k, {{"a", a, {batch, m_, n}}, {"b", b, {batch, n, p}}, {"out", out, {batch, m_, p}}});
    need_dtype_in(k, "a", a, needle_cpu::kNumericDTypes);
    need_same_dtype(k, "b", b, "a", a);
    need_same_dtype(k, "out", out, "a", a);
    matmul_into(k, a, b, nullptr, out, batch, m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (batch, m, p) = a (batch, m, n) @ b (batch, n, p), all compact.");

  m.def("matmul_tiled", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_tiled";
    need_counts(k, {{"m", m_}, {"n", n}, {"p", p}});
    if (m_ % needle_cpu::kTile || n % needle_cpu::kTile || p % needle_cpu::kTile)
      fail("matmul_tiled: m, n, p = " + std::to_string(m_) + ", " + std::to_string(n) + ", " + std::to_string(p) +
           " must be multiples of the tile size " + std::to_string(needle_cpu::kTile));
    need_sizes(k, {{"a", a, {m_, n}}, {"b", b, {n, p}}, {"out", out, {m_, p}}});
    if (overlaps(a, out) || overlaps(b, out)) fail("matmul_tiled: out must not be a or b");
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    MaybeRelease gil(product(k, {m_, n, p}));
    needle_cpu::matmul_tiled(a.data(), b.data(), out.data(), m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "The course's tiled matmul on tile-major layouts (m/T, n/T, T, T) with T = __tile_size__.");
  m.attr("TILE") = needle_cpu::kTile;

  m.def("conv2d_nhwc_grad_weight", [](const Buffer& a, const Buffer& g, Buffer& out, i64 n, i64 h, i64 w, i64 c_in,
                                      i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw) {
    const char* k = "conv2d_nhwc_grad_weight";
    need_counts(k, {{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out}, {"kh", kh}, {"kw", kw},
                    {"sh", sh}, {"sw", sw}});
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1) fail("conv2d_nhwc_grad_weight: kernel size and stride must be >= 1");
    if (h < kh || w < kw)
      fail("conv2d_nhwc_grad_weight: input " + std::to_string(h) + "x" + std::to_string(w) +
           " is smaller than the kernel " + std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1;
    need_sizes(k, {{"a", a, {n, h, w, c_in}}, {"g", g, {n, ho, wo, c_out}}, {"out", out, {kh, kw, c_in, c_out}}});
    need_unaliased_outputs(k, {&out}, {&a, &g});
    need_float32(k, {{"a", &a}, {"g", &g}, {"out", &out}});
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc_grad_weight(a.data(), g.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw);
  }, py::arg("a"), py::arg("g"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     "Weight gradient of conv2d_nhwc: out (kh, kw, c_in, c_out) = im2col(a)^T @ g, g (n, ho, wo, c_out);\n"
     "the im2col rows gathered a block at a time.");

  m.def("conv2d_nhwc", [](const Buffer& a, const Buffer& b, Buffer& out, i64 n, i64 h, i64 w, i64 c_in, i64 c_out,
                          i64 kh, i64 kw, i64 sh, i64 sw) {
    const char* k = "conv2d_nhwc";
    need_counts(k, {{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out}, {"kh", kh}, {"kw", kw},
                    {"sh", sh}, {"sw", sw}});
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1) fail("conv2d_nhwc: kernel size and stride must be >= 1");
    if (h < kh || w < kw)
      fail("conv2d_nhwc: input " + std::to_string(h) + "x" + std::to_string(w) + " is smaller than the kernel " +
           std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1;
    need_sizes(k, {{"a", a, {n, h, w, c_in}}, {"b", b, {kh, kw, c_in, c_out}}, {"out", out, {n, ho, wo, c_out}}});
    if (overlaps(a, out) || overlaps(b, out)) fail("conv2d_nhwc: out must not be a or b");
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc(a.data(), b.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     "NHWC convolution of the padded input a (n, h, w, c_in) with b (kh, kw, c_in, c_out), strides (sh, sw).");

  // The padded variants: a unpadded, zero padding (ph, pw) applied virtually.
  m.def("conv2d_nhwc_padded", [](const Buffer& a, const Buffer& b, Buffer& out, i64 n, i64 h, i64 w, i64 c_in,
                                 i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    const char* k = "conv2d_nhwc_padded";
    need_counts(k, {{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out}, {"kh", kh}, {"kw", kw},
                    {"sh", sh}, {"sw", sw}, {"ph", ph}, {"pw", pw}});
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1) fail("conv2d_nhwc_padded: kernel size and stride must be >= 1");
    if (h + 2 * ph < kh || w + 2 * pw < kw)
      fail("conv2d_nhwc_padded: padded input " + std::to_string(h + 2 * ph) + "x" + std::to_string(w + 2 * pw) +
           " is smaller than the kernel " + std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1;
    need_sizes(k, {{"a", a, {n, h, w, c_in}}, {"b", b, {kh, kw, c_in, c_out}}, {"out", out, {n, ho, wo, c_out}}});
    if (overlaps(a, out) || overlaps(b, out)) fail("conv2d_nhwc_padded: out must not be a or b");
    need_float32(k, {{"a", &a}, {"b", &b}, {"out", &out}});
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc_padded(a.data(), b.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
     "conv2d_nhwc of the unpadded a (n, h, w, c_in) with zero padding (ph, pw) applied virtually (no padded copy).");

  m.def("conv2d_nhwc_grad_input_padded", [](const Buffer& g, const Buffer& b, Buffer& out, i64 n, i64 h, i64 w,
                                            i64 c_in, i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    const char* k = "conv2d_nhwc_grad_input_padded";
    need_counts(k, {{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out}, {"kh", kh}, {"kw", kw},
                    {"sh", sh}, {"sw", sw}, {"ph", ph}, {"pw", pw}});
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1)
      fail("conv2d_nhwc_grad_input_padded: kernel size and stride must be >= 1");
    if (h + 2 * ph < kh || w + 2 * pw < kw)
      fail("conv2d_nhwc_grad_input_padded: padded input " + std::to_string(h + 2 * ph) + "x" +
           std::to_string(w + 2 * pw) + " is smaller than the kernel " + std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1;
    need_sizes(k, {{"g", g, {n, ho, wo, c_out}}, {"b", b, {kh, kw, c_in, c_out}}, {"out", out, {n, h, w, c_in}}});
    need_unaliased_outputs(k, {&out}, {&g, &b});
    need_float32(k, {{"g", &g}, {"b", &b}, {"out", &out}});
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc_grad_input_padded(g.data(), b.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw,
                                              ph, pw);
  }, py::arg("g"), py::arg("b"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
     "Input gradient of conv2d_nhwc_padded: out (n, h, w, c_in) from g (n, ho, wo, c_out) and b (kh, kw, c_in, c_out).");

  m.def("conv2d_nhwc_grad_weight_padded", [](const Buffer& a, const Buffer& g, Buffer& out, i64 n, i64 h, i64 w,
                                             i64 c_in, i64 c_out, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw) {
    const char* k = "conv2d_nhwc_grad_weight_padded";
    need_counts(k, {{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out}, {"kh", kh}, {"kw", kw},
                    {"sh", sh}, {"sw", sw}, {"ph", ph}, {"pw", pw}});
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1)
      fail("conv2d_nhwc_grad_weight_padded: kernel size and stride must be >= 1");
    if (h + 2 * ph < kh || w + 2 * pw < kw)
      fail("conv2d_nhwc_grad_weight_padded: padded input " + std::to_string(h + 2 * ph) + "x" +
           std::to_string(w + 2 * pw) + " is smaller than the kernel " + std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1;
    need_sizes(k, {{"a", a, {n, h, w, c_in}}, {"g", g, {n, ho, wo, c_out}}, {"out", out, {kh, kw, c_in, c_out}}});
    need_unaliased_outputs(k, {&out}, {&a, &g});
    need_float32(k, {{"a", &a}, {"g", &g}, {"out", &out}});
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc_grad_weight_padded(a.data(), g.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw,
                                               ph, pw);
  }, py::arg("a"), py::arg("g"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("ph"), py::arg("pw"),
     "conv2d_nhwc_grad_weight of the unpadded a with zero padding (ph, pw) applied virtually.");

  using needle_cpu::TArg;
  using needle_cpu::TReduce;
  def_reduce(m, "reduce_sum", int(TReduce::kSum), false,
             "out[i] = sum(a[i*reduce_size:(i+1)*reduce_size]) (all dtypes but bool; integers wrap).");
  def_reduce(m, "reduce_max", int(TReduce::kMax), false,
             "out[i] = max(a[i*reduce_size:(i+1)*reduce_size]) (nan propagates; bool: any).");
  def_reduce(m, "reduce_min", int(TReduce::kMin), false,
             "out[i] = min(a[i*reduce_size:(i+1)*reduce_size]) (nan propagates; bool: all).");
  def_reduce(m, "reduce_argmax", int(TArg::kArgmax), true,
             "out[i] (int64) = index of the first maximum of a[i*reduce_size:(i+1)*reduce_size] (the first nan if any).");
  def_reduce(m, "reduce_argmin", int(TArg::kArgmin), true,
             "out[i] (int64) = index of the first minimum of a[i*reduce_size:(i+1)*reduce_size] (the first nan if any).");

  m.def("gather_rows", [](const Buffer& a, const Buffer& idx, Buffer& out, i64 rows, i64 row_size, i64 count) {
    const char* k = "gather_rows";
    need_counts(k, {{"rows", rows}, {"row_size", row_size}, {"count", count}});
    need_sizes(k, {{"a", a, {rows, row_size}}, {"idx", idx, {count}}, {"out", out, {count, row_size}}});
    need_dtype(k, "idx", idx, DType::kInt64);
    need_same_dtype(k, "out", out, "a", a);
    if (overlaps(a, out) || overlaps(idx, out)) fail("gather_rows: out must not be a or idx");
    const std::vector<i64> rows_at = checked_rows(k, idx, count, rows);
    MaybeRelease gil(product(k, {count, row_size}));
    needle_cpu::gather_rows(a.dtype(), a.raw(), rows_at.data(), out.raw(), row_size, count);
  }, py::arg("a"), py::arg("idx"), py::arg("out"), py::arg("rows"), py::arg("row_size"), py::arg("count"),
     "out row i = a row idx[i] for i < count (rows of row_size elements; idx int64, each in [0, rows), else\n"
     "IndexError naming the first bad one, raised before anything is written).");

  m.def("scatter_add_rows", [](const Buffer& g, const Buffer& idx, Buffer& out, i64 rows, i64 row_size, i64 count) {
    const char* k = "scatter_add_rows";
    need_counts(k, {{"rows", rows}, {"row_size", row_size}, {"count", count}});
    need_sizes(k, {{"g", g, {count, row_size}}, {"idx", idx, {count}}, {"out", out, {rows, row_size}}});
    need_dtype(k, "idx", idx, DType::kInt64);
    need_dtype_in(k, "g", g, needle_cpu::kNumericDTypes);
    need_same_dtype(k, "out", out, "g", g);
    if (overlaps(g, out) || overlaps(idx, out)) fail("scatter_add_rows: out must not be g or idx");
    const std::vector<i64> rows_at = checked_rows(k, idx, count, rows);
    MaybeRelease gil(product(k, {count, row_size}));
    needle_cpu::scatter_add_rows(g.dtype(), g.raw(), rows_at.data(), out.raw(), row_size, count);
  }, py::arg("g"), py::arg("idx"), py::arg("out"), py::arg("rows"), py::arg("row_size"), py::arg("count"),
     "out row idx[i] += g row i for i < count (repeated indices accumulate, out is not cleared; all dtypes but\n"
     "bool; each index in [0, rows), else IndexError naming the first bad one, raised before anything is written).");

  // ---- fused LSTM cell (lstm.h); x/out and g_out/d_gates are (steps, batch, width) sequences, step t used
  m.def("lstm_cell_forward", [](Buffer& gates, const Buffer& x, const Buffer& c_prev, Buffer& c, Buffer& tc, Buffer& h,
                                Buffer& out, i64 t, i64 batch, i64 hid) {
    const char* k = "lstm_cell_forward";
    count_arg(k, "t", t); count_arg(k, "batch", batch); count_arg(k, "hid", hid);
    const i64 cell = product(k, {batch, hid}), wide = product(k, {4, cell});
    need_size(k, "gates", gates, wide, false);
    need_size(k, "x", x, product(k, {t + 1, wide}), false);
    for (auto [name, b] : {std::pair<const char*, const Buffer*>{"c_prev", &c_prev}, {"c", &c}, {"tc", &tc}, {"h", &h}})
      need_size(k, name, *b, cell, false);
    need_size(k, "out", out, product(k, {t + 1, cell}), false);
    need_unaliased_outputs(k, {&gates, &c, &tc, &h, &out}, {&x, &c_prev});
    need_float32(k, {{"gates", &gates}, {"x", &x}, {"c_prev", &c_prev}, {"c", &c}, {"tc", &tc}, {"h", &h}, {"out", &out}});
    MaybeRelease gil(wide);
    needle_cpu::lstm_cell_forward(gates.data(), x.data() + t * wide, c_prev.data(), c.data(), tc.data(), h.data(),
                                  out.data() + t * cell, batch, hid);
  }, py::arg("gates"), py::arg("x"), py::arg("c_prev"), py::arg("c"), py::arg("tc"), py::arg("h"), py::arg("out"),
     py::arg("t"), py::arg("batch"), py::arg("hid"),
     "One LSTM step (gates i, f, g, o): gates (batch, 4hid) = activations of gates + x[t]; c = sf*c_prev + si*tg,\n"
     "tc = tanh(c), h = so*tc, also written to out[t].");

  m.def("lstm_cell_backward", [](const Buffer& dh, const Buffer& g_out, const Buffer& act, const Buffer& c_prev,
                                 const Buffer& tc, Buffer& dc, Buffer& dg, Buffer& d_gates, i64 t, i64 batch, i64 hid) {
    const char* k = "lstm_cell_backward";
    count_arg(k, "t", t); count_arg(k, "batch", batch); count_arg(k, "hid", hid);
    const i64 cell = product(k, {batch, hid}), wide = product(k, {4, cell});
    for (auto [name, b] : {std::pair<const char*, const Buffer*>{"dh", &dh}, {"c_prev", &c_prev}, {"tc", &tc}, {"dc", &dc}})
      need_size(k, name, *b, cell, false);
    need_size(k, "g_out", g_out, product(k, {t + 1, cell}), false);
    need_size(k, "act", act, wide, false);
    need_size(k, "dg", dg, wide, false);
    need_size(k, "d_gates", d_gates, product(k, {t + 1, wide}), false);
    need_unaliased_outputs(k, {&dc, &dg, &d_gates}, {&dh, &g_out, &act, &c_prev, &tc});
    need_float32(k, {{"dh", &dh}, {"g_out", &g_out}, {"act", &act}, {"c_prev", &c_prev}, {"tc", &tc}, {"dc", &dc},
                     {"dg", &dg}, {"d_gates", &d_gates}});
    MaybeRelease gil(wide);
    needle_cpu::lstm_cell_backward(dh.data(), g_out.data() + t * cell, act.data(), c_prev.data(), tc.data(), dc.data(),
                                   dg.data(), d_gates.data() + t * wide, batch, hid);
  }, py::arg("dh"), py::arg("g_out"), py::arg("act"), py::arg("c_prev"), py::arg("tc"), py::arg("dc"), py::arg("dg"),
     py::arg("d_gates"), py::arg("t"), py::arg("batch"), py::arg("hid"),
     "The step's backward: pre-activation gradients (batch, 4hid) into dg and d_gates[t], from dh + g_out[t] and\n"
     "dc (updated in place to the gradient of c_prev).");

  // ---- fused softmax cross-entropy with class labels (softmax_xent.h)
  m.def("softmax_xent_forward", [](const Buffer& z, const Buffer& labels, Buffer& probs, Buffer& loss_rows, i64 m_,
                                   i64 k) {
    const char* kn = "softmax_xent_forward";
    count_arg(kn, "m", m_); count_arg(kn, "k", k);
    const i64 total = product(kn, {m_, k});
    need_size(kn, "z", z, total, false);
    need_size(kn, "labels", labels, m_, false);
    need_size(kn, "probs", probs, total, false);
    need_size(kn, "loss_rows", loss_rows, m_, false);
    need_unaliased_outputs(kn, {&probs, &loss_rows}, {&z, &labels});
    need_float32(kn, {{"z", &z}, {"labels", &labels}, {"probs", &probs}, {"loss_rows", &loss_rows}});
    const std::vector<i64> classes = checked_classes(kn, labels, m_, k);
    MaybeRelease gil(total);
    needle_cpu::softmax_xent_forward(z.data(), classes.data(), probs.data(), loss_rows.data(), m_, k);
  }, py::arg("z"), py::arg("labels"), py::arg("probs"), py::arg("loss_rows"), py::arg("m"), py::arg("k"),
     "Per row of the (m, k) logits z: probs = softmax(z), loss_rows = log(sum(exp(z - max))) - (z[label] - max);\n"
     "labels holds m class indices (floats that are integers in [0, k), else ValueError).");

  m.def("softmax_xent_backward", [](const Buffer& probs, const Buffer& labels, const Buffer& scale, Buffer& out, i64 m_,
                                    i64 k) {
    const char* kn = "softmax_xent_backward";
    count_arg(kn, "m", m_); count_arg(kn, "k", k);
    const i64 total = product(kn, {m_, k});
    need_size(kn, "probs", probs, total, false);
    need_size(kn, "labels", labels, m_, false);
    need_size(kn, "scale", scale, 1, false);
    need_size(kn, "out", out, total, false);
    need_unaliased_outputs(kn, {&out}, {&probs, &labels, &scale});
    need_float32(kn, {{"probs", &probs}, {"labels", &labels}, {"scale", &scale}, {"out", &out}});
    const std::vector<i64> classes = checked_classes(kn, labels, m_, k);
    const float s = scale.data()[0];
    MaybeRelease gil(total);
    needle_cpu::softmax_xent_backward(probs.data(), classes.data(), s, out.data(), m_, k);
  }, py::arg("probs"), py::arg("labels"), py::arg("scale"), py::arg("out"), py::arg("m"), py::arg("k"),
     "out (m, k) = (probs - onehot(labels)) * scale[0]; scale is a 1-element buffer (no host read of it).");

  // ---- fused batch normalisation, training mode (batchnorm.h): x (m, c) rows of samples, c channels
  m.def("batchnorm_forward", [](const Buffer& x, const Buffer& weight, const Buffer& bias, Buffer& out, Buffer& mean,
                                Buffer& var, i64 m_, i64 c, double eps) {
    const char* kn = "batchnorm_forward";
    need_counts(kn, {{"m", m_}, {"c", c}});
    need_sizes(kn, {{"x", x, {m_, c}}, {"weight", weight, {c}}, {"bias", bias, {c}}, {"out", out, {m_, c}},
                    {"mean", mean, {c}}, {"var", var, {c}}});
    need_unaliased_outputs(kn, {&out, &mean, &var}, {&x, &weight, &bias});
    need_float32(kn, {{"x", &x}, {"weight", &weight}, {"bias", &bias}, {"out", &out}, {"mean", &mean}, {"var", &var}});
    MaybeRelease gil(m_ * c);
    needle_cpu::batchnorm_forward(x.data(), weight.data(), bias.data(), out.data(), mean.data(), var.data(), m_, c, eps);
  }, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("out"), py::arg("mean"), py::arg("var"), py::arg("m"),
     py::arg("c"), py::arg("eps"),
     "Per column j of the (m, c) x: mean, biased var (two passes) and\n"
     "out = (x - mean) * weight / sqrt(var + eps) + bias.");

  m.def("batchnorm_backward", [](const Buffer& x, const Buffer& g, const Buffer& weight, const Buffer& mean,
                                 const Buffer& var, Buffer& grad_x, Buffer& grad_weight, Buffer& grad_bias, i64 m_,
                                 i64 c, double eps) {
    const char* kn = "batchnorm_backward";
    need_counts(kn, {{"m", m_}, {"c", c}});
    need_sizes(kn, {{"x", x, {m_, c}}, {"g", g, {m_, c}}, {"weight", weight, {c}}, {"mean", mean, {c}},
                    {"var", var, {c}}, {"grad_x", grad_x, {m_, c}}, {"grad_weight", grad_weight, {c}},
                    {"grad_bias", grad_bias, {c}}});
    need_unaliased_outputs(kn, {&grad_x, &grad_weight, &grad_bias}, {&x, &g, &weight, &mean, &var});
    need_float32(kn, {{"x", &x}, {"g", &g}, {"weight", &weight}, {"mean", &mean}, {"var", &var},
                      {"grad_x", &grad_x}, {"grad_weight", &grad_weight}, {"grad_bias", &grad_bias}});
    MaybeRelease gil(m_ * c);
    needle_cpu::batchnorm_backward(x.data(), g.data(), weight.data(), mean.data(), var.data(), grad_x.data(),
                                   grad_weight.data(), grad_bias.data(), m_, c, eps);
  }, py::arg("x"), py::arg("g"), py::arg("weight"), py::arg("mean"), py::arg("var"), py::arg("grad_x"),
     py::arg("grad_weight"), py::arg("grad_bias"), py::arg("m"), py::arg("c"), py::arg("eps"),
     "Gradients of batchnorm_forward for the output gradient g: grad_bias = sum g, grad_weight = sum g * xhat,\n"
     "grad_x = weight / sqrt(var + eps) * (g - grad_bias / m - xhat * grad_weight / m).");

  // ---- fused optimiser updates (optim.h): state updated in place, the new weights into `out`
  // All buffers hold one parameter's n elements; param and grad are only read (they may be one
  // buffer), the state buffers must be buffers of their own, out too or param itself (need_step_buffers).
  m.def("adam_step", [](const Buffer& param, const Buffer& grad, Buffer& m_, Buffer& v, Buffer& out, double lr,
                        double beta1, double beta2, double eps, double weight_decay, double bias_c1, double bias_c2,
                        bool decoupled) {
    const char* k = "adam_step";
    const i64 n = param.size();
    for (auto [name, b] : {std::pair<const char*, const Buffer*>{"grad", &grad}, {"m", &m_}, {"v", &v}, {"out", &out}})
      need_size(k, name, *b, n, true);
    if (!(bias_c1 > 0 && bias_c2 > 0))
      fail("adam_step: bias corrections must be > 0, got bias_c1=" + std::to_string(bias_c1) +
           ", bias_c2=" + std::to_string(bias_c2));
    need_step_buffers(k, param, grad, out, {&m_, &v});
    need_float32(k, {{"param", &param}, {"grad", &grad}, {"m", &m_}, {"v", &v}, {"out", &out}});
    MaybeRelease gil(n);
    needle_cpu::adam_step(param.data(), grad.data(), m_.data(), v.data(), out.data(), n, lr, beta1, beta2, eps,
                          weight_decay, bias_c1, bias_c2, decoupled);
  }, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("out"), py::arg("lr"), py::arg("beta1"),
     py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("bias_c1"), py::arg("bias_c2"),
     py::arg("decoupled"),
     "One Adam step in one pass: m, v updated in place, the new weights into out (see protocol.FUSED_KERNELS).");

  m.def("sgd_step", [](const Buffer& param, const Buffer& grad, Buffer* u, Buffer& out, double lr, double momentum,
                       double weight_decay) {
    const char* k = "sgd_step";
    const i64 n = param.size();
    need_size(k, "grad", grad, n, true);
    need_size(k, "out", out, n, true);
    if (u) need_size(k, "u", *u, n, true);
    else if (momentum != 0) fail("sgd_step: momentum=" + std::to_string(momentum) + " needs a momentum buffer u");
    if (u) need_step_buffers(k, param, grad, out, {u});
    else need_step_buffers(k, param, grad, out, {});
    need_float32(k, {{"param", &param}, {"grad", &grad}, {"u", u}, {"out", &out}});
    MaybeRelease gil(n);
    needle_cpu::sgd_step(param.data(), grad.data(), u ? u->data() : nullptr, out.data(), n, lr, momentum, weight_decay);
  }, py::arg("param"), py::arg("grad"), py::arg("u"), py::arg("out"), py::arg("lr"), py::arg("momentum"),
     py::arg("weight_decay"),
     "One SGD step in one pass (the course's momentum rule; u None: no momentum), the new weights into out.");

  m.def("rmsprop_step", [](const Buffer& param, const Buffer& grad, Buffer& v, Buffer* buf, Buffer& out, double lr,
                           double alpha, double eps, double weight_decay, double momentum) {
    const char* k = "rmsprop_step";
    const i64 n = param.size();
    for (auto [name, b] : {std::pair<const char*, const Buffer*>{"grad", &grad}, {"v", &v}, {"out", &out}})
      need_size(k, name, *b, n, true);
    if (buf) need_size(k, "buf", *buf, n, true);
    else if (momentum != 0) fail("rmsprop_step: momentum=" + std::to_string(momentum) + " needs a momentum buffer buf");
    if (buf) need_step_buffers(k, param, grad, out, {&v, buf});
    else need_step_buffers(k, param, grad, out, {&v});
    need_float32(k, {{"param", &param}, {"grad", &grad}, {"v", &v}, {"buf", buf}, {"out", &out}});
    MaybeRelease gil(n);
    needle_cpu::rmsprop_step(param.data(), grad.data(), v.data(), buf ? buf->data() : nullptr, out.data(), n, lr, alpha,
                             eps, weight_decay, momentum);
  }, py::arg("param"), py::arg("grad"), py::arg("v"), py::arg("buf"), py::arg("out"), py::arg("lr"), py::arg("alpha"),
     py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
     "One RMSprop step in one pass: v (and buf, None: no momentum) updated in place, the new weights into out.");

  m.def("set_num_threads", [](int n) {
    if (n < 1) fail("set_num_threads: n=" + std::to_string(n) + " must be >= 1");
    needle_cpu::set_num_threads(n);
  }, py::arg("n"), "Threads the kernels use (the calling thread included).");
  m.def("get_num_threads", &needle_cpu::num_threads, "Threads the kernels use.");
  m.def("get_isa", [] { return needle_cpu::isa_name(needle_cpu::active_isa()); }, "'avx512', 'avx2' or 'generic'.");
  m.def("set_isa", [](const std::string& name) {
    needle_cpu::Isa isa;
    if (!needle_cpu::isa_from_name(name.c_str(), &isa))
      fail("set_isa: name must be 'avx512', 'avx2' or 'generic', got '" + name + "'");
    if (!needle_cpu::set_isa(isa))
      throw std::runtime_error("set_isa: this CPU (or build) cannot run the " + name + " kernels");
  }, py::arg("name"), "Force the kernel ISA ('generic' runs the portable fallback).");
  m.def("cpu_has_avx2", &needle_cpu::cpu_has_avx2_fma, "True when this CPU and build can use the AVX2+FMA kernels.");
  m.def("cpu_has_avx512", &needle_cpu::cpu_has_avx512,
        "True when this CPU and build can use the AVX-512 (F, VL, DQ) kernels.");
  m.def("supported_isas", [] {
    std::vector<std::string> names;
    for (auto i : {needle_cpu::Isa::kGeneric, needle_cpu::Isa::kAvx2, needle_cpu::Isa::kAvx512})
      if (needle_cpu::cpu_supports(i)) names.emplace_back(needle_cpu::isa_name(i));
    return names;
  }, "The ISAs this CPU and build can run, lowest first.");
  m.def("buffer_cache_bytes", &needle_cpu::cached_bytes, "Bytes of freed large buffers kept for reuse.");
  m.def("_inject_alloc_failures", [](i64 skip, i64 count) {
    count_arg("_inject_alloc_failures", "skip", skip);
    count_arg("_inject_alloc_failures", "count", count);
    needle_cpu::inject_alloc_failures(skip, count);
  }, py::arg("skip"), py::arg("count"),
     "For tests: after skip more buffer allocations succeed, the next count fail (MemoryError); count 0: off.");
  m.def("clear_buffer_cache", &needle_cpu::clear_cache, "Release every cached buffer to the system.");
  m.def("memory_stats", [] {
    py::dict d;
    d["allocated_bytes"] = needle_cpu::live_buffer_bytes();
    d["peak_allocated_bytes"] = needle_cpu::peak_buffer_bytes();
    d["reserved_bytes"] = needle_cpu::cached_bytes();
    return d;
  }, "Bytes of live tensor buffers, their peak since the last reset, and the free bytes the cache holds.");
  m.def("reset_peak_memory_stats", &needle_cpu::reset_peak_buffer_bytes,
        "Make the peak of memory_stats() the bytes of tensor buffers alive now.");
  m.def("_gemm_f64", &gemm_f64_numpy, py::arg("a"), py::arg("b"),
        "a @ b for C-contiguous 2-D float64 numpy arrays, as a new array (the float64 GEMM; for tests).");
}
