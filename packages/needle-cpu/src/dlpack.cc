// DLPack export and import of needle-cpu buffers (see dlpack.h).
#include "dlpack.h"

#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "array_type.h"

namespace py = pybind11;

namespace needle_cpu_py {
namespace {

using needle_cpu::Buffer;
using needle_cpu::DType;
using i64 = std::int64_t;

constexpr const char* kCapsule = "dltensor";
constexpr const char* kUsedCapsule = "used_dltensor";
constexpr const char* kVersionedCapsule = "dltensor_versioned";
constexpr const char* kUsedVersionedCapsule = "used_dltensor_versioned";
constexpr int kMaxDims = 32;
constexpr i64 kMaxElements = i64(1) << 58;

// ---- export ----------------------------------------------------------------------------------

// What an exported tensor owns: the DLPack struct (legacy or versioned), its shape and strides, and a
// reference to the Array.
struct Export {
  dl::DLManagedTensor managed;
  dl::DLManagedTensorVersioned versioned;
  PyObject* owner;
  std::vector<i64> shape, strides;
};

// The consumer's (or the unused capsule's) call: drop the reference to the Array. Consumers may call
// it from any thread, with or without the GIL.
void release_export(Export* state) {
  if (Py_IsInitialized()) {  // at interpreter exit the Array is gone already
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_DECREF(state->owner);
    PyGILState_Release(gil);
  }
  delete state;
}

void export_deleter(dl::DLManagedTensor* self) { release_export(static_cast<Export*>(self->manager_ctx)); }
void export_deleter_versioned(dl::DLManagedTensorVersioned* self) {
  release_export(static_cast<Export*>(self->manager_ctx));
}

// A capsule nobody consumed still owns its tensor; a consumed one was renamed "used_dltensor[_versioned]".
void capsule_destructor(PyObject* capsule) {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  if (PyCapsule_IsValid(capsule, kCapsule)) {
    auto* managed = static_cast<dl::DLManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsule));
    if (managed->deleter != nullptr) managed->deleter(managed);
  } else if (PyCapsule_IsValid(capsule, kVersionedCapsule)) {
    auto* managed = static_cast<dl::DLManagedTensorVersioned*>(PyCapsule_GetPointer(capsule, kVersionedCapsule));
    if (managed->deleter != nullptr) managed->deleter(managed);
  }
  PyErr_Restore(type, value, traceback);
}

dl::DLDataType dl_dtype(DType d) {
  switch (d) {
    case DType::kBool: return {dl::kDLBool, 8, 1};
    case DType::kUint8: return {dl::kDLUInt, 8, 1};
    case DType::kInt32: return {dl::kDLInt, 32, 1};
    case DType::kInt64: return {dl::kDLInt, 64, 1};
    case DType::kFloat32: return {dl::kDLFloat, 32, 1};
    default: return {dl::kDLFloat, 64, 1};
  }
}

// ---- import ----------------------------------------------------------------------------------

void release_legacy(void* managed) {
  auto* m = static_cast<dl::DLManagedTensor*>(managed);
  if (m->deleter != nullptr) m->deleter(m);
}

void release_versioned(void* managed) {
  auto* m = static_cast<dl::DLManagedTensorVersioned*>(managed);
  if (m->deleter != nullptr) m->deleter(m);
}

const char* code_name(std::uint8_t code) {
  switch (code) {
    case dl::kDLInt: return "int";
    case dl::kDLUInt: return "uint";
    case dl::kDLFloat: return "float";
    case dl::kDLBfloat: return "bfloat";
    case dl::kDLComplex: return "complex";
    case dl::kDLBool: return "bool";
    default: return "code ";
  }
}

