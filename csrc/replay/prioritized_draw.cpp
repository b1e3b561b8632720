#include "replay/prioritized_draw.h"

#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "replay/spin_wait.h"
#include "replay/state_checks.h"

namespace pydqn {
namespace {

double checked_alpha(double alpha) {
  TORCH_CHECK_VALUE(alpha >= 0.0 && alpha <= 1.0, "alpha: expected a value in [0, 1], got ", alpha);
  return alpha;
}

}  // namespace

PrioritizedDraw::PrioritizedDraw(int64_t capacity, double alpha, CounterRng& rng,
                                 const TransitionRing& ring)
    : priorities_(capacity, checked_alpha(alpha)), rng_(rng), ring_(ring) {}

void PrioritizedDraw::check_beta(std::optional<double> beta) const {
  TORCH_CHECK_VALUE(beta.has_value() && *beta >= 0.0 && *beta <= 1.0,
                    "beta: a prioritized buffer expects a value in [0, 1], got ",
                    beta.has_value() ? std::to_string(*beta) : std::string("None"));
}

void PrioritizedDraw::draw(int64_t rows, std::optional<double> beta, float* weights, ReadRow read) {
  const uint64_t first_draw = rng_.reserve(rows);
  // Some stored transition is complete, so its leaf is positive; the trees may lag a concurrent
  // writer's leaf for a moment (update_priorities keeps the sum finite).
  double total = priorities_.total();
  double min_leaf = priorities_.min_leaf();
  for (SpinWait spin; !(total > 0.0 && min_leaf > 0.0 && std::isfinite(min_leaf)); spin.pause()) {
    total = priorities_.total();
    min_leaf = priorities_.min_leaf();
  }
  for (int64_t row = 0; row < rows; ++row) {
    weights[row] = draw_row(first_draw + row, rows, row, total, min_leaf, *beta, read);
  }
}

// Stratified: row r of B draws its mass uniformly from [r, r + 1) * total / B, so a batch covers
// the whole distribution (Schaul et al., appendix B.2.1). The weight is (N P(i))^-beta divided by
// the largest weight a stored transition has, which simplifies to (leaf_i / min leaf)^-beta.
float PrioritizedDraw::draw_row(uint64_t draw, int64_t rows, int64_t row, double total,
                                double min_leaf, double beta, ReadRow read) {
  double lower = total * static_cast<double>(row) / static_cast<double>(rows);
  double width = total / static_cast<double>(rows);
  SpinWait spin;
  for (;;) {
    const double mass =
        std::min(lower + width * CounterRng::unit(rng_.draw(draw)), std::nextafter(total, 0.0));
    const int64_t slot = priorities_.find(mass);
    double leaf = 0.0;  // read with the transition: a writer that takes the slot sets its own
    if (slot < ring_.size() && priorities_.leaf(slot) > 0.0 && read(row, slot, &leaf) &&
        leaf > 0.0) {
      // Smallest normal float at the bottom: a weight is never 0 (a sample always counts).
      const double weight = std::min(1.0, std::pow(leaf / min_leaf, -beta));
      return std::max(static_cast<float>(weight), std::numeric_limits<float>::min());
    }
    // Only concurrent writes land here (a slot rewritten or cleared under the read): redraw from
    // the whole distribution, as a uniform buffer redraws from all slots.
    lower = 0.0;
    width = total;
    draw = rng_.reserve(1);
    spin.pause();
  }
}

void PrioritizedDraw::written(int64_t slot, bool complete) {
  complete ? priorities_.set_max(slot) : priorities_.clear(slot);
}

int64_t PrioritizedDraw::update_priorities(TransitionRing& ring,
                                           const at::Tensor& transition_ids_in,
                                           const at::Tensor& priorities_in) {
  TORCH_CHECK_TYPE(at::isIntegralType(transition_ids_in.scalar_type(), /*includeBool=*/false),
                   "transition_ids: expected integers, got ", transition_ids_in.scalar_type());
  TORCH_CHECK_TYPE(at::isFloatingType(priorities_in.scalar_type()),
                   "priorities: expected floating point values, got ", priorities_in.scalar_type());
  TORCH_CHECK_VALUE(transition_ids_in.dim() == 1, "transition_ids: expected a 1-D sequence, got ",
                    transition_ids_in.dim(), " dimensions");
  TORCH_CHECK_VALUE(priorities_in.dim() == 1 && priorities_in.numel() == transition_ids_in.numel(),
                    "priorities: expected shape (", transition_ids_in.numel(),
                    ",), one per transition id, got ", priorities_in.sizes());
  const at::Tensor ids_tensor = transition_ids_in.to(at::kLong).contiguous();
  const at::Tensor priorities_tensor = priorities_in.to(at::kDouble).contiguous();
  const int64_t* ids = ids_tensor.const_data_ptr<int64_t>();
  const double* priorities = priorities_tensor.const_data_ptr<double>();
  const int64_t count = ids_tensor.numel();
  const int64_t added = ring.claimed();
  for (int64_t i = 0; i < count; ++i) {
    TORCH_CHECK_INDEX(ids[i] >= 0 && ids[i] < added, "transition_ids: ", ids[i], " at position ", i,
                      " was never added; the buffer has added ", added,
                      " transitions, numbered from 0 (use a sampled batch's transition_ids)");
    TORCH_CHECK_VALUE(std::isfinite(priorities[i]) && priorities[i] > 0.0,
                      "priorities: expected finite values > 0, got ", priorities[i],
                      " at position ", i, " (add a small epsilon to |TD error|)");
    TORCH_CHECK_VALUE(std::pow(priorities[i], priorities_.alpha()) <= priorities_.max_leaf(),
                      "priorities: ", priorities[i], " at position ", i,
                      " is too large: p^alpha must stay below ", priorities_.max_leaf(),
                      " for the sum over the ", ring.capacity(), " slots to stay finite");
  }
  int64_t applied = 0;
  for (int64_t i = 0; i < count; ++i) {
    // hold() fails once the slot moved on to a newer transition (or the transition's window is
    // still open, so it cannot have been sampled): the update is dropped, not given to the slot.
    if (!ring.hold(ids[i])) continue;
    priorities_.set(ids[i] % ring.capacity(), priorities[i]);
    ring.release(ids[i]);
    ++applied;
  }
  return applied;
}

void PrioritizedDraw::save(ReplayState& state, int64_t first_seq, int64_t stored) const {
  state.priorities = at::zeros({stored}, at::kDouble);
  double* leaves = state.priorities.mutable_data_ptr<double>();
  for (int64_t i = 0; i < stored; ++i)
    leaves[i] = priorities_.leaf((first_seq + i) % ring_.capacity());
  // Read after the leaves: Priorities::set raises the maximum before it stores a leaf, so the
  // saved maximum covers every saved leaf even while priority updates run.
  state.max_priority = priorities_.max_priority();
}

void PrioritizedDraw::check_saved(const ReplayState& state, int64_t stored, bool windows) const {
  check_state_field(state.priorities, "priorities", at::kDouble, {stored});
  // As update_priorities keeps them: each leaf, and the maximum new transitions get, small enough
  // for the sum over every slot to stay finite (an infinite total collapses the draw).
  const double max_leaf = priorities_.max_leaf();
  TORCH_CHECK_VALUE(std::isfinite(state.max_priority) && state.max_priority > 0.0 &&
                        std::pow(state.max_priority, priorities_.alpha()) <= max_leaf,
                    "state['max_priority']: expected a finite value > 0 whose ^alpha is at most ",
                    max_leaf, ", got ", state.max_priority);
  const double* leaves = state.priorities.const_data_ptr<double>();
  const bool* complete = windows ? state.complete.const_data_ptr<bool>() : nullptr;
  for (int64_t i = 0; i < stored; ++i) {
    // A transition is sampled with probability proportional to its leaf, so one that can be
    // sampled (its window complete) needs a positive leaf, and one that cannot needs 0.
    const double leaf = leaves[i];
    const bool sampleable = !windows || complete[i];
    TORCH_CHECK_VALUE(sampleable ? leaf > 0.0 && leaf <= max_leaf : leaf == 0.0,
                      "state['priorities']: expected ",
                      sampleable ? c10::str("a value in (0, ", max_leaf, "]")
                                 : std::string("0 (its window is open)"),
                      " at row ", i, ", got ", leaf);
  }
}

void PrioritizedDraw::restore(const ReplayState& state, int64_t first_seq, int64_t stored) {
  const at::Tensor priorities = state.priorities.contiguous();
  const double* leaves = priorities.const_data_ptr<double>();
  // Nothing samples until the ring's claimed count is restored, so the leaves are set outside
  // any hold; they replace the maximum that completing a loaded window gave.
  for (int64_t i = 0; i < stored; ++i) {
    if (leaves[i] > 0.0) priorities_.set_leaf((first_seq + i) % ring_.capacity(), leaves[i]);
  }
  priorities_.restore_max_priority(state.max_priority);
}

}  // namespace pydqn
