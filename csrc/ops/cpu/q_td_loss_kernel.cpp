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

void check_actions(const QTdLossArgs& args) {
  const int64_t* action = args.action.const_data_ptr<int64_t>();
  for (int64_t b = 0; b < args.batch(); ++b) {
    TORCH_CHECK_INDEX(action[b] >= 0 && action[b] < args.actions(),
                      "action: expected values in [0, ", args.actions(), "), got ", action[b],
                      " at row ", b);
  }
}

std::tuple<at::Tensor, at::Tensor> q_td_loss_cpu(const at::Tensor& q, const at::Tensor& action,
                                                 const at::Tensor& target,
                                                 const std::optional<at::Tensor>& weights,
                                                 c10::string_view kind) {
  const QTdLossArgs args = prepare_q_td_loss_args(q, action, target, weights, kind);
  check_actions(args);
  at::Tensor td_error = at::empty({args.batch()}, args.q.options());
  at::Tensor loss = at::empty({}, args.q.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, args.q.scalar_type(), "q_td_loss", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* qs = args.q.const_data_ptr<scalar_t>();
    const int64_t* a = args.action.const_data_ptr<int64_t>();
    const scalar_t* t = args.target.const_data_ptr<scalar_t>();
    const scalar_t* w =
        args.weights.has_value() ? args.weights->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* td = td_error.mutable_data_ptr<scalar_t>();
    acc_t total = 0;
    for (int64_t b = 0; b < args.batch(); ++b) {
      const scalar_t d = qs[b * args.actions() + a[b]] - t[b];
      td[b] = d;
      const acc_t l = td_loss(static_cast<acc_t>(d), args.kind);
      total += w != nullptr ? static_cast<acc_t>(w[b]) * l : l;
    }
    *loss.mutable_data_ptr<scalar_t>() =
        static_cast<scalar_t>(total / static_cast<acc_t>(args.batch()));
  });
  return {loss, td_error};
}

at::Tensor q_td_loss_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& q,
                                  const at::Tensor& action, const at::Tensor& td_error,
                                  const std::optional<at::Tensor>& weights, c10::string_view kind) {
  const QTdLossArgs args = prepare_q_td_loss_args(q, action, td_error, weights, kind);
  TORCH_CHECK_VALUE(grad_loss.numel() == 1, "grad_loss: expected one value, got shape ",
                    grad_loss.sizes());
  check_actions(args);
  at::Tensor grad_q = at::zeros({args.batch(), args.actions()}, args.q.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, args.q.scalar_type(), "q_td_loss_backward", [&] {
        using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
        const acc_t scale =
            grad_loss.to(args.q.scalar_type()).contiguous().const_data_ptr<scalar_t>()[0] /
            static_cast<acc_t>(args.batch());
        const int64_t* a = args.action.const_data_ptr<int64_t>();
        const scalar_t* td = args.target.const_data_ptr<scalar_t>();
        const scalar_t* w =
            args.weights.has_value() ? args.weights->const_data_ptr<scalar_t>() : nullptr;
        scalar_t* g = grad_q.mutable_data_ptr<scalar_t>();
        for (int64_t b = 0; b < args.batch(); ++b) {
          const acc_t slope = td_loss_slope(static_cast<acc_t>(td[b]), args.kind);
          g[b * args.actions() + a[b]] = static_cast<scalar_t>(
              scale * (w != nullptr ? static_cast<acc_t>(w[b]) * slope : slope));
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
