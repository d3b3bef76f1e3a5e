// Python bindings: argument checks and registration only; the kernels know nothing of Python.
//
// Every size, offset and stride that Python passes is checked here, before any kernel runs,
// so no argument can make a kernel read or write outside a buffer: bad values raise
// ValueError, wrong types TypeError. Long kernels release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "array_type.h"
#include "kernels/buffer.h"
#include "kernels/cpu_features.h"
#include "kernels/ewise.h"
#include "kernels/gemm.h"
#include "kernels/gemm_f64.h"
#include "kernels/lstm.h"
#include "kernels/optim.h"
#include "kernels/softmax_xent.h"
#include "kernels/strided.h"
#include "kernels/threads.h"

namespace py = pybind11;
using needle_cpu::Buffer;
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

// The view (shape, strides, offset) over `buf`, checked to stay inside it; *total = its element count.
needle_cpu::View checked_view(const char* kernel, const char* name, const Buffer& buf, std::vector<i64> shape,
                              std::vector<i64> strides, i64 offset, i64* total) {
  if (shape.size() != strides.size())
    fail(std::string(kernel) + ": shape " + join(shape) + " and strides " + join(strides) + " differ in length");
  if (shape.size() > kMaxDims) fail(std::string(kernel) + ": at most 32 dimensions, got " + std::to_string(shape.size()));
  i64 n = 1;
  for (i64 s : shape) {
    if (s < 0) fail(std::string(kernel) + ": shape " + join(shape) + " has a negative dimension");
    if (__builtin_mul_overflow(n, s, &n) || n > kMaxElements) fail(std::string(kernel) + ": shape " + join(shape) + " is too large");
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

bool overlaps(const Buffer& x, const Buffer& y) { return &x == &y || x.data() == y.data(); }

using needle_cpu::Binary;
using needle_cpu::ScalarOp;
using needle_cpu::Unary;

void def_binary(py::module_& m, const char* name, Binary op, const char* doc) {
  m.def(name, [name, op](const Buffer& a, const Buffer& b, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    need_size(name, "b", b, out.size(), true);
    MaybeRelease gil(out.size());
    needle_cpu::ewise_binary(op, a.data(), b.data(), out.data(), out.size());
  }, py::arg("a"), py::arg("b"), py::arg("out"), doc);
}

void def_scalar(py::module_& m, const char* name, ScalarOp op, const char* doc) {
  m.def(name, [name, op](const Buffer& a, double val, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    MaybeRelease gil(out.size());
    needle_cpu::ewise_scalar(op, a.data(), static_cast<float>(val), out.data(), out.size());
  }, py::arg("a"), py::arg("val"), py::arg("out"), doc);
}

void def_unary(py::module_& m, const char* name, Unary op, const char* doc) {
  m.def(name, [name, op](const Buffer& a, Buffer& out) {
    need_size(name, "a", a, out.size(), true);
    MaybeRelease gil(out.size());
    needle_cpu::ewise_unary(op, a.data(), out.data(), out.size());
  }, py::arg("a"), py::arg("out"), doc);
}

// out = a @ b (+ bias), or transpose(a) @ b when `a_transposed` (a is then n x m), computed into a
// scratch buffer when out overlaps an input.
void matmul_into(const Buffer& a, const Buffer& b, const Buffer* bias, Buffer& out, i64 m, i64 n, i64 p,
                 bool a_transposed = false) {
  bool alias = overlaps(a, out) || overlaps(b, out) || (bias && overlaps(*bias, out));
  MaybeRelease gil(product("matmul", {m, n, p}));
  auto run = [&](float* c) {
    const float* bias_data = bias ? bias->data() : nullptr;
    if (a_transposed) needle_cpu::sgemm_tn(m, n, p, a.data(), m, b.data(), p, c, p, bias_data);
    else needle_cpu::sgemm(m, n, p, a.data(), n, b.data(), p, c, p, bias_data);
  };
  if (!alias) {
    run(out.data());
    return;
  }
  Buffer tmp(m * p);
  run(tmp.data());
  std::memcpy(out.data(), tmp.data(), m * p * sizeof(float));
}

// The LSTM kernels' outputs must be buffers of their own (in-place gates/dc are one argument each).
void lstm_distinct_outputs(const char* kernel, std::initializer_list<const Buffer*> outs,
                           std::initializer_list<const Buffer*> ins) {
  for (auto o = outs.begin(); o != outs.end(); ++o) {
    for (auto p = o + 1; p != outs.end(); ++p)
      if (overlaps(**o, **p)) fail(std::string(kernel) + ": two outputs are the same buffer");
    for (const Buffer* in : ins)
      if (overlaps(**o, *in)) fail(std::string(kernel) + ": an output is also an input buffer");
  }
}

// The softmax cross-entropy kernels index rows with their labels: every one must be a class index.
void check_class_labels(const char* kernel, const Buffer& labels, i64 m, i64 k) {
  const i64 bad = needle_cpu::first_bad_label(labels.data(), m, k);
  if (bad < 0) return;
  std::ostringstream s;
  s.precision(9);
  s << kernel << ": labels must be integers in [0, " << k << "), got labels[" << bad << "] = " << labels.data()[bad];
  fail(s.str());
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
  m.doc() = "needle-cpu kernels (float32, flat buffers); see needle_cpu._backend for the protocol module";

  needle_cpu_py::add_array_type(m);  // Array: a plain CPython type (array_type.h)

  m.def("from_numpy", [](const py::object& src, Buffer& out) {
    auto arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(src);
    if (!arr) {
      PyErr_Clear();
      throw py::type_error("from_numpy: cannot convert " + py::repr(py::type::of(src)).cast<std::string>() + " to float32");
    }
    if (arr.size() != out.size())
      fail("from_numpy: array has " + std::to_string(arr.size()) + " elements, buffer out has " + std::to_string(out.size()));
    MaybeRelease gil(out.size());
    needle_cpu::copy(arr.data(), out.data(), out.size());
  }, py::arg("np_array"), py::arg("out"), "Copy a numpy array (any layout; converted to float32) into out.");

  m.def("to_numpy", [](const Buffer& a, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("to_numpy", "a", a, shape, strides, offset, &n);
    py::array_t<float> result(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    float* dst = result.mutable_data();
    {
      MaybeRelease gil(n);
      if (n > 0) needle_cpu::compact(a.data(), dst, view);
    }
    return result;
  }, py::arg("a"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "A new numpy array holding the strided view (strides in elements) of a.");

  m.def("fill", [](Buffer& out, double value) {
    MaybeRelease gil(out.size());
    needle_cpu::fill(out.data(), static_cast<float>(value), out.size());
  }, py::arg("out"), py::arg("value"), "Set every element of out to value.");

  m.def("compact", [](const Buffer& a, Buffer& out, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("compact", "a", a, std::move(shape), std::move(strides), offset, &n);
    need_size("compact", "out", out, n, true);
    MaybeRelease gil(n);
    if (overlaps(a, out)) {  // gathering a buffer into itself: go through a copy
      Buffer tmp(n);
      needle_cpu::compact(a.data(), tmp.data(), view);
      needle_cpu::copy(tmp.data(), out.data(), n);
    } else {
      needle_cpu::compact(a.data(), out.data(), view);
    }
  }, py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Gather the strided view of a into the compact buffer out.");

  m.def("ewise_setitem", [](const Buffer& a, Buffer& out, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    i64 n;
    auto view = checked_view("ewise_setitem", "out", out, std::move(shape), std::move(strides), offset, &n);
    need_size("ewise_setitem", "a", a, n, false);
    MaybeRelease gil(n);
    if (overlaps(a, out)) {
      Buffer tmp(n);
      needle_cpu::copy(a.data(), tmp.data(), n);
      needle_cpu::ewise_setitem(tmp.data(), out.data(), view);
    } else {
      needle_cpu::ewise_setitem(a.data(), out.data(), view);
    }
  }, py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Scatter the compact buffer a into the strided view of out.");

  m.def("scalar_setitem", [](i64 size, double val, Buffer& out, std::vector<i64> shape, std::vector<i64> strides, i64 offset) {
    count_arg("scalar_setitem", "size", size);
    i64 n;
    auto view = checked_view("scalar_setitem", "out", out, std::move(shape), std::move(strides), offset, &n);
    MaybeRelease gil(n);
    needle_cpu::scalar_setitem(static_cast<float>(val), out.data(), view);
  }, py::arg("size"), py::arg("val"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"),
     "Set the strided view of out to val (size, the view's element count, is implied by shape).");

  def_binary(m, "ewise_add", Binary::kAdd, "out = a + b");
  def_binary(m, "ewise_sub", Binary::kSub, "out = a - b");
  def_binary(m, "ewise_mul", Binary::kMul, "out = a * b");
  def_binary(m, "ewise_div", Binary::kDiv, "out = a / b");
  def_binary(m, "ewise_maximum", Binary::kMaximum, "out = maximum(a, b) (nan propagates)");
  def_binary(m, "ewise_eq", Binary::kEq, "out = 1.0 where a == b else 0.0");
  def_binary(m, "ewise_ge", Binary::kGe, "out = 1.0 where a >= b else 0.0");
  def_binary(m, "ewise_power", Binary::kPower, "out = a ** b");
  def_binary(m, "ewise_relu_backward", Binary::kReluBackward,
             "Fused ReLU gradient: out = b where a > 0 else 0 (a: the ReLU input, b: the output gradient).");

  def_scalar(m, "scalar_add", ScalarOp::kAdd, "out = a + val");
  def_scalar(m, "scalar_mul", ScalarOp::kMul, "out = a * val");
  def_scalar(m, "scalar_div", ScalarOp::kDiv, "out = a / val");
  def_scalar(m, "scalar_power", ScalarOp::kPower, "out = a ** val");
  def_scalar(m, "scalar_maximum", ScalarOp::kMaximum, "out = maximum(a, val)");
  def_scalar(m, "scalar_eq", ScalarOp::kEq, "out = 1.0 where a == val else 0.0");
  def_scalar(m, "scalar_ge", ScalarOp::kGe, "out = 1.0 where a >= val else 0.0");
  def_scalar(m, "scalar_rsub", ScalarOp::kRsub, "out = val - a");
  def_scalar(m, "scalar_rdiv", ScalarOp::kRdiv, "out = val / a");

  def_unary(m, "ewise_neg", Unary::kNeg, "out = -a");
  def_unary(m, "ewise_log", Unary::kLog, "out = log(a)");
  def_unary(m, "ewise_exp", Unary::kExp, "out = exp(a)");
  def_unary(m, "ewise_tanh", Unary::kTanh, "out = tanh(a)");
  def_unary(m, "ewise_sqrt", Unary::kSqrt, "out = sqrt(a)");
  def_unary(m, "ewise_sigmoid", Unary::kSigmoid, "out = 1 / (1 + exp(-a))");
  def_unary(m, "ewise_relu", Unary::kRelu, "out = maximum(a, 0)");

  m.def("matmul", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    count_arg("matmul", "m", m_); count_arg("matmul", "n", n); count_arg("matmul", "p", p);
    need_size("matmul", "a", a, product("matmul", {m_, n}), false);
    need_size("matmul", "b", b, product("matmul", {n, p}), false);
    need_size("matmul", "out", out, product("matmul", {m_, p}), false);
    matmul_into(a, b, nullptr, out, m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (m x p) = a (m x n) @ b (n x p), compact row-major; packed AVX-512/AVX2 GEMM, threaded.");

  m.def("matmul_tn", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    count_arg("matmul_tn", "m", m_); count_arg("matmul_tn", "n", n); count_arg("matmul_tn", "p", p);
    need_size("matmul_tn", "a", a, product("matmul_tn", {n, m_}), false);
    need_size("matmul_tn", "b", b, product("matmul_tn", {n, p}), false);
    need_size("matmul_tn", "out", out, product("matmul_tn", {m_, p}), false);
    matmul_into(a, b, nullptr, out, m_, n, p, true);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (m x p) = transpose(a) @ b with a (n x m) and b (n x p) compact: a weight gradient x^T @ g "
     "without a transposed copy of x.");

  m.def("matmul_bias", [](const Buffer& a, const Buffer& b, const Buffer& bias, Buffer& out, i64 m_, i64 n, i64 p) {
    count_arg("matmul_bias", "m", m_); count_arg("matmul_bias", "n", n); count_arg("matmul_bias", "p", p);
    need_size("matmul_bias", "a", a, product("matmul_bias", {m_, n}), false);
    need_size("matmul_bias", "b", b, product("matmul_bias", {n, p}), false);
    need_size("matmul_bias", "bias", bias, p, false);
    need_size("matmul_bias", "out", out, product("matmul_bias", {m_, p}), false);
    matmul_into(a, b, &bias, out, m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("bias"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "Fused linear layer: out (m x p) = a (m x n) @ b (n x p) + bias (p,) broadcast over rows.");

  m.def("matmul_batched", [](const Buffer& a, const Buffer& b, Buffer& out, i64 batch, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_batched";
    count_arg(k, "batch", batch); count_arg(k, "m", m_); count_arg(k, "n", n); count_arg(k, "p", p);
    need_size(k, "a", a, product(k, {batch, m_, n}), false);
    need_size(k, "b", b, product(k, {batch, n, p}), false);
    need_size(k, "out", out, product(k, {batch, m_, p}), false);
    i64 total = product(k, {batch, m_, p});
    if (overlaps(a, out) || overlaps(b, out)) {
      Buffer tmp(total);
      { MaybeRelease gil(product(k, {batch, m_, n, p})); needle_cpu::sgemm_batched(batch, m_, n, p, a.data(), b.data(), tmp.data()); }
      std::memcpy(out.data(), tmp.data(), total * sizeof(float));
      return;
    }
    MaybeRelease gil(product(k, {batch, m_, n, p}));
    needle_cpu::sgemm_batched(batch, m_, n, p, a.data(), b.data(), out.data());
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("p"),
     "out (batch, m, p) = a (batch, m, n) @ b (batch, n, p), all compact.");

  m.def("matmul_tiled", [](const Buffer& a, const Buffer& b, Buffer& out, i64 m_, i64 n, i64 p) {
    const char* k = "matmul_tiled";
    count_arg(k, "m", m_); count_arg(k, "n", n); count_arg(k, "p", p);
    if (m_ % needle_cpu::kTile || n % needle_cpu::kTile || p % needle_cpu::kTile)
      fail("matmul_tiled: m, n, p = " + std::to_string(m_) + ", " + std::to_string(n) + ", " + std::to_string(p) +
           " must be multiples of the tile size " + std::to_string(needle_cpu::kTile));
    need_size(k, "a", a, product(k, {m_, n}), false);
    need_size(k, "b", b, product(k, {n, p}), false);
    need_size(k, "out", out, product(k, {m_, p}), false);
    if (overlaps(a, out) || overlaps(b, out)) fail("matmul_tiled: out must not be a or b");
    MaybeRelease gil(product(k, {m_, n, p}));
    needle_cpu::matmul_tiled(a.data(), b.data(), out.data(), m_, n, p);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"),
     "The course's tiled matmul on tile-major layouts (m/T, n/T, T, T) with T = __tile_size__.");
  m.attr("TILE") = needle_cpu::kTile;

  m.def("conv2d_nhwc", [](const Buffer& a, const Buffer& b, Buffer& out, i64 n, i64 h, i64 w, i64 c_in, i64 c_out,
                          i64 kh, i64 kw, i64 sh, i64 sw) {
    const char* k = "conv2d_nhwc";
    for (auto [name, v] : {std::pair<const char*, i64>{"n", n}, {"h", h}, {"w", w}, {"c_in", c_in}, {"c_out", c_out},
                           {"kh", kh}, {"kw", kw}, {"sh", sh}, {"sw", sw}})
      count_arg(k, name, v);
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1) fail("conv2d_nhwc: kernel size and stride must be >= 1");
    if (h < kh || w < kw)
      fail("conv2d_nhwc: input " + std::to_string(h) + "x" + std::to_string(w) + " is smaller than the kernel " +
           std::to_string(kh) + "x" + std::to_string(kw));
    const i64 ho = (h - kh) / sh + 1, wo = (w - kw) / sw + 1;
    need_size(k, "a", a, product(k, {n, h, w, c_in}), false);
    need_size(k, "b", b, product(k, {kh, kw, c_in, c_out}), false);
    need_size(k, "out", out, product(k, {n, ho, wo, c_out}), false);
    if (overlaps(a, out) || overlaps(b, out)) fail("conv2d_nhwc: out must not be a or b");
    MaybeRelease gil(product(k, {n, ho, wo, c_out, kh, kw, c_in}));
    needle_cpu::conv2d_nhwc(a.data(), b.data(), out.data(), n, h, w, c_in, c_out, kh, kw, sh, sw);
  }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c_in"),
     py::arg("c_out"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     "NHWC convolution of the padded input a (n, h, w, c_in) with b (kh, kw, c_in, c_out), strides (sh, sw).");

  m.def("reduce_sum", [](const Buffer& a, Buffer& out, i64 reduce_size) {
    count_arg("reduce_sum", "reduce_size", reduce_size);
    need_size("reduce_sum", "a", a, product("reduce_sum", {out.size(), reduce_size}), false);
    if (overlaps(a, out) && reduce_size != 1) fail("reduce_sum: out must not be a");
    MaybeRelease gil(out.size() * reduce_size);
    needle_cpu::reduce_sum(a.data(), out.data(), out.size(), reduce_size);
  }, py::arg("a"), py::arg("out"), py::arg("reduce_size"), "out[i] = sum(a[i*reduce_size:(i+1)*reduce_size]).");

  m.def("reduce_max", [](const Buffer& a, Buffer& out, i64 reduce_size) {
    count_arg("reduce_max", "reduce_size", reduce_size);
    if (reduce_size == 0 && out.size() > 0) fail("reduce_max: zero-size reduction (reduce_size=0) has no maximum");
    need_size("reduce_max", "a", a, product("reduce_max", {out.size(), reduce_size}), false);
    if (overlaps(a, out) && reduce_size != 1) fail("reduce_max: out must not be a");
    MaybeRelease gil(out.size() * reduce_size);
    needle_cpu::reduce_max(a.data(), out.data(), out.size(), reduce_size);
  }, py::arg("a"), py::arg("out"), py::arg("reduce_size"), "out[i] = max(a[i*reduce_size:(i+1)*reduce_size]).");

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
    lstm_distinct_outputs(k, {&gates, &c, &tc, &h, &out}, {&x, &c_prev});
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
    lstm_distinct_outputs(k, {&dc, &dg, &d_gates}, {&dh, &g_out, &act, &c_prev, &tc});
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
    lstm_distinct_outputs(kn, {&probs, &loss_rows}, {&z, &labels});
    check_class_labels(kn, labels, m_, k);
    MaybeRelease gil(total);
    needle_cpu::softmax_xent_forward(z.data(), labels.data(), probs.data(), loss_rows.data(), m_, k);
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
    lstm_distinct_outputs(kn, {&out}, {&probs, &labels, &scale});
    check_class_labels(kn, labels, m_, k);
    const float s = scale.data()[0];
    MaybeRelease gil(total);
    needle_cpu::softmax_xent_backward(probs.data(), labels.data(), s, out.data(), m_, k);
  }, py::arg("probs"), py::arg("labels"), py::arg("scale"), py::arg("out"), py::arg("m"), py::arg("k"),
     "out (m, k) = (probs - onehot(labels)) * scale[0]; scale is a 1-element buffer (no host read of it).");

  // ---- fused optimiser updates (optim.h): state updated in place, the new weights into `out`
  // All buffers hold one parameter's n elements; param and grad are only read (they may be one
  // buffer), the written ones (state, out) must be buffers of their own.
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
    lstm_distinct_outputs(k, {&m_, &v, &out}, {&param, &grad});
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
    if (u) lstm_distinct_outputs(k, {u, &out}, {&param, &grad});
    else lstm_distinct_outputs(k, {&out}, {&param, &grad});
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
    if (buf) lstm_distinct_outputs(k, {&v, buf, &out}, {&param, &grad});
    else lstm_distinct_outputs(k, {&v, &out}, {&param, &grad});
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
  m.def("clear_buffer_cache", &needle_cpu::clear_cache, "Release every cached buffer to the system.");
  m.def("_gemm_f64", &gemm_f64_numpy, py::arg("a"), py::arg("b"),
        "a @ b for C-contiguous 2-D float64 numpy arrays, as a new array (the float64 GEMM; for tests).");
}
