#pragma once

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

#include "ops/q_td_loss.h"

namespace pydqn {

// The per-element rules of td_target and q_td_loss, shared by the CPU and CUDA kernels so both
// compute the same thing. Plain comparisons instead of std:: calls, which device code lacks.

template <typename T>
C10_HOST_DEVICE inline bool is_nan(T x) {
  return x != x;
}

// Index of the first maximum of a row; NaN counts as the maximum (torch.argmax's rule). Values
// compare in their math type (float for half types, which have no device comparisons).
template <typename T>
C10_HOST_DEVICE inline int64_t argmax_row(const T* row, int64_t n) {
  using math_t = at::opmath_type<T>;
  int64_t best = 0;
  math_t best_value = static_cast<math_t>(row[0]);
  for (int64_t j = 1; j < n && !is_nan(best_value); ++j) {
    const math_t value = static_cast<math_t>(row[j]);
    if (is_nan(value) || value > best_value) {
      best = j;
      best_value = value;
    }
  }
  return best;
}

// l(d): Huber with delta 1 (the DQN paper's clipped error) or the squared error.
template <typename T>
C10_HOST_DEVICE inline T td_loss(T d, LossKind kind) {
  if (kind == LossKind::kMse) return d * d;
  const T magnitude = d < T(0) ? -d : d;
  return magnitude <= T(1) ? T(0.5) * d * d : magnitude - T(0.5);
}

// l'(d).
template <typename T>
C10_HOST_DEVICE inline T td_loss_slope(T d, LossKind kind) {
  if (kind == LossKind::kMse) return T(2) * d;
  return d < T(-1) ? T(-1) : (d > T(1) ? T(1) : d);
}

}  // namespace pydqn
