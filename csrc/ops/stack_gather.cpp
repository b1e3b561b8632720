#include "ops/stack_gather.h"

#include <torch/library.h>

#include "ops/arg_checks.h"

namespace pydqn {

StackGatherArgs prepare_stack_gather_args(const at::Tensor& frames, const at::Tensor& frame_index) {
  TORCH_CHECK_VALUE(frames.dim() >= 1,
                    "frames: expected shape (frames, *frame_shape), got a scalar");
  TORCH_CHECK_TYPE(frame_index.scalar_type() == at::kLong,
                   "frame_index: expected torch.int64, got ", frame_index.scalar_type());
  TORCH_CHECK_VALUE(frame_index.dim() == 2, "frame_index: expected shape (B, k), got ",
                    frame_index.sizes());
  check_same_device(frame_index, "frame_index", frames, "frames");
  std::vector<int64_t> sizes{frame_index.size(0), frame_index.size(1)};
  sizes.insert(sizes.end(), frames.sizes().begin() + 1, frames.sizes().end());
  const int64_t count = frames.size(0);
  // On the host, for every device: the CUDA kernel's range check is a device assert, which would
  // leave the CUDA context unusable, and with no frame there is nothing it could read.
  TORCH_CHECK_INDEX(count > 0 || frame_index.numel() == 0,
                    "frame_index: expected no index into frames that hold no frame, got ",
                    frame_index.numel(), " indices");
  const int64_t frame_bytes =
      static_cast<int64_t>(frames.element_size()) * (count > 0 ? frames.numel() / count : 0);
  return {frames.contiguous(), frame_index.contiguous(), std::move(sizes), frame_bytes};
}

}  // namespace pydqn

TORCH_LIBRARY_FRAGMENT(pydqn, m) {
  m.def("stack_gather(Tensor frames, Tensor frame_index) -> Tensor");
}
