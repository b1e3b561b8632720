#pragma once

#include "replay/counter_rng.h"
#include "replay/draw_strategy.h"
#include "replay/transition_ring.h"

namespace pydqn {

// Every stored transition equally likely; weights of 1. A device sampler's kernel draws the same
// slots from the same generator (MirrorTables::draw_slot), so a seed gives the same batches on
// every sampler.
class UniformDraw final : public DrawStrategy {
 public:
  UniformDraw(CounterRng& rng, const TransitionRing& ring) : rng_(rng), ring_(ring) {}

  bool prioritized() const override { return false; }
  void check_beta(std::optional<double> beta) const override;
  void draw(int64_t rows, std::optional<double> beta, float* weights, ReadRow read) override;
  double leaf(int64_t slot) const override;
  int64_t update_priorities(TransitionRing& ring, const at::Tensor& transition_ids,
                            const at::Tensor& priorities) override;
  void check_saved(const ReplayState& state, int64_t stored, bool windows) const override;

 private:
  CounterRng& rng_;
  const TransitionRing& ring_;
};

}  // namespace pydqn
