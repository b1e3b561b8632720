// What a saved ReplayState must satisfy before ReplayBuffer::load_state changes anything. A state
// may come from a file someone edited or from another program, so nothing is assumed: counters
// are bounded (transition numbers feed the slots' versions), every row index is in range, every
// frame row is used (the loader allocates one frame id per row, from a store sized for the frames
// that `capacity` transitions reference), and values are ones a buffer produces.
#include "replay/state_checks.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "replay/transition_ring.h"

namespace pydqn {
namespace {

at::Tensor dense(const at::Tensor& t) {
  return t.defined() && t.layout() == at::kStrided && t.device().is_cpu()
             ? t.resolve_neg().contiguous()
             : t;  // check_state_field refuses it as it is
}

void check_rows_of_frames(const at::Tensor& t, const char* name, int64_t width,
                          const bool* used_rows, int64_t frame_count) {
  const int32_t* r = t.const_data_ptr<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (used_rows != nullptr && !used_rows[i / width]) continue;
    TORCH_CHECK_VALUE(r[i] >= 0 && r[i] < frame_count, "state['", name, "']: expected rows of",
                      " state['frames'] in [0, ", frame_count, "), got ", r[i], " at row ",
                      i / width);
  }
}

void check_finite(const at::Tensor& t, const char* name, const bool* used_rows) {
  const float* v = t.const_data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (used_rows != nullptr && !used_rows[i]) continue;
    TORCH_CHECK_VALUE(std::isfinite(v[i]), "state['", name, "']: expected finite values, got ",
                      v[i], " at row ", i);
  }
}

// A window of m transitions has discount gamma^m, computed as the buffer does (float32, one
// multiplication per step), with m = n_step unless its episode ended sooner. Flags do not bound m:
// an episode ended by end_episodes() leaves its last window flags clear, so a window of any m may
// have neither (and a terminal row may end a window that ran all n steps).
void check_discounts(const ReplayState& state, const StateLayout& layout, const bool* complete) {
  std::vector<float> powers(layout.n_step);
  float power = layout.gamma;
  for (int32_t m = 1; m <= layout.n_step; ++m, power *= layout.gamma) powers[m - 1] = power;
  const float* discount = state.window_discount.const_data_ptr<float>();
  for (int64_t i = 0; i < state.window_discount.numel(); ++i) {
    if (!complete[i]) continue;
    TORCH_CHECK_VALUE(std::find(powers.begin(), powers.end(), discount[i]) != powers.end(),
                      "state['window_discount']: expected gamma^m for the window's m (1..n_step, ",
                      "gamma=", layout.gamma, ", n_step=", layout.n_step, "), got ", discount[i],
                      " at row ", i);
  }
}

}  // namespace

ReplayState dense_state(const ReplayState& in) {
  ReplayState state = in;
  for (at::Tensor* t : {&state.frames, &state.frame_ids, &state.action, &state.reward,
                        &state.terminated, &state.truncated, &state.complete, &state.window_ids,
                        &state.window_reward, &state.window_discount, &state.window_terminated,
                        &state.window_truncated, &state.priorities}) {
    *t = dense(*t);
  }
  return state;
}

void check_state_field(const at::Tensor& t, const char* name, at::ScalarType dtype,
                       c10::IntArrayRef sizes) {
  TORCH_CHECK_TYPE(t.defined(), "state['", name, "']: expected a CPU tensor of dtype ", dtype,
                   " and shape ", sizes, ", got None");
  TORCH_CHECK_TYPE(t.layout() == at::kStrided, "state['", name,
                   "']: expected a dense tensor, got layout ", t.layout());
  TORCH_CHECK_VALUE(t.device().is_cpu(), "state['", name, "']: expected a CPU tensor, got one on ",
                    t.device(),
                    t.device().is_meta() ? " (which holds no values)"
                                         : " (torch.load the state with map_location='cpu')");
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, "state['", name, "']: expected dtype ", dtype,
                   ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == sizes, "state['", name, "']: expected shape ", sizes, ", got ",
                    t.sizes());
}

void check_state_absent(const at::Tensor& t, const char* name, const char* why) {
  TORCH_CHECK_VALUE(!t.defined(), "state['", name, "']: expected None, as ", why,
                    ", got a tensor of shape ", t.sizes());
}

