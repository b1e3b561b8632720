#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace pydqn {

// A buffer's stored transitions, compacted: what state_dict() saves and load_state_dict() reads.
struct ReplayState {
  at::Tensor frames;  // (F, frame bytes) uint8: every frame the transitions reference, once
  at::Tensor
      frame_ids;      // (N, frame_stack + 1) int32 rows of `frames`: obs's, then next_obs's newest
  at::Tensor action;  // (N,) int32
  at::Tensor reward;  // (N,) float32
  at::Tensor terminated;  // (N,) bool
  at::Tensor truncated;   // (N,) bool
  int64_t added = 0;      // transitions ever added, <= kMaxTransitions; the N stored are the last N
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

}  // namespace pydqn
