#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace pydqn {

// Small argument checks shared by the ops' contracts (ops/*.cpp).
inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& like,
                              const char* like_name) {
  TORCH_CHECK_VALUE(t.device() == like.device(), name, ": expected a tensor on ", like.device(),
                    " like ", like_name, ", got ", t.device());
}

inline void check_rows(const at::Tensor& t, const char* name, int64_t rows) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == rows, name, ": expected shape (", rows, ",), got ",
                    t.sizes());
}

inline void check_dtype_like(const at::Tensor& t, const char* name, const at::Tensor& like,
                             const char* like_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), name, ": expected ", like.scalar_type(),
                   " like ", like_name, ", got ", t.scalar_type());
}

}  // namespace pydqn
