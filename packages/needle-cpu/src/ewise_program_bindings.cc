// The binding of ewise_program (kernels/ewise_program.h): checks every argument, then runs the
// program without the GIL. EWISE_PROGRAM_OPS tells needle.jit which kernels a program can hold.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "array_type.h"
#include "kernels/ewise.h"
#include "kernels/ewise_program.h"

namespace py = pybind11;

namespace needle_cpu_py {
namespace {

using needle_cpu::Binary;
using needle_cpu::ProgramKind;
using needle_cpu::ProgramStep;
using needle_cpu::ScalarOp;
using needle_cpu::Unary;
using i64 = std::int64_t;

[[noreturn]] void fail(const std::string& msg) { throw py::value_error("ewise_program: " + msg); }

int op_count(ProgramKind kind) {
  switch (kind) {
    case ProgramKind::kBinary: return static_cast<int>(Binary::kCount);
    case ProgramKind::kScalar: return static_cast<int>(ScalarOp::kCount);
    case ProgramKind::kUnary: return static_cast<int>(Unary::kCount);
    default: return 1;
  }
}

void run_program(const py::list& buffers, const std::vector<i64>& code, const std::vector<double>& values, i64 n,
                 i64 block) {
  if (n < 0 || block < 1) fail("n must be >= 0 and block >= 1, got n=" + std::to_string(n) + ", block=" +
                               std::to_string(block));
  if (code.size() != 5 * values.size()) fail("code must hold 5 integers per value (kind, op, out, a, b)");
  std::vector<float*> data;
  data.reserve(buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    PyObject* obj = buffers[i].ptr();
    if (!PyObject_TypeCheck(obj, &ArrayType))
      throw py::type_error("ewise_program: buffers[" + std::to_string(i) + "] is not a needle_cpu Array");
    needle_cpu::Buffer& b = reinterpret_cast<ArrayObject*>(obj)->buffer();
    if (b.dtype() != needle_cpu::DType::kFloat32)
      throw py::type_error("ewise_program: buffers[" + std::to_string(i) + "] is not float32");
    if (b.size() != n) fail("buffers[" + std::to_string(i) + "] has " + std::to_string(b.size()) +
                            " elements, expected n=" + std::to_string(n));
    data.push_back(b.data());
  }
  const i64 nbuf = static_cast<i64>(data.size());
  std::vector<ProgramStep> steps(values.size());
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const i64* c = &code[5 * s];
    if (c[0] < 0 || c[0] >= static_cast<i64>(ProgramKind::kCount)) fail("step " + std::to_string(s) + ": bad kind");
    const auto kind = static_cast<ProgramKind>(c[0]);
    if (c[1] < 0 || c[1] >= op_count(kind)) fail("step " + std::to_string(s) + ": bad op");
    for (int j = 2; j < 5; ++j)
      if (c[j] < 0 || c[j] >= nbuf) fail("step " + std::to_string(s) + ": buffer index out of range");
    steps[s] = ProgramStep{kind, static_cast<std::int32_t>(c[1]), static_cast<std::int32_t>(c[2]),
                           static_cast<std::int32_t>(c[3]), static_cast<std::int32_t>(c[4]),
                           static_cast<float>(values[s])};
  }
  py::gil_scoped_release release;
  needle_cpu::ewise_program(steps.data(), static_cast<i64>(steps.size()), data.data(), n, block);
}

}  // namespace

void add_ewise_program(py::module_& m) {
  py::dict ops;
  auto put = [&](const char* name, ProgramKind kind, int op) { ops[name] = py::make_tuple(int(kind), op); };
  put("ewise_add", ProgramKind::kBinary, int(Binary::kAdd));
  put("ewise_sub", ProgramKind::kBinary, int(Binary::kSub));
  put("ewise_mul", ProgramKind::kBinary, int(Binary::kMul));
  put("ewise_div", ProgramKind::kBinary, int(Binary::kDiv));
  put("ewise_maximum", ProgramKind::kBinary, int(Binary::kMaximum));
  put("ewise_power", ProgramKind::kBinary, int(Binary::kPower));
  put("ewise_relu_backward", ProgramKind::kBinary, int(Binary::kReluBackward));
  put("scalar_add", ProgramKind::kScalar, int(ScalarOp::kAdd));
  put("scalar_mul", ProgramKind::kScalar, int(ScalarOp::kMul));
  put("scalar_div", ProgramKind::kScalar, int(ScalarOp::kDiv));
  put("scalar_power", ProgramKind::kScalar, int(ScalarOp::kPower));
  put("scalar_maximum", ProgramKind::kScalar, int(ScalarOp::kMaximum));
  put("scalar_rsub", ProgramKind::kScalar, int(ScalarOp::kRsub));
  put("scalar_rdiv", ProgramKind::kScalar, int(ScalarOp::kRdiv));
  put("ewise_neg", ProgramKind::kUnary, int(Unary::kNeg));
  put("ewise_log", ProgramKind::kUnary, int(Unary::kLog));
  put("ewise_exp", ProgramKind::kUnary, int(Unary::kExp));
  put("ewise_tanh", ProgramKind::kUnary, int(Unary::kTanh));
  put("ewise_sqrt", ProgramKind::kUnary, int(Unary::kSqrt));
  put("ewise_sigmoid", ProgramKind::kUnary, int(Unary::kSigmoid));
  put("ewise_relu", ProgramKind::kUnary, int(Unary::kRelu));
  put("fill", ProgramKind::kFill, 0);
  put("copy", ProgramKind::kCopy, 0);
  m.attr("EWISE_PROGRAM_OPS") = ops;
  m.def("ewise_program", &run_program, py::arg("buffers"), py::arg("code"), py::arg("values"), py::arg("n"),
        py::arg("block") = 4096,
        "Run elementwise kernels block by block over float32 buffers of n elements: step s is code[5s:5s+5] = "
        "(kind, op, out, a, b) with scalar values[s] (see EWISE_PROGRAM_OPS); results equal running the "
        "kernels one after another, bit for bit.");
}

}  // namespace needle_cpu_py
