#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/word_copy.cuh"
#include "ops/stack_gather.h"

namespace pydqn {
namespace {

// One block per output frame (grid-stride), its threads copying the frame in `Word`s.
template <typename Word>
__global__ void stack_gather_kernel(const std::byte* __restrict__ frames,
                                    const int64_t* __restrict__ frame_index,
                                    std::byte* __restrict__ out, int64_t rows, int64_t frame_bytes,
                                    int64_t count) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t frame = frame_index[row];
    CUDA_KERNEL_ASSERT(frame >= 0 && frame < count && "frame_index out of range");
    copy_words<Word>(out + row * frame_bytes, frames + frame * frame_bytes, frame_bytes);
  }
}

at::Tensor stack_gather_cuda(const at::Tensor& frames, const at::Tensor& frame_index) {
  const StackGatherArgs args = prepare_stack_gather_args(frames, frame_index);
  const c10::cuda::CUDAGuard guard(args.frames.device());
  at::Tensor out = at::empty(args.out_sizes, args.frames.options());
  const int64_t bytes = args.frame_bytes;
  if (args.frame_index.numel() == 0 || bytes == 0) return out;
  const int64_t rows = args.frame_index.numel();
  const int blocks = static_cast<int>(std::min<int64_t>(rows, 65535));
  const auto* source = static_cast<const std::byte*>(args.frames.const_data_ptr());
  auto* target = static_cast<std::byte*>(out.mutable_data_ptr());
  with_widest_word(bytes, {source, target}, [&](auto word) {
    const int64_t words = bytes / static_cast<int64_t>(sizeof(word));
    const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, words)));
    stack_gather_kernel<decltype(word)><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
        source, args.frame_index.const_data_ptr<int64_t>(), target, rows, bytes,
        args.frames.size(0));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CUDA, m) { m.impl("stack_gather", &pydqn::stack_gather_cuda); }