// needle-cpu's dtype for a DLPack dtype; TypeError naming it when there is none.
DType needle_dtype(const dl::DLDataType& t) {
  if (t.lanes == 1) {
    if (t.code == dl::kDLFloat && t.bits == 32) return DType::kFloat32;
    if (t.code == dl::kDLFloat && t.bits == 64) return DType::kFloat64;
    if (t.code == dl::kDLInt && t.bits == 32) return DType::kInt32;
    if (t.code == dl::kDLInt && t.bits == 64) return DType::kInt64;
    if (t.code == dl::kDLUInt && t.bits == 8) return DType::kUint8;
    if (t.code == dl::kDLBool && t.bits == 8) return DType::kBool;
  }
  std::string name = code_name(t.code);
  if (name == "code ") name += std::to_string(t.code) + ", bits ";
  name += std::to_string(t.bits);
  if (t.lanes != 1) name += " x" + std::to_string(t.lanes) + " lanes";
  throw py::type_error("from_dlpack: needle-cpu cannot hold DLPack dtype " + name +
                       "; it holds float32, float64, int32, int64, uint8 and bool");
}

// dst (compact) = the strided view of src, element by element through memcpy: src may be misaligned.
void copy_elements(const char* src, char* dst, const std::vector<i64>& shape, const std::vector<i64>& strides,
                   i64 offset, i64 n, std::size_t item) {
  const std::size_t ndim = shape.size();
  std::vector<i64> idx(ndim, 0);
  i64 pos = offset;
  for (i64 i = 0; i < n; ++i) {
    std::memcpy(dst + i * static_cast<i64>(item), src + pos * static_cast<i64>(item), item);
    for (std::size_t d = ndim; d-- > 0;) {  // next row-major index
      pos += strides[d];
      if (++idx[d] < shape[d]) break;
      pos -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

py::capsule dlpack_export(py::handle owner, const Buffer& buffer, const needle_cpu::View& view, bool versioned) {
  const std::size_t item = needle_cpu::itemsize(buffer.dtype());
  i64 n = 1;
  for (i64 s : view.shape) n *= s;
  auto* state = new Export{};
  state->owner = owner.ptr();
  Py_INCREF(state->owner);
  state->shape = view.shape;
  state->strides = view.strides;
  dl::DLTensor& t = versioned ? state->versioned.dl_tensor : state->managed.dl_tensor;
  // An empty view may carry any offset: point at the buffer itself then.
  t.data = static_cast<char*>(buffer.raw()) + (n > 0 ? view.offset * static_cast<i64>(item) : 0);
  t.device = {dl::kDLCPU, 0};
  t.ndim = static_cast<std::int32_t>(view.shape.size());
  t.dtype = dl_dtype(buffer.dtype());
  t.shape = state->shape.data();
  t.strides = state->strides.data();
  t.byte_offset = 0;
  void* managed;
  if (versioned) {
    state->versioned.version = {1, 0};
    state->versioned.manager_ctx = state;
    state->versioned.deleter = export_deleter_versioned;
    state->versioned.flags = 0;  // writable, not a copy
    managed = &state->versioned;
  } else {
    state->managed.manager_ctx = state;
    state->managed.deleter = export_deleter;
    managed = &state->managed;
  }
  PyObject* capsule = PyCapsule_New(managed, versioned ? kVersionedCapsule : kCapsule, capsule_destructor);
  if (capsule == nullptr) {
    release_export(state);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::capsule>(capsule);
}

py::tuple dlpack_import(py::handle capsule) {
  if (!PyCapsule_CheckExact(capsule.ptr()))
    throw py::type_error("from_dlpack: expected a DLPack capsule, got " + py::repr(py::type::of(capsule)).cast<std::string>());
  const char* name = PyCapsule_GetName(capsule.ptr());
  const bool legacy = name != nullptr && std::strcmp(name, kCapsule) == 0;
  const bool versioned = name != nullptr && std::strcmp(name, kVersionedCapsule) == 0;
  if (!legacy && !versioned)
    throw py::value_error(std::string("from_dlpack: expected an unused 'dltensor' or 'dltensor_versioned' capsule, got one named ") +
                          (name ? "'" + std::string(name) + "'" : std::string("NULL")) + " (a capsule can be consumed once)");
  void* managed = PyCapsule_GetPointer(capsule.ptr(), name);
  if (managed == nullptr) throw py::error_already_set();
  const dl::DLTensor* t;
  bool read_only = false;
  if (versioned) {
    auto* m = static_cast<dl::DLManagedTensorVersioned*>(managed);
    if (m->version.major != 1)
      throw py::value_error("from_dlpack: DLPack ABI version " + std::to_string(m->version.major) + "." +
                            std::to_string(m->version.minor) + " is not supported (needle-cpu reads 1.x)");
    t = &m->dl_tensor;
    read_only = (m->flags & dl::kFlagReadOnly) != 0;
  } else {
    t = &static_cast<dl::DLManagedTensor*>(managed)->dl_tensor;
  }

  // Check everything before taking ownership: on an error the capsule stays unused and frees itself.
  if (t->device.device_type != dl::kDLCPU)
    throw py::value_error("from_dlpack: needle-cpu adopts host memory (DLPack device type 1, kDLCPU), got device type " +
                          std::to_string(t->device.device_type));
  const DType dtype = needle_dtype(t->dtype);
  if (t->ndim < 0 || t->ndim > kMaxDims)
    throw py::value_error("from_dlpack: at most 32 dimensions, got ndim=" + std::to_string(t->ndim));
  const std::size_t ndim = static_cast<std::size_t>(t->ndim);
  std::vector<i64> shape(t->shape, t->shape + ndim), strides(ndim);
  i64 n = 1;
  for (i64 s : shape) {
    if (s < 0) throw py::value_error("from_dlpack: negative dimension " + std::to_string(s));
    if (__builtin_mul_overflow(n, s, &n) || n > kMaxElements) throw py::value_error("from_dlpack: tensor too large");
  }
  for (std::size_t d = ndim, step = 1; d-- > 0;) {  // compact row-major when the producer gives no strides
    strides[d] = t->strides != nullptr ? t->strides[d] : static_cast<i64>(step);
    step *= static_cast<std::size_t>(shape[d] > 0 ? shape[d] : 1);
  }
  __int128 lo = 0, hi = 0;  // the lowest and highest element the view reaches
  for (std::size_t d = 0; d < ndim && n > 0; ++d) {
    const __int128 reach = static_cast<__int128>(shape[d] - 1) * strides[d];
    (reach < 0 ? lo : hi) += reach;
  }
  if (n > 0 && hi - lo >= kMaxElements) throw py::value_error("from_dlpack: the tensor's strides span too much memory");
  const std::size_t item = needle_cpu::itemsize(dtype);
  char* first = static_cast<char*>(t->data) + t->byte_offset;
  const bool aligned = reinterpret_cast<std::uintptr_t>(first) % item == 0;

  void (*release)(void*) = versioned ? release_versioned : release_legacy;
  if (PyCapsule_SetName(capsule.ptr(), versioned ? kUsedVersionedCapsule : kUsedCapsule) != 0) throw py::error_already_set();
  char* base = first + static_cast<i64>(lo) * static_cast<i64>(item);
  if (n > 0 && aligned && !read_only) {  // adopt: the producer's deleter runs when the Array dies
    PyObject* array = new_foreign_array(base, static_cast<i64>(hi - lo) + 1, dtype, release, managed);
    if (array == nullptr) throw py::error_already_set();
    return py::make_tuple(py::reinterpret_steal<py::object>(array), shape, strides, static_cast<i64>(-lo), false);
  }
  // Read-only, misaligned or empty: a compact copy, and the producer's memory is released now.
  PyObject* array = new_array(n, dtype);
  if (array == nullptr) {
    release(managed);
    throw py::error_already_set();
  }
  auto* copy = reinterpret_cast<ArrayObject*>(array);
  copy_elements(base, static_cast<char*>(copy->buffer().raw()), shape, strides, static_cast<i64>(-lo), n, item);
  release(managed);
  std::vector<i64> compact_strides(ndim);
  for (std::size_t d = ndim, step = 1; d-- > 0;) {
    compact_strides[d] = static_cast<i64>(step);
    step *= static_cast<std::size_t>(shape[d] > 0 ? shape[d] : 1);
  }
  return py::make_tuple(py::reinterpret_steal<py::object>(array), shape, compact_strides, 0, true);
}

}  // namespace needle_cpu_py
