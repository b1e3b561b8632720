#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/SmallVector.h>

#include <cstdint>

namespace pydqn {

// A read-only, C-contiguous array in host memory: a CPU tensor's data or a numpy array's buffer.
// add() reads its arguments through these, so no tensor is built on its path.
struct HostArray {
  const void* data = nullptr;
  at::ScalarType dtype = at::kByte;
  c10::SmallVector<int64_t, 6> shape;

  c10::IntArrayRef sizes() const { return shape; }
  int64_t dim() const { return static_cast<int64_t>(shape.size()); }
  const std::byte* bytes() const { return static_cast<const std::byte*>(data); }

  // Element i of a 1-D integer (see is_integer) or real array, widened; alignment is not assumed.
  int64_t integer(int64_t i) const;
  double real(int64_t i) const;
  // Element i of a bool array; any nonzero byte is true.
  bool flag(int64_t i) const { return static_cast<const unsigned char*>(data)[i] != 0; }
};

// The integer dtypes add() reads: signed ones and the unsigned ones that fit in int64.
inline bool is_integer(at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte:
    case at::kChar:
    case at::kShort:
    case at::kInt:
    case at::kLong:
    case at::kUInt16:
    case at::kUInt32:
      return true;
    default:
      return false;
  }
}

// The dtypes real() reads: is_integer ones and the standard floating point ones.
inline bool is_real(at::ScalarType dtype) {
  return is_integer(dtype) || dtype == at::kHalf || dtype == at::kBFloat16 || dtype == at::kFloat ||
         dtype == at::kDouble;
}

}  // namespace pydqn
