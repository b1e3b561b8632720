#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "replay/batch.h"
#include "replay/block_pool.h"
#include "replay/counter_rng.h"
#include "replay/env_stream.h"
#include "replay/frame_store.h"
#include "replay/host_array.h"
#include "replay/priorities.h"
#include "replay/transition_mirror.h"
#include "replay/transition_ring.h"

namespace pydqn {

// The arguments of one add(): one row per env stream named in env_ids (all streams if absent).
struct TransitionRows {
  HostArray obs, action, reward, next_obs, terminated, truncated;
  std::optional<HostArray> env_ids;
};

// A buffer's stored transitions, compacted: what state_dict() saves and load_state_dict() reads.
struct ReplayState {
  at::Tensor frames;  // (F, frame bytes) uint8: every frame the transitions reference, once
  at::Tensor
      frame_ids;      // (N, frame_stack + 1) int32 rows of `frames`: obs's, then next_obs's newest
  at::Tensor action;  // (N,) int32
  at::Tensor reward;  // (N,) float32
  at::Tensor terminated;  // (N,) bool
  at::Tensor truncated;   // (N,) bool
  int64_t added = 0;      // transitions ever added; the N stored are the last N, oldest first
  // n > 1 only (undefined otherwise): each transition's window, where `complete`; window_ids are
  // rows of `frames` like frame_ids.
  at::Tensor complete;                             // (N,) bool
  at::Tensor window_ids;                           // (N, frame_stack) int32
  at::Tensor window_reward, window_discount;       // (N,) float32
  at::Tensor window_terminated, window_truncated;  // (N,) bool
  // prioritized only (undefined otherwise): each transition's p^alpha (0 where its window is open).
  at::Tensor priorities;  // (N,) float64
  double max_priority = 1.0;
  uint64_t rng_seed = 0;  // the sampling generator continues with draw `rng_draws` of `rng_seed`
  uint64_t rng_draws = 0;
};

// A replay buffer that stores every frame once and rebuilds stacked observations when read.
//
//   add():   obs / next_obs rows ──(check stack continuity, keep only new frames)──> FrameStore
//                                └──(frame ids, action, reward, flags)──> TransitionRing slot
//   read():  TransitionRing slot ──(seqlock snapshot)──> frame ids ──> gather k + k frames
//
// Several threads may add() at once for disjoint env streams while others sample(): slot claims
// are one fetch_add, frames are written into chunks owned by the adding stream, and readers
// validate every transition they copy against the slot's version (see TransitionRing). No mutex
// exists anywhere in the buffer.
class ReplayBuffer {
 public:
  // n_step > 1: a sampled transition carries its n-step return (see TransitionWindow), and one
  // whose window is still open is not sampled. prioritized: sample() draws proportionally to
  // priority^alpha (see Priorities) and needs a beta; a new transition gets the running maximum.
  // sample_device: sample() and get() gather batches with the kernels of a TransitionMirror on
  // that device (CUDA, or its CPU twin) instead of copying from the host store; its calls must
  // not overlap (they are ordered on the device's current stream).
  ReplayBuffer(int64_t capacity, std::vector<int64_t> obs_shape, at::ScalarType obs_dtype,
               int64_t frame_stack, int64_t num_envs, std::optional<uint64_t> seed,
               int64_t n_step = 1, double gamma = 0.99, bool prioritized = false,
               double alpha = 0.6, std::optional<c10::Device> sample_device = std::nullopt);

  // Writes the slot of each row to `slots`, which holds one per row (obs's leading size).
  void add(const TransitionRows& rows, std::span<int64_t> slots);
  // beta: the importance-sampling exponent of a prioritized buffer; uniform buffers take none and
  // return weights of 1.
  BatchTensors sample(int64_t batch_size, std::optional<double> beta = std::nullopt);
  void sample_into(const BatchTensors& out, std::optional<double> beta = std::nullopt);
  BatchTensors get(const at::Tensor& indices);
  // Sets the priorities of the transitions numbered transition_ids (as sampled). A transition that
  // was overwritten since (its slot holds a newer one) is skipped: the update is its, not the
  // slot's. Returns how many were applied. Checks everything before it changes anything.
  int64_t update_priorities(const at::Tensor& transition_ids, const at::Tensor& priorities);

  // A compact copy of the stored transitions and the sampling generator. Waits for no add() to
  // be running (it holds every env stream meanwhile); samples may run concurrently.
  ReplayState save_state() const;
  // Fills a buffer nothing was added to from save_state()'s result. Env streams start fresh: each
  // stream's next add() begins a new episode.
  void load_state(const ReplayState& state);