void check_state_bools(const at::Tensor& t, const char* name, int64_t rows) {
  const auto* bytes = static_cast<const uint8_t*>(t.const_data_ptr());
  for (int64_t i = 0; i < rows; ++i) {
    TORCH_CHECK_VALUE(bytes[i] <= 1, "state['", name, "']: expected bools stored as 0 or 1, got ",
                      "byte ", static_cast<int>(bytes[i]), " at row ", i);
  }
}

void check_state(const ReplayState& state, const StateLayout& layout) {
  TORCH_CHECK_VALUE(state.added >= 0 && state.added <= kMaxTransitions,
                    "state['added']: expected an int in [0, ", kMaxTransitions,
                    "] (the transitions a buffer numbers at most), got ", state.added);
  const int64_t stored = std::min(state.added, layout.capacity);
  const int32_t ids = layout.frame_stack + 1;
  const bool windows = layout.n_step > 1;
  TORCH_CHECK_TYPE(state.frames.defined(), "state['frames']: expected a (frames, ",
                   layout.frame_bytes, ") uint8 CPU tensor, got None");
  TORCH_CHECK_VALUE(state.frames.dim() == 2, "state['frames']: expected a (frames, ",
                    layout.frame_bytes, ") uint8 tensor, got shape ", state.frames.sizes());
  const int64_t frame_count = state.frames.size(0);
  check_state_field(state.frames, "frames", at::kByte, {frame_count, layout.frame_bytes});
  check_state_field(state.frame_ids, "frame_ids", at::kInt, {stored, ids});
  check_state_field(state.action, "action", at::kInt, {stored});
  check_state_field(state.reward, "reward", at::kFloat, {stored});
  check_state_field(state.terminated, "terminated", at::kBool, {stored});
  check_state_field(state.truncated, "truncated", at::kBool, {stored});
  const std::pair<const at::Tensor*, const char*> window_fields[] = {
      {&state.complete, "complete"},
      {&state.window_ids, "window_ids"},
      {&state.window_reward, "window_reward"},
      {&state.window_discount, "window_discount"},
      {&state.window_terminated, "window_terminated"},
      {&state.window_truncated, "window_truncated"}};
  if (windows) {
    check_state_field(state.complete, "complete", at::kBool, {stored});
    check_state_field(state.window_ids, "window_ids", at::kInt, {stored, layout.frame_stack});
    check_state_field(state.window_reward, "window_reward", at::kFloat, {stored});
    check_state_field(state.window_discount, "window_discount", at::kFloat, {stored});
    check_state_field(state.window_terminated, "window_terminated", at::kBool, {stored});
    check_state_field(state.window_truncated, "window_truncated", at::kBool, {stored});
  } else {
    for (const auto& [t, name] : window_fields) {
      check_state_absent(*t, name, "a buffer with n_step=1 keeps no n-step windows");
    }
  }

  check_state_bools(state.terminated, "terminated", stored);
  check_state_bools(state.truncated, "truncated", stored);
  if (windows) {
    check_state_bools(state.complete, "complete", stored);
    check_state_bools(state.window_terminated, "window_terminated", stored);
    check_state_bools(state.window_truncated, "window_truncated", stored);
  }
  // An open window's fields are zeros that nothing reads.
  const bool* complete = windows ? state.complete.const_data_ptr<bool>() : nullptr;
  check_rows_of_frames(state.frame_ids, "frame_ids", ids, nullptr, frame_count);
  if (windows) {
    check_rows_of_frames(state.window_ids, "window_ids", layout.frame_stack, complete, frame_count);
  }
  // A window's frames are the next_obs of a later stored transition, so frame_ids use every row;
  // that bounds the rows by the frames `stored` transitions reference, which the store has ids for.
  std::vector<bool> used(frame_count, false);
  const int32_t* rows = state.frame_ids.const_data_ptr<int32_t>();
  for (int64_t i = 0; i < state.frame_ids.numel(); ++i) used[rows[i]] = true;
  const auto unused = std::find(used.begin(), used.end(), false);
  TORCH_CHECK_VALUE(unused == used.end(), "state['frames']: row ", unused - used.begin(), " of ",
                    frame_count, " is used by no transition in state['frame_ids']; a state holds ",
                    "exactly the frames its transitions reference");
  check_finite(state.reward, "reward", nullptr);
  if (windows) {
    check_finite(state.window_reward, "window_reward", complete);
    check_discounts(state, layout, complete);
  }
}

}  // namespace pydqn
