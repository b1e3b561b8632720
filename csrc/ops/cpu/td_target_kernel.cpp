#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "ops/q_math.h"
#include "ops/td_target.h"

namespace pydqn {
namespace {

at::Tensor td_target_cpu(const at::Tensor& next_q_target, const at::Tensor& reward,
                         const at::Tensor& discount, const at::Tensor& terminated,
                         const std::optional<at::Tensor>& next_q_online) {
  const TdTargetArgs args =
      prepare_td_target_args(next_q_target, reward, discount, terminated, next_q_online);
  const int64_t actions = args.actions();
  at::Tensor out = at::empty({args.batch()}, args.next_q_target.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "td_target", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/false>;
    const scalar_t* q_target = args.next_q_target.const_data_ptr<scalar_t>();
    const scalar_t* q_online = args.next_q_online.const_data_ptr<scalar_t>();
    const scalar_t* r = args.reward.const_data_ptr<scalar_t>();
    const scalar_t* d = args.discount.const_data_ptr<scalar_t>();
    const bool* done = args.terminated.const_data_ptr<bool>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    for (int64_t b = 0; b < args.batch(); ++b) {
      const int64_t best = argmax_row(q_online + b * actions, actions);
      const acc_t bootstrap = done[b] ? acc_t(0) : static_cast<acc_t>(q_target[b * actions + best]);
      o[b] = static_cast<scalar_t>(static_cast<acc_t>(r[b]) +
                                   static_cast<acc_t>(d[b * args.discount_stride()]) * bootstrap);
    }
  });
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CPU, m) { m.impl("td_target", &pydqn::td_target_cpu); }
