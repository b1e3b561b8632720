// Prioritized replay's learner side: ReplayBuffer::update_priorities.
#include <c10/util/Exception.h>

#include <cmath>

#include "replay/replay_buffer.h"

namespace pydqn {

int64_t ReplayBuffer::update_priorities(const at::Tensor& transition_ids_in,
                                        const at::Tensor& priorities_in) {
  TORCH_CHECK_VALUE(priorities_,
                    "update_priorities: this buffer samples uniformly; construct it "
                    "with prioritized=True");
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
  const int64_t added = ring_.claimed();
  for (int64_t i = 0; i < count; ++i) {
    TORCH_CHECK_INDEX(ids[i] >= 0 && ids[i] < added, "transition_ids: ", ids[i], " at position ", i,
                      " was never added; the buffer has added ", added,
                      " transitions, numbered from 0 (use a sampled batch's transition_ids)");
    TORCH_CHECK_VALUE(std::isfinite(priorities[i]) && priorities[i] > 0.0,
                      "priorities: expected finite values > 0, got ", priorities[i],
                      " at position ", i, " (add a small epsilon to |TD error|)");
    TORCH_CHECK_VALUE(std::pow(priorities[i], priorities_->alpha()) <= priorities_->max_leaf(),
                      "priorities: ", priorities[i], " at position ", i, " is too large: p^alpha ",
                      "must stay below ", priorities_->max_leaf(), " for the sum over the ",
                      capacity(), " slots to stay finite");
  }
  int64_t applied = 0;
  for (int64_t i = 0; i < count; ++i) {
    // hold() fails once the slot moved on to a newer transition (or the transition's window is
    // still open, so it cannot have been sampled): the update is dropped, not given to the slot.
    if (!ring_.hold(ids[i])) continue;
    priorities_->set(ids[i] % ring_.capacity(), priorities[i]);
    ring_.release(ids[i]);
    ++applied;
  }
  return applied;
}

}  // namespace pydqn
