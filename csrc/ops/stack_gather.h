#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace pydqn {

// stack_gather(frames, frame_index) -> (B, k, *frame_shape): out[b, j] = frames[frame_index[b, j]].
// The arguments checked (all but the index values: the CPU kernel checks those, the CUDA one
// asserts) and made contiguous, with the output's sizes, for the kernels of every device.
struct StackGatherArgs {
  at::Tensor frames, frame_index;
  std::vector<int64_t> out_sizes;  // (B, k, *frame_shape)
  int64_t frame_bytes;
};
StackGatherArgs prepare_stack_gather_args(const at::Tensor& frames, const at::Tensor& frame_index);

}  // namespace pydqn
