// DLPack exchange for needle-cpu buffers (https://dmlc.github.io/dlpack/latest/c_api.html).
//
// The DLPack ABI is a handful of plain C structs; they are written out here from the specification
// (legacy "dltensor" capsules, and the versioned "dltensor_versioned" ones of DLPack 1.x).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

#include "kernels/buffer.h"
#include "kernels/strided.h"

namespace needle_cpu_py {

namespace dl {

constexpr std::int32_t kDLCPU = 1;  // DLDeviceType: host memory

// DLDataTypeCode
constexpr std::uint8_t kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLComplex = 5, kDLBool = 6;

struct DLDevice {
  std::int32_t device_type;  // a DLDeviceType (a C enum: int-sized)
  std::int32_t device_id;
};

struct DLDataType {
  std::uint8_t code;  // a DLDataTypeCode
  std::uint8_t bits;
  std::uint16_t lanes;
};

struct DLTensor {
  void* data;
  DLDevice device;
  std::int32_t ndim;
  DLDataType dtype;
  std::int64_t* shape;    // ndim elements
  std::int64_t* strides;  // ndim elements, in elements (not bytes); null means compact row-major
  std::uint64_t byte_offset;
};

struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

struct DLPackVersion {
  std::uint32_t major;
  std::uint32_t minor;
};

constexpr std::uint64_t kFlagReadOnly = 1;  // DLPACK_FLAG_BITMASK_READ_ONLY

struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  std::uint64_t flags;
  DLTensor dl_tensor;
};

}  // namespace dl

// A new capsule over the (checked) strided `view` of `buffer`, the Buffer of the Array `owner`: a
// "dltensor_versioned" one (DLPack 1.0, writable) when `versioned`, else a legacy "dltensor" one. The
// owner stays alive until the consumer calls the deleter (or the capsule dies unused).
pybind11::capsule dlpack_export(pybind11::handle owner, const needle_cpu::Buffer& buffer, const needle_cpu::View& view,
                                bool versioned);

// Adopt the tensor in a "dltensor" or "dltensor_versioned" capsule: (Array, shape, strides, offset,
// copied). The Array wraps the producer's memory (the producer's deleter runs when it dies) unless the
// tensor is read-only or not aligned to its itemsize: then it is a compact copy and `copied` is True.
pybind11::tuple dlpack_import(pybind11::handle capsule);

}  // namespace needle_cpu_py
