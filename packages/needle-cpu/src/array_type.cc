// needle_cpu._core.Array as a plain CPython type (see array_type.h for why).
#include "array_type.h"

#include <cstdint>

namespace needle_cpu_py {
namespace {

using needle_cpu::Buffer;
constexpr long long kMaxElements = 1LL << 58;  // as the bindings: keeps index math in range

ArrayObject* as_array(PyObject* self) { return reinterpret_cast<ArrayObject*>(self); }

using needle_cpu::DType;

constexpr DType kDTypes[] = {DType::kFloat32, DType::kFloat64, DType::kInt32, DType::kInt64, DType::kUint8, DType::kBool};

// The dtype a name (str) stands for; false when it names none of ours.
bool dtype_from_name(PyObject* name, DType* out) {
  for (DType d : kDTypes)
    if (PyUnicode_CompareWithASCIIString(name, needle_cpu::dtype_name(d)) == 0) {
      *out = d;
      return true;
    }
  return false;
}

// Reads `dtype` (not given: float32) into *out; sets a TypeError and returns false when it is none of
// the six names (a str, or anything numpy.dtype reads as one of them: np.int32, np.dtype("bool"), ...).
bool parse_dtype(PyObject* dtype, DType* out) {
  *out = DType::kFloat32;
  if (dtype == nullptr) return true;
  if (PyUnicode_Check(dtype) && PyUnicode_CompareWithASCIIString(dtype, "float32") == 0) return true;  // the common case
  if (PyUnicode_Check(dtype) && dtype_from_name(dtype, out)) return true;
  bool ok = false;
  if (dtype != Py_None) {  // numpy reads None as float64: refuse it
    if (PyObject* numpy = PyImport_ImportModule("numpy")) {
      if (PyObject* parsed = PyObject_CallMethod(numpy, "dtype", "O", dtype)) {
        if (PyObject* name = PyObject_GetAttrString(parsed, "name")) {
          ok = PyUnicode_Check(name) && dtype_from_name(name, out);
          Py_DECREF(name);
        }
        Py_DECREF(parsed);
      }
      Py_DECREF(numpy);
    }
    PyErr_Clear();
  }
  if (!ok)
    PyErr_Format(PyExc_TypeError,
                 "needle-cpu supports dtypes ('float32', 'float64', 'int32', 'int64', 'uint8', 'bool'), got dtype=%R",
                 dtype);
  return ok;
}

// Small buffers die and are born at the rate of ops (~1 us each for an (8, 8) add): a dead Array
// of less than kFreeMaxBytes keeps its object and its memory block on a free list, by block size, and
// the next Array of that block size takes both (no tp_alloc/tp_free, no aligned_alloc/free: ~60 ns
// of the ~150 ns for a small one, more for the tens of KiB of an MLP's activations). Blocks under
// 64 KiB are the size rounded up to kAlignment (alloc_bytes' size_class), so one list per multiple
// of 64 bytes. The lists are bounded (kFreePerClass each, kFreeMaxHeld bytes in all) and touched only
// with the GIL held (an Array is created and destroyed only under it). The live-bytes statistics
// count a buffer as freed when it enters a list and allocated when it leaves.
constexpr std::size_t kFreeMaxBytes = std::size_t(64) << 10;
constexpr std::size_t kFreeMaxHeld = std::size_t(4) << 20;
constexpr int kFreeClasses = static_cast<int>(kFreeMaxBytes / needle_cpu::kAlignment);
constexpr int kFreePerClass = 16;
struct FreeList {
  int count = 0;
  ArrayObject* items[kFreePerClass];
};
FreeList g_free[kFreeClasses];
std::size_t g_free_held = 0;  // bytes of the blocks on the lists

// The free list of a buffer of `nbytes` bytes; kFreeClasses when it is too big for one.
int free_class(std::size_t nbytes) {
  if (nbytes >= kFreeMaxBytes) return kFreeClasses;
  return nbytes == 0 ? 0 : static_cast<int>((nbytes - 1) / needle_cpu::kAlignment);
}

// The bytes of a block of free list `cls`.
std::size_t class_bytes(int cls) { return static_cast<std::size_t>(cls + 1) * needle_cpu::kAlignment; }

// A new Array of `n` (checked: 0 <= n <= kMaxElements) elements of `dt`; nullptr with MemoryError set.
PyObject* make_array(long long n, DType dt) {
  const int cls = free_class(static_cast<std::size_t>(n) * needle_cpu::itemsize(dt));
  if (cls < kFreeClasses && g_free[cls].count > 0 && !needle_cpu::alloc_failures_pending()) {
    ArrayObject* obj = g_free[cls].items[--g_free[cls].count];
    g_free_held -= class_bytes(cls);
    PyObject* self = PyObject_Init(reinterpret_cast<PyObject*>(obj), &ArrayType);
    new (obj->storage) Buffer(n, dt, obj->spare);
    return self;
  }
  PyObject* self = ArrayType.tp_alloc(&ArrayType, 0);
  if (self == nullptr) return nullptr;
  try {
    new (as_array(self)->storage) Buffer(n, dt);
  } catch (const std::bad_alloc&) {
    ArrayType.tp_free(self);  // no Buffer was made: skip array_dealloc
    return PyErr_Format(PyExc_MemoryError, "needle-cpu: cannot allocate %lld %s elements (%lld bytes)", n,
                        needle_cpu::dtype_name(dt), n * static_cast<long long>(needle_cpu::itemsize(dt)));
  }
  return self;
}

PyObject* array_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  static const char* keywords[] = {"size", "dtype", nullptr};
  PyObject *size = nullptr, *dtype = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:Array", const_cast<char**>(keywords), &size, &dtype))
    return nullptr;
  DType dt;
  if (!parse_dtype(dtype, &dt)) return nullptr;
  PyObject* index = PyNumber_Index(size);
  if (index == nullptr) {
    PyErr_Clear();
    return PyErr_Format(PyExc_TypeError, "Array: size must be an integer, got %R", size);
  }
  int overflow = 0;
  long long n = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow || n < 0 || n > kMaxElements)
    return PyErr_Format(PyExc_ValueError, "Array: size=%R must be in [0, 2**58]", size);
  (void)type;  // the type cannot be subclassed (no Py_TPFLAGS_BASETYPE): always ArrayType
  return make_array(n, dt);
}

