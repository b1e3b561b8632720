#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ops/q_math.h"
#include "ops/td_target.h"

namespace pydqn {
namespace {

at::Tensor td_target_cpu(const at::Tensor& next_q_target_in, const at::Tensor& reward_in,
                         const at::Tensor& discount_in, const at::Tensor& terminated_in,
                         const std::optional<at::Tensor>& next_q_online_in) {
  check_td_target_args(next_q_target_in, reward_in, discount_in, terminated_in, next_q_online_in);
  const at::Tensor next_q_target = next_q_target_in.contiguous();
  const at::Tensor reward = reward_in.contiguous();
  const at::Tensor discount = discount_in.contiguous();
  const at::Tensor terminated = terminated_in.contiguous();
  const std::optional<at::Tensor> next_q_online =
      next_q_online_in.has_value() ? std::optional(next_q_online_in->contiguous()) : std::nullopt;
  const int64_t batch = next_q_target.size(0);
  const int64_t actions = next_q_target.size(1);
  at::Tensor out = at::empty({batch}, next_q_target.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, next_q_target.scalar_type(), "td_target", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* q_target = next_q_target.const_data_ptr<scalar_t>();
    const scalar_t* q_online =
        next_q_online.has_value() ? next_q_online->const_data_ptr<scalar_t>() : q_target;
    const scalar_t* r = reward.const_data_ptr<scalar_t>();
    const scalar_t* d = discount.const_data_ptr<scalar_t>();
    const int64_t d_stride = discount.numel() == 1 ? 0 : 1;
    const bool* done = terminated.const_data_ptr<bool>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t best = argmax_row(q_online + b * actions, actions);
      const acc_t bootstrap = done[b] ? acc_t(0) : static_cast<acc_t>(q_target[b * actions + best]);
      o[b] = static_cast<scalar_t>(static_cast<acc_t>(r[b]) +
                                   static_cast<acc_t>(d[b * d_stride]) * bootstrap);
    }
  });
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CPU, m) { m.impl("td_target", &pydqn::td_target_cpu); }
