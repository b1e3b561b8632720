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
#include "replay/draw_strategy.h"
#include "replay/env_stream.h"
#include "replay/frame_store.h"
#include "replay/host_array.h"
#include "replay/replay_state.h"
#include "replay/sampler.h"
#include "replay/transition_ring.h"

namespace pydqn {

// The arguments of one add(): one row per env stream named in env_ids (all streams if absent).
struct TransitionRows {
  HostArray obs, action, reward, next_obs, terminated, truncated;
  std::optional<HostArray> env_ids;
};

// A replay buffer that stores every frame once and rebuilds stacked observations when read.
//
//   add():   obs / next_obs rows ──(check stack continuity, keep only new frames)──> Sampler
//                                └──(frame ids, action, reward, flags)──> TransitionRing slot
//   read():  DrawStrategy ──> TransitionRing slot ──(seqlock snapshot)──> frame ids
//                         ──> Sampler: gather k + k frames
//
// Several threads may add() at once for disjoint env streams while others sample(): slot claims
// are one fetch_add, frames are written into chunks owned by the adding stream, and readers
// validate every transition they copy against the slot's version (see TransitionRing). No mutex
// exists anywhere in the buffer.
//
// The buffer composes two parts that vary: a Sampler, which owns where the frames live and how
// batches are gathered (HostSampler: the FrameStore's bytes; MirrorSampler: a TransitionMirror on
// a device), and a DrawStrategy, which picks the slots of a batch (UniformDraw, PrioritizedDraw).
class ReplayBuffer {
 public:
  // n_step > 1: a sampled transition carries its n-step return (see TransitionWindow), and one
  // whose window is still open is not sampled. prioritized: sample() draws proportionally to
  // priority^alpha (see PrioritizedDraw) and needs a beta; a new transition gets the running
  // maximum. sample_device: sample() and get() gather batches with the kernels of a
  // TransitionMirror on that device (CUDA, or its CPU twin) instead of copying from the host store
  // (see MirrorSampler); its calls must not overlap (they are ordered on the device's current
  // stream).
  ReplayBuffer(int64_t capacity, std::vector<int64_t> obs_shape, at::ScalarType obs_dtype,
               int64_t frame_stack, int64_t num_envs, std::optional<uint64_t> seed,
               int64_t n_step = 1, double gamma = 0.99, bool prioritized = false,
               double alpha = 0.6, std::optional<c10::Device> sample_device = std::nullopt);

  // Writes the slot of each row to `slots`, which holds one per row (obs's leading size).
  void add(const TransitionRows& rows, std::span<int64_t> slots);
  // Ends the open episode of each stream in env_ids (all streams if absent) without adding a
  // transition: for an episode that stops without a final row (the env was reset mid-episode,
  // its actor died). Its stored transitions stay as they are; with n > 1 its open windows
  // complete now, cut at its last transition as a truncation would cut them (bootstrapping from
  // that transition's next_obs, discount gamma^m) but with that transition's own flags, which
  // are neither. The stream's next add() begins a new episode. Streams with no open episode are
  // left alone. Returns the number of episodes ended. Holds its streams like add().
  int64_t end_episodes(const std::optional<HostArray>& env_ids);
  // One bool per row of `obs` (rows, *obs_shape): whether the stream in env_ids (all if absent)
  // has an open episode whose last next_obs equals the row bit for bit, i.e. whether add() would
  // accept the row as obs. Changes nothing; holds its streams like add() while it compares.
  at::Tensor continues(const HostArray& obs, const std::optional<HostArray>& env_ids);
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
  bool prioritized() const { return draw_->prioritized(); }
  // Where batches are gathered: the CPU for the host sampler, else the mirror's device.
  c10::Device sample_device() const { return sampler_->device(); }
  // Everything allocated: frames, transition records, stream state, pooled sample blocks, the
  // draw's priorities, and the sampler's memory, on the device too (device_nbytes).
  int64_t nbytes() const;
  int64_t device_nbytes() const { return sampler_->device_nbytes(); }

 private:
  BatchTensors empty_batch(int64_t batch_size, bool pooled) const;
  // empty_batch(), whose failure to allocate is a MemoryError naming the argument `name`.
  BatchTensors allocate_batch(const char* name, int64_t rows, bool pooled) const;
  void check_batch(const BatchTensors& out, int64_t batch_size) const;
  // Checks shapes, dtypes and values; returns the env id of every row.
  c10::SmallVector<int64_t, 16> check_rows(const TransitionRows& rows) const;
  // The env ids of a call's rows: env_ids checked (integers, in range, each once; `call` names
  // the method in the error), or every stream when absent.
  c10::SmallVector<int64_t, 16> check_env_ids(const std::optional<HostArray>& env_ids,
                                              const char* call) const;
  // Checks that `a` holds `rows` observations of the buffer's dtype; `name` is the argument's.
  void check_obs(const HostArray& a, const char* name, int64_t rows) const;
  // Checks that one row continues its stream; returns whether next_obs's new frame repeats obs's
  // newest frame.
  bool check_continuity(const std::byte* obs, const std::byte* next_obs, int64_t env) const;
  [[noreturn]] void report_discontinuity(const std::byte* obs, const std::byte* next_obs,
                                         int64_t env) const;
  // Hands the frames of one row that the store does not hold yet to the sampler.
  void store_frames(const std::byte* obs, const std::byte* next_obs, bool repeats_newest,
                    EnvStream& stream, TransitionRecord& record);
  void write_transition(int64_t seq, const TransitionRecord& record);
  // n > 1: records the stream's new transition `seq` in its open windows and completes those that
  // it closes (all of them when the episode ended), telling the sampler. Cannot fail.
  void advance_windows(EnvStream& stream, int64_t seq, const TransitionRecord& record);
  // Completes the oldest `closing` of the stream's open windows, which end at its last transition
  // (next_obs: the stream's current stack) with `flags`, tells the sampler, and forgets them.
  // Cannot fail.
  void close_windows(EnvStream& stream, size_t closing, uint8_t flags);
  // Publishes transition seq's window, unless the slot moved on (then nothing changes and it
  // returns false).
  bool complete_window(int64_t seq, const TransitionWindow& window);

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
  // Stored transitions whose window is open (n > 1): sampling needs at least one that is not.
  std::atomic<int64_t> incomplete_{0};
  // Declared after the parts they refer to (BufferParts), so destroyed before them.
  std::unique_ptr<DrawStrategy> draw_;
  std::unique_ptr<Sampler> sampler_;
};

}  // namespace pydqn