// Array(size) and Array(size, "float32") (the ops' output buffers) without building an argument
// tuple or parsing it; anything else goes through array_new.
PyObject* array_vectorcall(PyObject* type, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (kwnames == nullptr && (nargs == 1 || nargs == 2) && PyLong_CheckExact(args[0])) {
    DType dt = DType::kFloat32;
    if (nargs == 1 || (PyUnicode_CheckExact(args[1]) && dtype_from_name(args[1], &dt))) {
      int overflow = 0;
      const long long n = PyLong_AsLongLongAndOverflow(args[0], &overflow);
      if (!overflow && n >= 0 && n <= kMaxElements) return make_array(n, dt);
    }
  }
  PyObject* tuple = PyTuple_New(nargs);
  if (tuple == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(tuple, i, args[i]);
  }
  PyObject* kwds = nullptr;
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    kwds = PyDict_New();
    for (Py_ssize_t i = 0; kwds != nullptr && i < PyTuple_GET_SIZE(kwnames); ++i)
      if (PyDict_SetItem(kwds, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) Py_CLEAR(kwds);
    if (kwds == nullptr) {
      Py_DECREF(tuple);
      return nullptr;
    }
  }
  PyObject* out = array_new(reinterpret_cast<PyTypeObject*>(type), tuple, kwds);
  Py_DECREF(tuple);
  Py_XDECREF(kwds);
  return out;
}

void array_dealloc(PyObject* self) {
  ArrayObject* obj = as_array(self);
  Buffer& b = obj->buffer();
#ifndef NEEDLE_CPU_NO_BUFFER_CACHE  // sanitizer builds: free for real, so ASan sees a use after free
  if (b.owns_memory()) {
    const int cls = free_class(b.nbytes());
    if (cls < kFreeClasses && g_free[cls].count < kFreePerClass && g_free_held + class_bytes(cls) <= kFreeMaxHeld) {
      obj->spare = b.release_memory();
      b.~Buffer();
      g_free[cls].items[g_free[cls].count++] = obj;
      g_free_held += class_bytes(cls);
      return;
    }
  }
#endif
  b.~Buffer();
  Py_TYPE(self)->tp_free(self);
}

PyObject* array_repr(PyObject* self) {
  const Buffer& b = as_array(self)->buffer();
  return PyUnicode_FromFormat("needle_cpu.Array(size=%lld, dtype='%s')", static_cast<long long>(b.size()),
                              needle_cpu::dtype_name(b.dtype()));
}

