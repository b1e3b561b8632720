#include "ops/q_td_loss.h"

#include <torch/library.h>

#include "ops/arg_checks.h"

namespace pydqn {

QTdLossArgs prepare_q_td_loss_args(const at::Tensor& q, const at::Tensor& action,
                                   const at::Tensor& target,
                                   const std::optional<at::Tensor>& weights,
                                   c10::string_view kind) {
  TORCH_CHECK_VALUE(kind == "huber" || kind == "mse", "kind: expected 'huber' or 'mse', got '",
                    kind, "'");
  TORCH_CHECK_VALUE(q.dim() == 2 && q.size(0) >= 1 && q.size(1) >= 1,
                    "q: expected shape (B, A) with B, A >= 1, got ", q.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(q.scalar_type()), "q: expected a floating point dtype, got ",
                   q.scalar_type());
  const int64_t batch = q.size(0);
  check_rows(action, "action", batch);
  TORCH_CHECK_TYPE(action.scalar_type() == at::kLong, "action: expected torch.int64, got ",
                   action.scalar_type());
  check_same_device(action, "action", q, "q");
  check_rows(target, "target", batch);
  check_dtype_like(target, "target", q, "q");
  check_same_device(target, "target", q, "q");
  if (weights.has_value()) {
    check_rows(*weights, "weights", batch);
    check_dtype_like(*weights, "weights", q, "q");
    check_same_device(*weights, "weights", q, "q");
  }
  return {q.contiguous(), action.contiguous(), target.contiguous(),
          weights.has_value() ? std::optional(weights->contiguous()) : std::nullopt,
          kind == "huber" ? LossKind::kHuber : LossKind::kMse};
}

}  // namespace pydqn

TORCH_LIBRARY_FRAGMENT(pydqn, m) {
  m.def(
      "q_td_loss(Tensor q, Tensor action, Tensor target, Tensor? weights=None, "
      "str kind=\"huber\") -> (Tensor, Tensor)");
  m.def(
      "q_td_loss_backward(Tensor grad_loss, Tensor q, Tensor action, Tensor td_error, "
      "Tensor? weights, str kind) -> Tensor");
}
