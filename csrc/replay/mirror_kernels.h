#pragma once

#include <cstddef>
#include <cstdint>

#include "replay/batch.h"
#include "replay/counter_rng.h"
#include "replay/transition_ring.h"

namespace pydqn {

// A TransitionMirror's tables as raw pointers into memory of its device, for its kernels
// (cpu/mirror_kernels.cpp and cuda/mirror_kernels.cu, twins that do the same row by row).
struct MirrorTables {
  const int64_t* chunk_address;  // (max_chunks,) where each frame chunk lives, 0 until allocated
  int32_t chunk_shift;           // frame id >> chunk_shift = chunk; the low bits: the frame in it
  int64_t frame_bytes;
  int32_t frame_stack;
  // Per slot: the frames of obs and of next_obs (oldest first), action, n-step reward and
  // discount, kTerminated | kTruncated, and the transition's number, or -1 if the slot holds
  // nothing sampleable (never written, or its n-step window is still open).
  int32_t* obs_ids;   // (capacity, frame_stack)
  int32_t* next_ids;  // (capacity, frame_stack)
  int32_t* action;
  float* reward;
  float* discount;
  uint8_t* flags;
  int64_t* transition_id;
  // [stored transitions, draws made, generator seed]: read by the sampling kernel at run time, so
  // a captured CUDA graph samples from what the buffer holds when it is replayed.
  int64_t* counters;

  PYDQN_HOST_DEVICE const std::byte* frame(int32_t id) const {
    const int64_t chunk_mask = (int64_t{1} << chunk_shift) - 1;
    return reinterpret_cast<const std::byte*>(chunk_address[id >> chunk_shift]) +
           (id & chunk_mask) * frame_bytes;
  }

  // The slot of row `row` of a batch drawn at draw `draws`: uniform over the stored slots, and
  // redrawn (deterministically, as ReplayBuffer's host sampler does) while it holds nothing
  // sampleable; -1 after kMaxRedraws redraws. The eager caller has checked that a sampleable slot
  // exists, and a kernel-sampled buffer's capacity keeps one there from then on (see
  // ReplayBuffer's constructor), so only a CUDA graph replayed too early could see -1.
  static constexpr int32_t kMaxRedraws = 1 << 20;
  PYDQN_HOST_DEVICE int64_t draw_slot(int64_t row) const {
    const uint64_t stored = static_cast<uint64_t>(counters[0]);
    uint64_t random =
        CounterRng::draw(static_cast<uint64_t>(counters[2]),
                         static_cast<uint64_t>(counters[1]) + static_cast<uint64_t>(row));
    int64_t slot = static_cast<int64_t>(CounterRng::below(random, stored));
    for (int32_t redraws = 0; stored == 0 || transition_id[slot] < 0; ++redraws) {
      if (stored == 0 || redraws == kMaxRedraws) return -1;
      random = CounterRng::redraw(random);
      slot = static_cast<int64_t>(CounterRng::below(random, stored));
    }
    return slot;
  }

  // The draw counter after `rows` more draws. It holds the host generator's uint64 position in an
  // int64, so it counts modulo 2^64 as CounterRng does (in int64 it would overflow: a loaded
  // state's position may lie anywhere).
  PYDQN_HOST_DEVICE static int64_t advanced_draws(int64_t draws, int64_t rows) {
    return static_cast<int64_t>(static_cast<uint64_t>(draws) + static_cast<uint64_t>(rows));
  }

  // Row `row`'s fields other than the frames, from slot `slot`; weight 1 unless `weights`.
  PYDQN_HOST_DEVICE void write_fields(const BatchPointers& out, int64_t row, int64_t slot,
                                      const float* weights) const {
    out.action[row] = action[slot];
    out.reward[row] = reward[slot];
    out.terminated[row] = (flags[slot] & kTerminated) != 0;
    out.truncated[row] = (flags[slot] & kTruncated) != 0;
    out.discount[row] = discount[slot];
    out.indices[row] = slot;
    out.transition_ids[row] = transition_id[slot];
    out.weights[row] = weights != nullptr ? weights[row] : 1.0f;
  }
};

// One batch of changes to a mirror, packed in one buffer on its device (one copy from the host):
// frames to write, frame chunks that became addressable, and slot images; then the stored count.
struct MirrorUpdate {
  const std::byte* frame_data;   // (frames, frame_bytes)
  const int64_t* frame_address;  // (frames,) where each goes
  const int64_t* chunk_index;    // (chunks,) chunk_address[chunk_index[i]] = new_address[i]
  const int64_t* new_address;    // (chunks,)
  const int64_t* slots;          // (rows,) and each slot's image in the tables' layout:
  const int32_t* obs_ids;        // (rows, frame_stack)
  const int32_t* next_ids;       // (rows, frame_stack)
  const int32_t* action;
  const float* reward;
  const float* discount;
  const uint8_t* flags;
  const int64_t* transition_id;
  int64_t frames = 0, chunks = 0, rows = 0;
  int64_t stored = 0;
};

// Both devices: the update applied to the tables; the batch's rows gathered from the slots
// `slots` (device memory, `rows` of them), or drawn when slots is null, which advances the draw
// counter by `rows`; the rows' weights from `weights` (device memory), or 1 when it is null.
void apply_mirror_update_cpu(const MirrorTables& tables, const MirrorUpdate& update);
void gather_transitions_cpu(const MirrorTables& tables, const BatchPointers& out, int64_t rows,
                            const int64_t* slots, const float* weights);
// Both devices: the frames `ids` (`count` of them) copied to `out`, one after the other.
void copy_frames_cpu(const MirrorTables& tables, const int32_t* ids, int64_t count, std::byte* out);
#ifdef PYDQN_WITH_CUDA
void apply_mirror_update_cuda(const MirrorTables& tables, const MirrorUpdate& update);
void gather_transitions_cuda(const MirrorTables& tables, const BatchPointers& out, int64_t rows,
                             const int64_t* slots, const float* weights);
void copy_frames_cuda(const MirrorTables& tables, const int32_t* ids, int64_t count,
                      std::byte* out);
#endif

// Orders a mirror's calls across CUDA streams, so that work queued on one stream never overtakes
// the previous call's on another (an apply recycling frames a gather still reads, a gather of
// half-applied tables): a call on a new stream first waits for an event recorded at the end of the
// previous call. Inside a CUDA graph capture nothing is waited for or recorded (the graph's
// replays are ordered on the stream they run on). The CUDA types are opaque here.
struct CudaStreamOrder {
  void* event = nullptr;        // cudaEvent_t, created on first use
  void* last_stream = nullptr;  // cudaStream_t of the previous call
  bool last_recorded = false;   // the event marks the end of the previous call
};
#ifdef PYDQN_WITH_CUDA
// begin: waits as above; refuses (an error naming `call`) a capture when `capturable` is false.
void begin_cuda_call(CudaStreamOrder& order, bool capturable, const char* call);
void end_cuda_call(CudaStreamOrder& order);
void destroy_cuda_stream_order(CudaStreamOrder& order);
#endif

}  // namespace pydqn
