#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "replay/counter_rng.h"
#include "replay/env_stream.h"
#include "replay/frame_store.h"
#include "replay/transition_ring.h"

namespace pydqn {

// The tensors of a batch of transitions, in the order of pydqn.Batch.
struct BatchTensors {
  at::Tensor obs, action, reward, next_obs, terminated, truncated, indices;
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
  ReplayBuffer(int64_t capacity, std::vector<int64_t> obs_shape, at::ScalarType obs_dtype,
               int64_t frame_stack, int64_t num_envs, std::optional<uint64_t> seed);

  // Rows are CPU tensors; env_ids is int64 (n,). Returns the int64 slots written.
  at::Tensor add(const at::Tensor& obs, const at::Tensor& action, const at::Tensor& reward,
                 const at::Tensor& next_obs, const at::Tensor& terminated,
                 const at::Tensor& truncated, const at::Tensor& env_ids);
  BatchTensors sample(int64_t batch_size);
  void sample_into(const BatchTensors& out);
  BatchTensors get(const at::Tensor& indices);

  int64_t size() const { return ring_.size(); }
  int64_t capacity() const { return ring_.capacity(); }
  int64_t nbytes() const;
  int64_t frames_allocated() const;

 private:
  struct RowPlan;
  BatchTensors empty_batch(int64_t batch_size) const;
  void check_batch(const BatchTensors& out, int64_t batch_size) const;
  void check_rows(const at::Tensor& obs, const at::Tensor& action, const at::Tensor& reward,
                  const at::Tensor& next_obs, const at::Tensor& terminated,
                  const at::Tensor& truncated, const at::Tensor& env_ids) const;
  void check_continuity(const std::byte* obs, const std::byte* next_obs, int64_t env) const;
  void store_frames(const std::byte* obs, const std::byte* next_obs, EnvStream& stream,
                    TransitionRecord& record);
  void write_transition(int64_t seq, const TransitionRecord& record);
  // Copies one committed transition into row `row` of `out`; false if it changed under the read.
  bool try_read(int64_t slot, const BatchTensors& out, int64_t row) const;
  void read_slot(int64_t slot, const BatchTensors& out, int64_t row) const;

  const std::vector<int64_t> obs_shape_;
  const at::ScalarType obs_dtype_;
  const int32_t frame_stack_;
  const int64_t num_envs_;
  const int64_t frame_bytes_;
  FrameStore frames_;
  TransitionRing ring_;
  std::unique_ptr<EnvStream[]> streams_;
  CounterRng rng_;
};

}  // namespace pydqn
