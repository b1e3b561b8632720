#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>

#include "cuda/word_copy.cuh"
#include "replay/mirror_kernels.h"

namespace pydqn {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

int blocks_for(int64_t items) {
  return static_cast<int>(std::clamp<int64_t>(items, 1, kMaxBlocks));
}

// Blocks [0, frames) copy one frame each (grid-stride); block 0 then writes the slot images and
// chunk addresses as well.
template <typename Word>
__global__ void apply_kernel(MirrorTables t, MirrorUpdate u) {
  for (int64_t block = blockIdx.x; block < u.frames; block += gridDim.x) {
    copy_words<Word>(reinterpret_cast<std::byte*>(u.frame_address[block]),
                     u.frame_data + block * t.frame_bytes, t.frame_bytes);
  }
  if (blockIdx.x != 0) return;
  auto* chunk_address = const_cast<int64_t*>(t.chunk_address);
  for (int64_t i = threadIdx.x; i < u.chunks; i += blockDim.x) {
    chunk_address[u.chunk_index[i]] = u.new_address[i];
  }
  const int64_t k = t.frame_stack;
  for (int64_t i = threadIdx.x; i < u.rows; i += blockDim.x) {
    const int64_t slot = u.slots[i];
    for (int64_t f = 0; f < k; ++f) {
      t.obs_ids[slot * k + f] = u.obs_ids[i * k + f];
      t.next_ids[slot * k + f] = u.next_ids[i * k + f];
    }
    t.action[slot] = u.action[i];
    t.reward[slot] = u.reward[i];
    t.discount[slot] = u.discount[i];
    t.flags[slot] = u.flags[i];
    t.transition_id[slot] = u.transition_id[i];
  }
  if (threadIdx.x == 0) t.counters[0] = u.stored;
}

// One block per row (grid-stride): thread 0 picks the slot, then the block copies its 2k frames.
template <typename Word>
__global__ void gather_kernel(MirrorTables t, BatchPointers out, int64_t rows, const int64_t* slots,
                              const float* weights) {
  __shared__ int64_t picked;
  const int64_t k = t.frame_stack;
  const int64_t row_bytes = k * t.frame_bytes;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    if (threadIdx.x == 0) {
      picked = slots != nullptr ? slots[row] : t.draw_slot(row);
      CUDA_KERNEL_ASSERT(picked >= 0 && "sample: no stored transition is sampleable");
    }
    __syncthreads();
    const int64_t slot = picked < 0 ? 0 : picked;
    for (int64_t f = 0; f < k; ++f) {
      copy_words<Word>(out.obs + row * row_bytes + f * t.frame_bytes,
                       t.frame(t.obs_ids[slot * k + f]), t.frame_bytes);
      copy_words<Word>(out.next_obs + row * row_bytes + f * t.frame_bytes,
                       t.frame(t.next_ids[slot * k + f]), t.frame_bytes);
    }
    if (threadIdx.x == 0) t.write_fields(out, row, slot, weights);
    __syncthreads();  // `picked` is rewritten by the next row
  }
}

template <typename Word>
__global__ void copy_frames_kernel(MirrorTables t, const int32_t* ids, int64_t count,
                                   std::byte* out) {
  for (int64_t i = blockIdx.x; i < count; i += gridDim.x) {
    copy_words<Word>(out + i * t.frame_bytes, t.frame(ids[i]), t.frame_bytes);
  }
}

// After the gather, so that every row read the same draw counter.
__global__ void advance_draws_kernel(int64_t* counters, int64_t rows) {
  counters[1] = MirrorTables::advanced_draws(counters[1], rows);
}

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace

void copy_frames_cuda(const MirrorTables& t, const int32_t* ids, int64_t count, std::byte* out) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // Frames sit at chunk bases (block bases, the caching allocator's, 512-byte aligned) plus
  // multiples of frame_bytes.
  with_widest_word(t.frame_bytes, {out}, [&](auto word) {
    copy_frames_kernel<decltype(word)>
        <<<blocks_for(count), kThreads, 0, stream>>>(t, ids, count, out);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void begin_cuda_call(CudaStreamOrder& order, bool capturable, const char* call) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  if (capturing(stream)) {
    TORCH_CHECK(capturable, call, " cannot be captured in a CUDA graph (its copy from host ",
                "memory would replay stale data); only sample() can");
    return;
  }
  if (order.last_recorded && order.last_stream != static_cast<void*>(stream)) {
    C10_CUDA_CHECK(cudaStreamWaitEvent(stream, static_cast<cudaEvent_t>(order.event), 0));
  }
  order.last_stream = stream;
  order.last_recorded = false;
}

void end_cuda_call(CudaStreamOrder& order) {
  if (capturing(at::cuda::getCurrentCUDAStream())) return;
  if (order.event == nullptr) {
    cudaEvent_t event;
    C10_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    order.event = event;
  }
  C10_CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(order.event), at::cuda::getCurrentCUDAStream()));
  order.last_recorded = true;
}

void destroy_cuda_stream_order(CudaStreamOrder& order) {
  if (order.event != nullptr)
    C10_CUDA_IGNORE_ERROR(cudaEventDestroy(static_cast<cudaEvent_t>(order.event)));
  order.event = nullptr;
}

void apply_mirror_update_cuda(const MirrorTables& t, const MirrorUpdate& u) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // Frame addresses are block bases (the caching allocator's, 512-byte aligned) plus multiples of
  // frame_bytes, and the packed frame data starts 16-byte aligned: a word that divides
  // frame_bytes and the data's address divides every address the copies touch.
  with_widest_word(t.frame_bytes, {u.frame_data}, [&](auto word) {
    apply_kernel<decltype(word)><<<blocks_for(u.frames), kThreads, 0, stream>>>(t, u);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void gather_transitions_cuda(const MirrorTables& t, const BatchPointers& out, int64_t rows,
                             const int64_t* slots, const float* weights) {
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  with_widest_word(t.frame_bytes, {out.obs, out.next_obs}, [&](auto word) {
    gather_kernel<decltype(word)>
        <<<blocks_for(rows), kThreads, 0, stream>>>(t, out, rows, slots, weights);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (slots == nullptr) {
    advance_draws_kernel<<<1, 1, 0, stream>>>(t.counters, rows);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace pydqn
