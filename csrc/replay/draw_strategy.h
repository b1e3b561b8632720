#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/FunctionRef.h>

#include <cstdint>
#include <optional>

#include "replay/replay_state.h"
#include "replay/transition_ring.h"

namespace pydqn {

// How sample() picks the slots of a batch: uniformly over the stored transitions (UniformDraw),
// or in proportion to priority^alpha (PrioritizedDraw), which keeps per-slot state. The buffer
// tells the strategy when a slot becomes sampleable or stops being so; a sampler asks it for each
// batch's slots and reads the rows it picks.
class DrawStrategy {
 public:
  // Reads the transition in `slot` into row `row`: false if it changed under the read (or holds
  // nothing sampleable). `leaf`, when not null, receives the slot's leaf(), validated with the
  // transition.
  using ReadRow = c10::function_ref<bool(int64_t row, int64_t slot, double* leaf)>;

  virtual ~DrawStrategy() = default;

  virtual bool prioritized() const = 0;
  // sample()'s beta: what this strategy takes (a prioritized one needs one, a uniform one none).
  virtual void check_beta(std::optional<double> beta) const = 0;
  // Draws the `rows` rows of a batch from the sampling generator: read() for each row until it
  // succeeds, then the row's importance weight into `weights` (left alone by a uniform draw,
  // whose weights are the 1 that read() writes).
  virtual void draw(int64_t rows, std::optional<double> beta, float* weights, ReadRow read) = 0;
  // The priority leaf of `slot` (prioritized only), for read() to read with the transition.
  virtual double leaf(int64_t slot) const = 0;

  // By the slot's writer, who owns it until it commits: a transition was written into `slot`,
  // sampleable now if `complete` (n = 1), else once its window completes, which completed() says.
  virtual void written(int64_t slot, bool complete) {}
  virtual void completed(int64_t slot) {}

  // ReplayBuffer::update_priorities, over `ring`'s transitions.
  virtual int64_t update_priorities(TransitionRing& ring, const at::Tensor& transition_ids,
                                    const at::Tensor& priorities) = 0;

  // The strategy's part of a saved state, for the `stored` transitions from number `first_seq`:
  // save() fills it, check_saved() checks it (`windows`: n > 1, so state.complete says which
  // transitions are sampleable), restore() sets it, before any of them can be sampled.
  virtual void save(ReplayState& state, int64_t first_seq, int64_t stored) const {}
  virtual void check_saved(const ReplayState& state, int64_t stored, bool windows) const {}
  virtual void restore(const ReplayState& state, int64_t first_seq, int64_t stored) {}

  virtual int64_t nbytes() const { return 0; }
};

}  // namespace pydqn
