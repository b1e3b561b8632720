#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/stack_gather.h"

namespace pydqn {
namespace {

// One block per output frame (grid-stride), its threads copying the frame in `Word`s.
template <typename Word>
__global__ void stack_gather_kernel(const Word* __restrict__ frames,
                                    const int64_t* __restrict__ frame_index,
                                    Word* __restrict__ out, int64_t rows, int64_t frame_words,
                                    int64_t count) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t frame = frame_index[row];
    CUDA_KERNEL_ASSERT(frame >= 0 && frame < count && "frame_index out of range");
    const Word* source = frames + frame * frame_words;
    Word* target = out + row * frame_words;
    for (int64_t w = threadIdx.x; w < frame_words; w += blockDim.x) target[w] = source[w];
  }
}

template <typename Word>
void launch(const at::Tensor& frames, const at::Tensor& frame_index, at::Tensor& out,
            int64_t frame_bytes) {
  const int64_t rows = frame_index.numel();
  const int64_t words = frame_bytes / static_cast<int64_t>(sizeof(Word));
  const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, words)));
  const int blocks = static_cast<int>(std::min<int64_t>(rows, 65535));
  stack_gather_kernel<Word><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      static_cast<const Word*>(frames.const_data_ptr()), frame_index.const_data_ptr<int64_t>(),
      static_cast<Word*>(out.mutable_data_ptr()), rows, words, frames.size(0));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor stack_gather_cuda(const at::Tensor& frames, const at::Tensor& frame_index) {
  const StackGatherArgs args = prepare_stack_gather_args(frames, frame_index);
  const c10::cuda::CUDAGuard guard(args.frames.device());
  at::Tensor out = at::empty(args.out_sizes, args.frames.options());
  const int64_t bytes = args.frame_bytes;
  if (args.frame_index.numel() == 0 || bytes == 0) return out;
  // The allocator aligns tensors to 256 bytes, so frame-sized strides keep the widest word that
  // divides the frame aligned.
  if (bytes % 16 == 0) {
    launch<uint4>(args.frames, args.frame_index, out, bytes);
  } else if (bytes % 4 == 0) {
    launch<uint32_t>(args.frames, args.frame_index, out, bytes);
  } else {
    launch<uint8_t>(args.frames, args.frame_index, out, bytes);
  }
  return out;
}

}  // namespace
}  // namespace pydqn

TORCH_LIBRARY_IMPL(pydqn, CUDA, m) { m.impl("stack_gather", &pydqn::stack_gather_cuda); }
