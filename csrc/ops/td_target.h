#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace pydqn {

// td_target(next_q_target, reward, discount, terminated, next_q_online=None) -> (B,):
//   reward + discount * (1 - terminated) * next_q_target[b, a*]
// with a* = argmax next_q_online[b] (Double DQN) when given, else argmax next_q_target[b]; the
// first maximum wins and NaN counts as the maximum, as in torch.argmax. `discount` holds one value
// or one per row (gamma^n for n-step returns).
void check_td_target_args(const at::Tensor& next_q_target, const at::Tensor& reward,
                          const at::Tensor& discount, const at::Tensor& terminated,
                          const std::optional<at::Tensor>& next_q_online);

}  // namespace pydqn
