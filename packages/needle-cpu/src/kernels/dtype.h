// Element types of a Buffer: the six dtypes of backend protocol 2.
//
// bool is stored as one byte, 0 or 1; kernels read any nonzero byte as True (a bool buffer written
// through the buffer protocol may hold other bytes) and write only 0 and 1.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace needle_cpu {

// In protocol.ALL_DTYPES order (promotion-table order).
enum class DType : std::uint8_t { kBool = 0, kUint8 = 1, kInt32 = 2, kInt64 = 3, kFloat32 = 4, kFloat64 = 5 };
constexpr int kNumDTypes = 6;

// The C++ type that holds one element (bool: a byte).
template <DType D> struct Storage;
template <> struct Storage<DType::kBool> { using type = std::uint8_t; };
template <> struct Storage<DType::kUint8> { using type = std::uint8_t; };
template <> struct Storage<DType::kInt32> { using type = std::int32_t; };
template <> struct Storage<DType::kInt64> { using type = std::int64_t; };
template <> struct Storage<DType::kFloat32> { using type = float; };
template <> struct Storage<DType::kFloat64> { using type = double; };
template <DType D> using storage_t = typename Storage<D>::type;

constexpr bool is_float(DType d) { return d == DType::kFloat32 || d == DType::kFloat64; }
constexpr bool is_integer(DType d) { return d == DType::kUint8 || d == DType::kInt32 || d == DType::kInt64; }

constexpr std::size_t itemsize(DType d) {
  switch (d) {
    case DType::kBool: case DType::kUint8: return 1;
    case DType::kInt32: case DType::kFloat32: return 4;
    default: return 8;
  }
}

constexpr const char* dtype_name(DType d) {
  switch (d) {
    case DType::kBool: return "bool";
    case DType::kUint8: return "uint8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kFloat32: return "float32";
    default: return "float64";
  }
}

// The struct-module format character the buffer protocol reports.
constexpr const char* dtype_format(DType d) {
  switch (d) {
    case DType::kBool: return "?";
    case DType::kUint8: return "B";
    case DType::kInt32: return "i";
    case DType::kInt64: return "q";
    case DType::kFloat32: return "f";
    default: return "d";
  }
}

// A set of dtypes, one bit each: the dtypes a kernel argument accepts.
using DTypeSet = unsigned;
constexpr DTypeSet bit(DType d) { return 1u << static_cast<unsigned>(d); }
constexpr bool contains(DTypeSet s, DType d) { return (s & bit(d)) != 0; }
constexpr DTypeSet kAllDTypes = 0x3f;
constexpr DTypeSet kFloatDTypes = bit(DType::kFloat32) | bit(DType::kFloat64);
constexpr DTypeSet kNumericDTypes = kAllDTypes & ~bit(DType::kBool);   // arithmetic: all but bool
constexpr DTypeSet kIntBoolDTypes = kAllDTypes & ~kFloatDTypes;        // bitwise / logical

// Calls f(std::integral_constant<DType, d>{}) : one template instance per dtype.
template <class F>
decltype(auto) visit_dtype(DType d, F&& f) {
  switch (d) {
    case DType::kBool: return f(std::integral_constant<DType, DType::kBool>{});
    case DType::kUint8: return f(std::integral_constant<DType, DType::kUint8>{});
    case DType::kInt32: return f(std::integral_constant<DType, DType::kInt32>{});
    case DType::kInt64: return f(std::integral_constant<DType, DType::kInt64>{});
    case DType::kFloat32: return f(std::integral_constant<DType, DType::kFloat32>{});
    default: return f(std::integral_constant<DType, DType::kFloat64>{});
  }
}

}  // namespace needle_cpu
