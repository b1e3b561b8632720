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

// A frame for the mirror to copy: its id in the FrameStore, and where its bytes are meanwhile.
struct FrameSource {
  int32_t id;
  const std::byte* bytes;
};

// Byte offsets of the sections of one packed MirrorUpdate, each 16-byte aligned.
struct PackedLayout {
  PackedLayout(int64_t frames, int64_t frame_bytes, int64_t chunks, int64_t rows, int64_t k);
  int64_t frame_data, frame_address, chunk_index, new_address, slots, obs_ids, next_ids, action,
      reward, discount, transition_id, flags;
  int64_t total = 0;

 private:
  int64_t section(int64_t bytes);
};

// The frames of a ReplayBuffer that samples on a device, and a copy of its transitions, in the
// memory of that device, laid out for one sampling kernel. The buffer does its bookkeeping on the
// host (streams, windows, frame references; its FrameStore holds no bytes) and hands the mirror
// each new frame and the slots an add() changed: stage() before it commits anything (all
// allocation happens there), submit() after. sample_into() draws slots and gathers whole batches
// on the device, with no host synchronization, so it can be captured in a CUDA graph. Its work
// goes on the current stream, ordered after the previous call's (CudaStreamOrder).
//
//   add():   new frames ──stage()──> device: chunk_address[c] ──> frames of chunk c
//            TransitionRing slot s ──submit()──> device: slot tables row s (frame ids, fields)
//   device:  counters [stored, draws, seed] ──sample_into()──> draw slots ──> gather 2k frames
//
// On the CPU the same tables and kernels run on host memory: the twin that tests check the CUDA
// path against.
class TransitionMirror {
 public:
  // `layout`: the buffer's FrameStore, whose chunks the mirror's frame memory follows.
  TransitionMirror(c10::Device device, int64_t capacity, int32_t frame_stack, int64_t frame_bytes,
                   const FrameStore& layout, uint64_t seed);
  ~TransitionMirror();
  TransitionMirror(const TransitionMirror&) = delete;
  TransitionMirror& operator=(const TransitionMirror&) = delete;

  c10::Device device() const { return device_; }
  // One update, staged: packed host memory (pinned for CUDA) holding the frames, and device memory
  // for it and for the frames' chunks.
  struct Staged {
    PackedLayout layout;
    at::Tensor host, device;
    std::vector<int32_t> new_chunks;  // chunks whose addresses the device's table gets
    int64_t frames, max_rows;
  };
  // Packs `frames` (ids in `store`) and allocates everything an update with them and up to
  // `max_rows` slots needs. Throws (out of memory) before the buffer changes anything.
  Staged stage(const FrameStore& store, std::span<const FrameSource> frames, int64_t max_rows);
  // Adds the slots of transitions `seqs` as `ring` holds them now (n-step windows discounted by
  // `gamma`) and the stored count, then copies the update to the device and applies it there: one
  // asynchronous copy, one kernel. Allocates nothing on the device. `call` names the buffer's
  // method in errors (an update cannot be captured in a CUDA graph).
  void submit(Staged& staged, const TransitionRing& ring, std::span<const int64_t> seqs,
              float gamma, int64_t stored, const char* call);
  // stage() and submit() in pieces of at most 64 MiB of frames (a load, a refresh).
  void sync(const FrameStore& store, std::span<const FrameSource> frames,
            const TransitionRing& ring, std::span<const int64_t> seqs, float gamma, int64_t stored);
  // The frames `ids`, as a (count, frame_bytes) uint8 CPU tensor (waits for the device).
  at::Tensor read_frames(std::span<const int32_t> ids) const;
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
  MirrorTables tables() const;
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

}  // namespace pydqn
