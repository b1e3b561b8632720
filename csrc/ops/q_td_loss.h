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

// The arguments of q_td_loss, checked and made contiguous, for the kernels of every device (the
// backward passes its TD errors as `target`). The values of `action` are the kernels' to check.
struct QTdLossArgs {
  at::Tensor q, action, target;
  std::optional<at::Tensor> weights;
  LossKind kind;
  int64_t batch() const { return q.size(0); }
  int64_t actions() const { return q.size(1); }
};
QTdLossArgs prepare_q_td_loss_args(const at::Tensor& q, const at::Tensor& action,
                                   const at::Tensor& target,
                                   const std::optional<at::Tensor>& weights, c10::string_view kind);

}  // namespace pydqn