// The buffer protocol: a writable 1-D view of the buffer's dtype, so numpy.asarray(buf) shares the memory.
int array_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  ArrayObject* obj = as_array(self);
  const Buffer& b = obj->buffer();
  obj->shape[0] = static_cast<Py_ssize_t>(b.size());
  const Py_ssize_t item = static_cast<Py_ssize_t>(needle_cpu::itemsize(b.dtype()));
  obj->strides[0] = item;
  view->obj = self;
  Py_INCREF(self);
  view->buf = b.raw();
  view->len = static_cast<Py_ssize_t>(b.nbytes());
  view->readonly = 0;
  view->itemsize = item;
  view->format = (flags & PyBUF_FORMAT) ? const_cast<char*>(needle_cpu::dtype_format(b.dtype())) : nullptr;
  view->ndim = 1;
  view->shape = (flags & PyBUF_ND) ? obj->shape : nullptr;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? obj->strides : nullptr;
  view->suboffsets = nullptr;
  view->internal = nullptr;
  return 0;
}

PyBufferProcs array_as_buffer = {array_getbuffer, nullptr};

PyObject* array_ptr(PyObject* self, PyObject*) {
  return PyLong_FromUnsignedLongLong(reinterpret_cast<std::uintptr_t>(as_array(self)->buffer().raw()));
}

PyObject* array_size(PyObject* self, void*) {
  return PyLong_FromLongLong(static_cast<long long>(as_array(self)->buffer().size()));
}

// Interned names: .dtype is read on hot paths.
PyObject* array_dtype(PyObject* self, void*) {
  static PyObject* names[needle_cpu::kNumDTypes] = {};
  const int d = static_cast<int>(as_array(self)->buffer().dtype());
  if (names[d] == nullptr) {
    names[d] = PyUnicode_InternFromString(needle_cpu::dtype_name(static_cast<DType>(d)));
    if (names[d] == nullptr) return nullptr;
  }
  Py_INCREF(names[d]);
  return names[d];
}

PyMethodDef array_methods[] = {
    {"ptr", array_ptr, METH_NOARGS, "Address of the first element."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef array_getset[] = {
    {"size", array_size, nullptr, "Number of elements.", nullptr},
    {"dtype", array_dtype, nullptr, "Element type name.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

PyTypeObject ArrayType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* new_array(std::int64_t size, DType dtype) {
  if (size < 0 || size > kMaxElements)
    return PyErr_Format(PyExc_MemoryError, "needle-cpu: cannot allocate %lld %s elements", static_cast<long long>(size),
                        needle_cpu::dtype_name(dtype));
  return make_array(size, dtype);
}

PyObject* new_foreign_array(void* data, std::int64_t size, DType dtype, void (*release)(void*), void* context) {
  PyObject* self = ArrayType.tp_alloc(&ArrayType, 0);
  if (self == nullptr) {
    release(context);
    return nullptr;
  }
  new (as_array(self)->storage) Buffer(data, size, dtype, release, context);
  return self;
}

void add_array_type(pybind11::module_& m) {
  ArrayType.tp_name = "needle_cpu._core.Array";
  ArrayType.tp_doc =
      "A 64-byte aligned flat buffer: Array(size, dtype='float32'), dtype one of float32, float64, int32,\n"
      "int64, uint8, bool (one byte, 0 or 1).\n\n"
      "Supports the buffer protocol, so numpy.asarray(buf) is a zero-copy view.";
  ArrayType.tp_basicsize = sizeof(ArrayObject);
  ArrayType.tp_flags = Py_TPFLAGS_DEFAULT;
  ArrayType.tp_new = array_new;
  ArrayType.tp_vectorcall = array_vectorcall;
  ArrayType.tp_dealloc = array_dealloc;
  ArrayType.tp_repr = array_repr;
  ArrayType.tp_as_buffer = &array_as_buffer;
  ArrayType.tp_methods = array_methods;
  ArrayType.tp_getset = array_getset;
  if (PyType_Ready(&ArrayType) < 0) throw pybind11::error_already_set();
  Py_INCREF(&ArrayType);
  if (PyModule_AddObject(m.ptr(), "Array", reinterpret_cast<PyObject*>(&ArrayType)) < 0) {
    Py_DECREF(&ArrayType);
    throw pybind11::error_already_set();
  }
}

}  // namespace needle_cpu_py