  int64_t size() const { return ring_.size(); }
  int64_t capacity() const { return ring_.capacity(); }
  bool prioritized() const { return priorities_ != nullptr; }
  // Where batches are gathered: the CPU for the host sampler, else the mirror's device.
  c10::Device sample_device() const { return mirror_ ? mirror_->device() : c10::Device(c10::kCPU); }
  // Everything allocated: frames, transition records, stream state, pooled sample blocks, and the
  // mirror's device memory (device_nbytes).
  int64_t nbytes() const;
  int64_t device_nbytes() const { return mirror_ ? mirror_->nbytes() : 0; }

 private:
  BatchTensors empty_batch(int64_t batch_size, bool pooled) const;
  void check_batch(const BatchTensors& out, int64_t batch_size) const;
  // Checks shapes, dtypes and values; returns the env id of every row.
  c10::SmallVector<int64_t, 16> check_rows(const TransitionRows& rows) const;
  // Checks that one row continues its stream; returns whether next_obs's new frame repeats obs's
  // newest frame.
  bool check_continuity(const std::byte* obs, const std::byte* next_obs, int64_t env) const;
  [[noreturn]] void report_discontinuity(const std::byte* obs, const std::byte* next_obs,
                                         int64_t env) const;
  // Frame f of env's current stack (its last next_obs): in the store, or for a buffer that
  // samples on a device, whose store holds no bytes, in the stream's copy of its stack.
  const std::byte* stack_frame(int64_t env, int32_t f) const {
    return mirror_ ? stacks_.data() + (env * frame_stack_ + f) * frame_bytes_
                   : frames_.frame(streams_[env].stack[f]);
  }
  // `fresh`: when not null (a device buffer's add), collects the new frames instead of the store.
  void store_frames(const std::byte* obs, const std::byte* next_obs, bool repeats_newest,
                    EnvStream& stream, TransitionRecord& record,
                    c10::SmallVector<FrameSource, 16>* fresh);
  void write_transition(int64_t seq, const TransitionRecord& record);
  // n > 1: records the stream's new transition `seq` in its open windows and completes those that
  // it closes (all of them when the episode ended). Cannot fail.
  // `completed`: when not null, collects the transitions whose windows were published.
  void advance_windows(EnvStream& stream, int64_t seq, const TransitionRecord& record,
                       c10::SmallVector<int64_t, 16>* completed);
  // Publishes transition seq's window, unless the slot moved on (then nothing changes and it
  // returns false).
  bool complete_window(int64_t seq, const TransitionWindow& window);
  // The mirror's copy of every stored transition (its frames are there already), after a load.
  // A load whose copy failed (out of device memory, say) leaves the mirror stale, and the next
  // call on the buffer copies the transitions again before it goes on.
  void refresh_mirror();
  // Copies one committed transition into row `row` of `out`; false if it changed under the read.
  // `leaf`: also reads the transition's priority leaf, validated with the rest.
  bool try_read(int64_t slot, const BatchPointers& out, int64_t row, double* leaf = nullptr) const;
  // Fills row `row` from the slot that draw number `draw` picks, redrawing while it changes
  // under the read.
  void sample_uniform_row(uint64_t draw, const BatchPointers& out, int64_t row);
  // Row `row` of `rows`' transition, drawn by priority: `read(slot, &leaf)` reads the slot (and
  // its leaf, validated with it), false if it changed under the read. Returns its weight.
  template <typename Read>
  float draw_prioritized(uint64_t draw, int64_t rows, int64_t row, double total, double min_leaf,
                         double beta, Read&& read);

  const std::vector<int64_t> obs_shape_;
  const at::ScalarType obs_dtype_;
  const int32_t frame_stack_;
  const int64_t num_envs_;
  const int64_t frame_bytes_;
  const int32_t n_step_;
  const float gamma_;
  FrameStore frames_;
  TransitionRing ring_;
  std::unique_ptr<EnvStream[]> streams_;
  CounterRng rng_;
  std::shared_ptr<BlockPool> obs_blocks_;
  std::unique_ptr<Priorities> priorities_;  // prioritized buffers only
  // Stored transitions whose window is open (n > 1): sampling needs at least one that is not.
  std::atomic<int64_t> incomplete_{0};
  std::unique_ptr<TransitionMirror> mirror_;  // with a sample_device only
  mutable std::atomic<bool> mirror_in_use_{false};
  bool mirror_stale_ = false;      // read and written under a MirrorCall
  std::vector<std::byte> stacks_;  // with a mirror: each stream's current stack, for the checks
};

}  // namespace pydqn
