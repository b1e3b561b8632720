#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "ops/stack_gather.h"

namespace pydqn {
namespace {

at::Tensor stack_gather_cpu(const at::Tensor& frames_in, const at::Tensor& frame_index_in) {
  check_stack_gather_args(frames_in, frame_index_in);
  const at::Tensor frames = frames_in.contiguous();
  const at::Tensor frame_index = frame_index_in.contiguous();
  const int64_t count = frames.size(0);
  const int64_t* index = frame_index.const_data_ptr<int64_t>();
  const int64_t rows = frame_index.numel();
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK_INDEX(index[i] >= 0 && index[i] < count, "frame_index: expected values in [0, ",
                      count, "), got ", index[i], " at flat position ", i);
  }
  std::vector<int64_t> sizes{frame_index.size(0), frame_index.size(1)};
  sizes.insert(sizes.end(), frames.sizes().begin() + 1, frames.sizes().end());
  at::Tensor out = at::empty(sizes, frames.options());
  const int64_t frame_bytes = static_cast<int64_t>(frames.element_size()) *
                              (count > 0 ? frames.numel() / count : 0);
  const auto* source = static_cast<const std::byte*>(frames.const_data_ptr());
  auto* target = static_cast<std::byte*>(out.mutable_data_ptr());
  // Each frame is a few KB: parallel chunks of frames, not of bytes.
  at::parallel_for(0, rows, /*grain_size=*/64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      std::memcpy(target + i * frame_bytes, source + index[i] * frame_bytes, frame_bytes);
    }
  });
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CPU, m) { m.impl("stack_gather", &pydqn::stack_gather_cpu); }
