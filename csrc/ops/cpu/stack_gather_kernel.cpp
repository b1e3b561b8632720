#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstring>

#include "ops/stack_gather.h"

namespace pydqn {
namespace {

at::Tensor stack_gather_cpu(const at::Tensor& frames, const at::Tensor& frame_index) {
  const StackGatherArgs args = prepare_stack_gather_args(frames, frame_index);
  const int64_t count = args.frames.size(0);
  const int64_t* index = args.frame_index.const_data_ptr<int64_t>();
  const int64_t rows = args.frame_index.numel();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK_INDEX(index[i] >= 0 && index[i] < count, "frame_index: expected values in [0, ",
                      count, "), got ", index[i], " at flat position ", i);
  }
  at::Tensor out = at::empty(args.out_sizes, args.frames.options());
  const int64_t bytes = args.frame_bytes;
  const auto* source = static_cast<const std::byte*>(args.frames.const_data_ptr());
  auto* target = static_cast<std::byte*>(out.mutable_data_ptr());
  // Each frame is a few KB: parallel chunks of frames, not of bytes.
  at::parallel_for(0, rows, /*grain_size=*/64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      std::memcpy(target + i * bytes, source + index[i] * bytes, bytes);
    }
  });
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CPU, m) { m.impl("stack_gather", &pydqn::stack_gather_cpu); }
