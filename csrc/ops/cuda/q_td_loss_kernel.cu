#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "ops/q_math.h"
#include "ops/q_td_loss.h"

namespace pydqn {
namespace {

constexpr int kLossThreads = 512;

// The whole forward in one block: each thread gathers its rows' Q(s, a), writes their TD errors
// and sums their weighted losses; a shared-memory tree then reduces the sums in a fixed order, so
// the loss is deterministic.
template <typename scalar_t>
__global__ void q_td_loss_kernel(const scalar_t* __restrict__ q, const int64_t* __restrict__ action,
                                 const scalar_t* __restrict__ target,
                                 const scalar_t* __restrict__ weights,
                                 scalar_t* __restrict__ td_error, scalar_t* __restrict__ loss,
                                 int64_t batch, int64_t actions, LossKind kind) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  __shared__ acc_t partial[kLossThreads];
  acc_t sum = 0;
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    const int64_t a = action[b];
    CUDA_KERNEL_ASSERT(a >= 0 && a < actions && "action out of range");
    const scalar_t d = q[b * actions + a] - target[b];
    td_error[b] = d;
    const acc_t l = td_loss(static_cast<acc_t>(d), kind);
    sum += weights != nullptr ? static_cast<acc_t>(weights[b]) * l : l;
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *loss = static_cast<scalar_t>(partial[0] / static_cast<acc_t>(batch));
}

// Scatters d loss / d Q(s, a) into the zeroed gradient; grad_loss is read on the device, so the
// host never waits.
template <typename scalar_t>
__global__ void q_td_loss_backward_kernel(const scalar_t* __restrict__ grad_loss,
                                          const int64_t* __restrict__ action,
                                          const scalar_t* __restrict__ td_error,
                                          const scalar_t* __restrict__ weights,
                                          scalar_t* __restrict__ grad_q, int64_t batch,
                                          int64_t actions, LossKind kind) {
  using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  const int64_t a = action[b];
  CUDA_KERNEL_ASSERT(a >= 0 && a < actions && "action out of range");
  const acc_t scale = static_cast<acc_t>(*grad_loss) / static_cast<acc_t>(batch);
  const acc_t slope = td_loss_slope(static_cast<acc_t>(td_error[b]), kind);
  grad_q[b * actions + a] = static_cast<scalar_t>(
      scale * (weights != nullptr ? static_cast<acc_t>(weights[b]) * slope : slope));
}

std::tuple<at::Tensor, at::Tensor> q_td_loss_cuda(const at::Tensor& q, const at::Tensor& action,
                                                  const at::Tensor& target,
                                                  const std::optional<at::Tensor>& weights,
                                                  c10::string_view kind) {
  const QTdLossArgs args = prepare_q_td_loss_args(q, action, target, weights, kind);
  const c10::cuda::CUDAGuard guard(args.q.device());
  at::Tensor td_error = at::empty({args.batch()}, args.q.options());
  at::Tensor loss = at::empty({}, args.q.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, args.q.scalar_type(), "q_td_loss", [&] {
    q_td_loss_kernel<scalar_t><<<1, kLossThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        args.q.const_data_ptr<scalar_t>(), args.action.const_data_ptr<int64_t>(),
        args.target.const_data_ptr<scalar_t>(),
        args.weights.has_value() ? args.weights->const_data_ptr<scalar_t>() : nullptr,
        td_error.mutable_data_ptr<scalar_t>(), loss.mutable_data_ptr<scalar_t>(), args.batch(),
        args.actions(), args.kind);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {loss, td_error};
}

at::Tensor q_td_loss_backward_cuda(const at::Tensor& grad_loss_in, const at::Tensor& q,
                                   const at::Tensor& action, const at::Tensor& td_error,
                                   const std::optional<at::Tensor>& weights,
                                   c10::string_view kind) {
  const QTdLossArgs args = prepare_q_td_loss_args(q, action, td_error, weights, kind);
  TORCH_CHECK_VALUE(grad_loss_in.numel() == 1, "grad_loss: expected one value, got shape ",
                    grad_loss_in.sizes());
  const c10::cuda::CUDAGuard guard(args.q.device());
  const at::Tensor grad_loss = grad_loss_in.to(args.q.scalar_type()).contiguous();
  at::Tensor grad_q = at::zeros({args.batch(), args.actions()}, args.q.options());
  constexpr int kThreads = 128;
  const int blocks = static_cast<int>((args.batch() + kThreads - 1) / kThreads);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, args.q.scalar_type(), "q_td_loss_backward", [&] {
        q_td_loss_backward_kernel<scalar_t>
            <<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
                grad_loss.const_data_ptr<scalar_t>(), args.action.const_data_ptr<int64_t>(),
                args.target.const_data_ptr<scalar_t>(),
                args.weights.has_value() ? args.weights->const_data_ptr<scalar_t>() : nullptr,
                grad_q.mutable_data_ptr<scalar_t>(), args.batch(), args.actions(), args.kind);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad_q;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CUDA, m) {
  m.impl("q_td_loss", &pydqn::q_td_loss_cuda);
  m.impl("q_td_loss_backward", &pydqn::q_td_loss_backward_cuda);
}
