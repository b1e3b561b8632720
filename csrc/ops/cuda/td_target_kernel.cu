#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/q_math.h"
#include "ops/td_target.h"

namespace pydqn {
namespace {

// One thread per row; rows hold a handful of actions.
template <typename scalar_t>
__global__ void td_target_kernel(const scalar_t* __restrict__ q_target,
                                 const scalar_t* __restrict__ q_online,
                                 const scalar_t* __restrict__ reward,
                                 const scalar_t* __restrict__ discount, int64_t discount_stride,
                                 const bool* __restrict__ terminated, scalar_t* __restrict__ out,
                                 int64_t batch, int64_t actions) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  const int64_t best = argmax_row(q_online + b * actions, actions);
  const acc_t bootstrap =
      terminated[b] ? acc_t(0) : static_cast<acc_t>(q_target[b * actions + best]);
  out[b] = static_cast<scalar_t>(static_cast<acc_t>(reward[b]) +
                                 static_cast<acc_t>(discount[b * discount_stride]) * bootstrap);
}

at::Tensor td_target_cuda(const at::Tensor& next_q_target, const at::Tensor& reward,
                          const at::Tensor& discount, const at::Tensor& terminated,
                          const std::optional<at::Tensor>& next_q_online) {
  const TdTargetArgs args =
      prepare_td_target_args(next_q_target, reward, discount, terminated, next_q_online);
  const c10::cuda::CUDAGuard guard(args.next_q_target.device());
  at::Tensor out = at::empty({args.batch()}, args.next_q_target.options());
  if (args.batch() == 0) return out;
  constexpr int kThreads = 128;
  const int blocks = static_cast<int>((args.batch() + kThreads - 1) / kThreads);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "td_target", [&] {
    td_target_kernel<scalar_t><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        args.next_q_target.const_data_ptr<scalar_t>(),
        args.next_q_online.const_data_ptr<scalar_t>(), args.reward.const_data_ptr<scalar_t>(),
        args.discount.const_data_ptr<scalar_t>(), args.discount_stride(),
        args.terminated.const_data_ptr<bool>(), out.mutable_data_ptr<scalar_t>(), args.batch(),
        args.actions());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CUDA, m) { m.impl("td_target", &pydqn::td_target_cuda); }
