#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "replay/batch.h"
#include "replay/frame_store.h"
#include "replay/mirror_kernels.h"
#include "replay/transition_ring.h"

namespace pydqn {

// A copy of a ReplayBuffer's frames and transitions in the memory of a device, laid out for one
// sampling kernel: the buffer does its bookkeeping on the host (streams, windows, frame
// references) and then sync()s the frames and slots an add() changed; sample_into() draws slots
// and gathers whole batches on the device, with no host synchronization, so it can be captured in
// a CUDA graph. All its work is ordered on the device's current stream.
//
//   host:    FrameStore chunk c ──sync()──> device: chunk_address[c] ──> frames of chunk c
//            TransitionRing slot s ──sync()──> device: slot tables row s (frame ids, fields)
//   device:  counters [stored, draws, seed] ──sample_into()──> draw slots ──> gather 2k frames
//
// On the CPU the same tables and kernels run on host memory: the twin that tests check the CUDA
// path against.
class TransitionMirror {
 public:
  TransitionMirror(c10::Device device, int64_t capacity, int32_t frame_stack, int64_t frame_bytes,
                   int32_t chunk_frames, int32_t max_chunks, uint64_t seed);
  ~TransitionMirror();
  TransitionMirror(const TransitionMirror&) = delete;
  TransitionMirror& operator=(const TransitionMirror&) = delete;

  c10::Device device() const { return device_; }
  // Allocates the device memory of the chunks holding `frame_ids`, ahead of sync(): the one step
  // that can fail (out of device memory) runs before the buffer commits anything.
  void reserve(const FrameStore& store, std::span<const int32_t> frame_ids);
  // Copies the frames `frame_ids` from `store` and the slots of transitions `seqs` as `ring` holds
  // them now (with n-step windows discounted by `gamma`), then sets the stored count to `stored`.
  void sync(const FrameStore& store, std::span<const int32_t> frame_ids,
            const TransitionRing& ring, std::span<const int64_t> seqs, float gamma,
            int64_t stored);
  // Fills `out` (tensors on the mirror's device) with rows drawn by the device-side generator.
  void sample_into(const BatchTensors& out);
  // Fills `out` with the transitions in `slots` (int64, any device).
  void get_into(const BatchTensors& out, const at::Tensor& slots);
  // Host tensors (pinned for CUDA) for `rows` slots (int64) and weights (float32) drawn on the
  // host, which gather_rows() then copies asynchronously and gathers with.
  std::pair<at::Tensor, at::Tensor> staged_rows(int64_t rows) const;
  void gather_rows(const BatchTensors& out, const at::Tensor& slots, const at::Tensor& weights);
  // The generator's position: draws waits for the device.
  uint64_t draws() const;
  void restore_rng(uint64_t seed, uint64_t draws);
  // Device bytes allocated; safe to read while another thread calls the mirror.
  int64_t nbytes() const { return nbytes_.load(std::memory_order_relaxed); }

 private:
  MirrorTables tables();
  void copy(const FrameStore& store, std::span<const int32_t> frame_ids,
            const TransitionRing& ring, std::span<const int64_t> seqs, float gamma, int64_t stored);
  // Gathers the rows of `slots` (on the device), or draws them when it is undefined; weights of
  // `weights` (on the device), or 1 when it is undefined.
  void gather(const BatchTensors& out, const at::Tensor& slots, const at::Tensor& weights);
  // Device memory for chunk `chunk`, allocated with its neighbours in blocks of chunks_per_block_.
  int64_t chunk_address(int32_t chunk);
  void apply(const MirrorUpdate& update);
  // Runs `work`, which queues device work on the current stream, ordered after the previous
  // call's (CudaStreamOrder); `capturable`: whether it may run inside a CUDA graph capture.
  template <typename Work>
  void ordered(const char* call, bool capturable, Work&& work) const;

  const c10::Device device_;
  const int32_t frame_stack_;
  const int64_t frame_bytes_;
  const int32_t chunk_frames_;
  const int32_t chunk_shift_;
  const int64_t chunks_per_block_;
  std::vector<at::Tensor> blocks_;
  std::vector<int64_t> host_chunk_address_;  // 0 until the chunk's memory is allocated
  std::vector<bool> chunk_published_;        // its address was sent to the device's table
  at::Tensor chunk_address_, obs_ids_, next_ids_, action_, reward_, discount_, flags_,
      transition_id_, counters_;
  std::atomic<int64_t> nbytes_{0};
  mutable CudaStreamOrder order_;
};

// One call on a buffer with a TransitionMirror, which takes one at a time: its host-side staging
// and the order of its device work assume calls do not overlap. Overlapping calls get an error,
// never a corrupted mirror. A no-op without a mirror (nullptr: the buffer samples on the host).
class MirrorCall {
 public:
  MirrorCall(const TransitionMirror* mirror, std::atomic<bool>& in_use)
      : in_use_(mirror != nullptr ? &in_use : nullptr) {
    if (in_use_ == nullptr) return;
    TORCH_CHECK(!in_use_->exchange(true, std::memory_order_acquire),
                      "a ReplayBuffer that samples on ", mirror->device(),
                      " takes one call at a time: add(), sample(), get(), state_dict() and "
                      "load_state_dict() overlapped from two threads");
  }
  ~MirrorCall() {
    if (in_use_ != nullptr) in_use_->store(false, std::memory_order_release);
  }
  MirrorCall(const MirrorCall&) = delete;
  MirrorCall& operator=(const MirrorCall&) = delete;

 private:
  std::atomic<bool>* in_use_;
};

}  // namespace pydqn
