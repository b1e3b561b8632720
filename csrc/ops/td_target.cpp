#include "ops/td_target.h"

#include <torch/library.h>

#include "ops/arg_checks.h"

namespace pydqn {

TdTargetArgs prepare_td_target_args(const at::Tensor& next_q_target, const at::Tensor& reward,
                                    const at::Tensor& discount, const at::Tensor& terminated,
                                    const std::optional<at::Tensor>& next_q_online) {
  TORCH_CHECK_VALUE(next_q_target.dim() == 2 && next_q_target.size(1) >= 1,
                    "next_q_target: expected shape (B, A) with A >= 1, got ",
                    next_q_target.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(next_q_target.scalar_type()),
                   "next_q_target: expected a floating point dtype, got ",
                   next_q_target.scalar_type());
  const int64_t batch = next_q_target.size(0);
  check_rows(reward, "reward", batch);
  check_dtype_like(reward, "reward", next_q_target, "next_q_target");
  check_same_device(reward, "reward", next_q_target, "next_q_target");
  TORCH_CHECK_VALUE(discount.numel() == 1 || (discount.dim() == 1 && discount.size(0) == batch),
                    "discount: expected one value or shape (", batch, ",), got ", discount.sizes());
  check_dtype_like(discount, "discount", next_q_target, "next_q_target");
  check_same_device(discount, "discount", next_q_target, "next_q_target");
  check_rows(terminated, "terminated", batch);
  TORCH_CHECK_TYPE(terminated.scalar_type() == at::kBool, "terminated: expected torch.bool, got ",
                   terminated.scalar_type());
  check_same_device(terminated, "terminated", next_q_target, "next_q_target");
  if (next_q_online.has_value()) {
    TORCH_CHECK_VALUE(next_q_online->sizes() == next_q_target.sizes(),
                      "next_q_online: expected shape ", next_q_target.sizes(),
                      " like next_q_target, got ", next_q_online->sizes());
    check_dtype_like(*next_q_online, "next_q_online", next_q_target, "next_q_target");
    check_same_device(*next_q_online, "next_q_online", next_q_target, "next_q_target");
  }
  const at::Tensor q_target = next_q_target.contiguous();
  return {q_target, reward.contiguous(), discount.contiguous(), terminated.contiguous(),
          next_q_online.has_value() ? next_q_online->contiguous() : q_target};
}

}  // namespace pydqn

TORCH_LIBRARY_FRAGMENT(pydqn, m) {
  m.def(
      "td_target(Tensor next_q_target, Tensor reward, Tensor discount, Tensor terminated, "
      "Tensor? next_q_online=None) -> Tensor");
}
