#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>

namespace pydqn {

// q_td_loss(q, action, target, weights=None, kind="huber") -> (loss, td_error):
//   td_error[b] = q[b, action[b]] - target[b]
//   loss        = mean_b weights[b] * l(td_error[b])   (weights default to 1)
// with l(d) = d^2 / 2 for |d| <= 1 else |d| - 1/2 (Huber, delta 1: the DQN paper's clipped error)
// or l(d) = d^2 (MSE). q_td_loss_backward(grad_loss, q, action, td_error, weights, kind) is
// d loss / d q: zero except grad_loss * weights[b] * l'(td_error[b]) / B at (b, action[b]).
enum class LossKind { kHuber, kMse };
LossKind parse_loss_kind(c10::string_view kind);

void check_q_td_loss_args(const at::Tensor& q, const at::Tensor& action, const at::Tensor& target,
                          const std::optional<at::Tensor>& weights);

}  // namespace pydqn
