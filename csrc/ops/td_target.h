#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace pydqn {

// td_target(next_q_target, reward, discount, terminated, next_q_online=None) -> (B,):
//   reward + discount * (1 - terminated) * next_q_target[b, a*]
// with a* = argmax next_q_online[b] (Double DQN) when given, else argmax next_q_target[b]; the
// first maximum wins and NaN counts as the maximum, as in torch.argmax. `discount` holds one value
// or one per row (gamma^n for n-step returns).
// The arguments checked and made contiguous, for the kernels of every device; `next_q_online` is
// `next_q_target` when none was given (the max target).
struct TdTargetArgs {
  at::Tensor next_q_target, reward, discount, terminated, next_q_online;
  int64_t batch() const { return next_q_target.size(0); }
  int64_t actions() const { return next_q_target.size(1); }
  int64_t discount_stride() const { return discount.numel() == 1 ? 0 : 1; }
};
TdTargetArgs prepare_td_target_args(const at::Tensor& next_q_target, const at::Tensor& reward,
                                    const at::Tensor& discount, const at::Tensor& terminated,
                                    const std::optional<at::Tensor>& next_q_online);

}  // namespace pydqn
