#include "replay/host_array.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <cstring>

namespace pydqn {
namespace {

template <typename T>
T element(const void* data, int64_t i) {
  T value;  // numpy views may be unaligned
  std::memcpy(&value, static_cast<const unsigned char*>(data) + i * sizeof(T), sizeof(T));
  return value;
}

}  // namespace

int64_t HostArray::integer(int64_t i) const {
  switch (dtype) {
    case at::kByte:
      return element<uint8_t>(data, i);
    case at::kChar:
      return element<int8_t>(data, i);
    case at::kShort:
      return element<int16_t>(data, i);
    case at::kInt:
      return element<int32_t>(data, i);
    case at::kLong:
      return element<int64_t>(data, i);
    case at::kUInt16:
      return element<uint16_t>(data, i);
    case at::kUInt32:
      return element<uint32_t>(data, i);
    default:
      TORCH_INTERNAL_ASSERT(false, "integer() of a ", dtype, " array");
  }
}

double HostArray::real(int64_t i) const {
  switch (dtype) {
    case at::kHalf:
      return static_cast<float>(element<c10::Half>(data, i));
    case at::kBFloat16:
      return static_cast<float>(element<c10::BFloat16>(data, i));
    case at::kFloat:
      return element<float>(data, i);
    case at::kDouble:
      return element<double>(data, i);
    default:
      return static_cast<double>(integer(i));
  }
}

}  // namespace pydqn
