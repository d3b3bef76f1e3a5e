// needle_cpu._core.Array: the Python object of a Buffer, as a plain CPython type.
//
// Every op output is a new Array, so its creation and destruction are on the eager hot path:
// pybind11's class machinery (instance registry, holder, __init__ dispatch) cost ~0.34 us per
// buffer, a plain type ~0.14 us. The caster below lets the bindings keep taking `Buffer&`.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <new>

#include "kernels/buffer.h"

namespace needle_cpu_py {

struct ArrayObject {
  PyObject_HEAD
  alignas(needle_cpu::Buffer) unsigned char storage[sizeof(needle_cpu::Buffer)];  // the Buffer, in place
  Py_ssize_t shape[1], strides[1];  // what the buffer protocol hands out
  void* spare;  // while on the free list (array_type.cc): the memory block it keeps for reuse

  needle_cpu::Buffer& buffer() { return *std::launder(reinterpret_cast<needle_cpu::Buffer*>(storage)); }
};

extern PyTypeObject ArrayType;

// Ready the type and add it to `m` as "Array".
void add_array_type(pybind11::module_& m);

// A new Array of `size` elements of `dtype` (a new reference; nullptr with MemoryError set).
PyObject* new_array(std::int64_t size, needle_cpu::DType dtype);
// A new Array over foreign memory (see Buffer's second constructor); `release(context)` runs when the
// Array dies, and also here when the Array cannot be created (nullptr with an error set).
PyObject* new_foreign_array(void* data, std::int64_t size, needle_cpu::DType dtype, void (*release)(void*),
                            void* context);

}  // namespace needle_cpu_py

namespace pybind11::detail {

// Array arguments arrive as `Buffer&` / `const Buffer&`, or `Buffer*` where None means "none";
// anything else does not match (TypeError), as with pybind11's own classes.
template <>
class type_caster<needle_cpu::Buffer> {
 public:
  static constexpr auto name = const_name("needle_cpu.Array");

  bool load(handle src, bool convert) {
    if (src.is_none()) {  // only for Buffer* parameters: a reference refuses it below
      value_ = nullptr;
      return convert;
    }
    if (!PyObject_TypeCheck(src.ptr(), &needle_cpu_py::ArrayType)) return false;
    value_ = &reinterpret_cast<needle_cpu_py::ArrayObject*>(src.ptr())->buffer();
    return true;
  }

  template <typename T>
  using cast_op_type = pybind11::detail::cast_op_type<T>;
  operator needle_cpu::Buffer*() { return value_; }
  operator needle_cpu::Buffer&() {
    if (value_ == nullptr) throw reference_cast_error();  // None where an Array is required: TypeError
    return *value_;
  }

 private:
  needle_cpu::Buffer* value_ = nullptr;
};

}  // namespace pybind11::detail
