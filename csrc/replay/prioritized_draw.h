#pragma once

#include "replay/counter_rng.h"
#include "replay/draw_strategy.h"
#include "replay/priorities.h"
#include "replay/transition_ring.h"

namespace pydqn {

// Proportional prioritized replay: slots drawn in proportion to their Priorities leaf, one
// stratum of the total per row, with importance-sampling weights. A new transition gets the
// running maximum once it is sampleable; update_priorities() sets the learner's.
class PrioritizedDraw final : public DrawStrategy {
 public:
  PrioritizedDraw(int64_t capacity, double alpha, CounterRng& rng, const TransitionRing& ring);

  bool prioritized() const override { return true; }
  void check_beta(std::optional<double> beta) const override;
  void draw(int64_t rows, std::optional<double> beta, float* weights, ReadRow read) override;
  double leaf(int64_t slot) const override { return priorities_.leaf(slot); }

  void written(int64_t slot, bool complete) override;
  void completed(int64_t slot) override { priorities_.set_max(slot); }
  int64_t update_priorities(TransitionRing& ring, const at::Tensor& transition_ids,
                            const at::Tensor& priorities) override;

  void save(ReplayState& state, int64_t first_seq, int64_t stored) const override;
  void check_saved(const ReplayState& state, int64_t stored, bool windows) const override;
  void restore(const ReplayState& state, int64_t first_seq, int64_t stored) override;

  int64_t nbytes() const override { return priorities_.nbytes(); }

 private:
  // Row `row` of `rows`: redrawn while read() fails; returns its weight.
  float draw_row(uint64_t draw, int64_t rows, int64_t row, double total, double min_leaf,
                 double beta, ReadRow read);

  Priorities priorities_;
  CounterRng& rng_;
  const TransitionRing& ring_;
};

}  // namespace pydqn
