#include "replay/uniform_draw.h"

#include <c10/util/Exception.h>

#include "replay/spin_wait.h"
#include "replay/state_checks.h"

namespace pydqn {

void UniformDraw::check_beta(std::optional<double> beta) const {
  TORCH_CHECK_VALUE(!beta.has_value(), "beta: only a prioritized buffer takes beta (construct ",
                    "it with prioritized=True); uniform sampling has weights of 1");
}

void UniformDraw::draw(int64_t rows, std::optional<double> beta, float* weights, ReadRow read) {
  const uint64_t first_draw = rng_.reserve(rows);
  for (int64_t row = 0; row < rows; ++row) {
    SpinWait spin;
    // A slot whose window is open, or that is rewritten under the read, is redrawn, which keeps
    // the draw uniform over the transitions that are readable. The redraw derives from the row's
    // own draw, as the sampling kernels' does (TransitionMirror), so a seed gives the same batches
    // on every sampler.
    uint64_t random = rng_.draw(first_draw + row);
    while (!read(row, static_cast<int64_t>(CounterRng::below(random, ring_.size())), nullptr)) {
      random = CounterRng::redraw(random);
      spin.pause();
    }
  }
}

double UniformDraw::leaf(int64_t slot) const {
  TORCH_INTERNAL_ASSERT(false, "a uniform draw keeps no priority leaves (slot ", slot, ")");
}

int64_t UniformDraw::update_priorities(TransitionRing& ring, const at::Tensor& transition_ids,
                                       const at::Tensor& priorities) {
  TORCH_CHECK_VALUE(false,
                    "update_priorities: this buffer samples uniformly; construct it "
                    "with prioritized=True");
}

void UniformDraw::check_saved(const ReplayState& state, int64_t stored, bool windows) const {
  check_state_absent(state.priorities, "priorities", "a uniform buffer keeps no priorities");
  // Saved as the 1 a buffer starts with, and never used: anything else comes from elsewhere.
  TORCH_CHECK_VALUE(state.max_priority == 1.0, "state['max_priority']: expected 1.0, as a uniform ",
                    "buffer saves it, got ", state.max_priority);
}

}  // namespace pydqn
