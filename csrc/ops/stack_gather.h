#pragma once

#include <ATen/core/Tensor.h>

namespace pydqn {

// stack_gather(frames, frame_index) -> (B, k, *frame_shape): out[b, j] = frames[frame_index[b, j]].
// Checks everything but the index values (the CPU kernel checks those; the CUDA one asserts).
void check_stack_gather_args(const at::Tensor& frames, const at::Tensor& frame_index);

}  // namespace pydqn
