#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>

#include "ops/q_math.h"
#include "ops/q_td_loss.h"

namespace pydqn {
namespace {

void check_actions(const int64_t* action, int64_t batch, int64_t actions) {
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK_INDEX(action[b] >= 0 && action[b] < actions, "action: expected values in [0, ",
                      actions, "), got ", action[b], " at row ", b);
  }
}

std::tuple<at::Tensor, at::Tensor> q_td_loss_cpu(const at::Tensor& q_in, const at::Tensor& action_in,
                                                 const at::Tensor& target_in,
                                                 const std::optional<at::Tensor>& weights_in,
                                                 c10::string_view kind_name) {
  const LossKind kind = parse_loss_kind(kind_name);
  check_q_td_loss_args(q_in, action_in, target_in, weights_in);
  const at::Tensor q = q_in.contiguous();
  const at::Tensor action = action_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const std::optional<at::Tensor> weights =
      weights_in.has_value() ? std::optional(weights_in->contiguous()) : std::nullopt;
  const int64_t batch = q.size(0);
  const int64_t actions = q.size(1);
  check_actions(action.const_data_ptr<int64_t>(), batch, actions);
  at::Tensor td_error = at::empty({batch}, q.options());
  at::Tensor loss = at::empty({}, q.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "q_td_loss", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* qs = q.const_data_ptr<scalar_t>();
    const int64_t* a = action.const_data_ptr<int64_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    const scalar_t* w = weights.has_value() ? weights->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* td = td_error.mutable_data_ptr<scalar_t>();
    acc_t total = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const scalar_t d = qs[b * actions + a[b]] - t[b];
      td[b] = d;
      const acc_t l = td_loss(static_cast<acc_t>(d), kind);
      total += w != nullptr ? static_cast<acc_t>(w[b]) * l : l;
    }
    *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(total / static_cast<acc_t>(batch));
  });
  return {loss, td_error};
}

at::Tensor q_td_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& q_in,
                                  const at::Tensor& action_in, const at::Tensor& td_error_in,
                                  const std::optional<at::Tensor>& weights_in,
                                  c10::string_view kind_name) {
  const LossKind kind = parse_loss_kind(kind_name);
  check_q_td_loss_args(q_in, action_in, td_error_in, weights_in);
  TORCH_CHECK_VALUE(grad_loss.numel() == 1, "grad_loss: expected one value, got shape ",
                    grad_loss.sizes());
  const at::Tensor action = action_in.contiguous();
  const at::Tensor td_error = td_error_in.contiguous();
  const std::optional<at::Tensor> weights =
      weights_in.has_value() ? std::optional(weights_in->contiguous()) : std::nullopt;
  const int64_t batch = q_in.size(0);
  const int64_t actions = q_in.size(1);
  check_actions(action.const_data_ptr<int64_t>(), batch, actions);
  at::Tensor grad_q = at::zeros({batch, actions}, q_in.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q_in.scalar_type(), "q_td_loss_backward", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const acc_t scale = grad_loss.to(q_in.scalar_type()).contiguous().const_data_ptr<scalar_t>()[0] /
                        static_cast<acc_t>(batch);
    const int64_t* a = action.const_data_ptr<int64_t>();
    const scalar_t* td = td_error.const_data_ptr<scalar_t>();
    const scalar_t* w = weights.has_value() ? weights->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* g = grad_q.mutable_data_ptr<scalar_t>();
    for (int64_t b = 0; b < batch; ++b) {
      const acc_t slope = td_loss_slope(static_cast<acc_t>(td[b]), kind);
      g[b * actions + a[b]] =
          static_cast<scalar_t>(scale * (w != nullptr ? static_cast<acc_t>(w[b]) * slope : slope));
    }
  });
  return grad_q;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CPU, m) {
  m.impl("q_td_loss", &pydqn::q_td_loss_cpu);
  m.impl("q_td_loss_backward", &pydqn::q_td_loss_backward_cpu);
}
