#include "replay/state_checks.h"

#include <ATen/ops/_neg_view.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "replay/counter_rng.h"
#include "replay/prioritized_draw.h"
#include "replay/transition_ring.h"

namespace pydqn {
namespace {

// A buffer of 4 slots, 2-frame stacks of 3 bytes, 2-step windows with gamma 0.5.
constexpr StateLayout kLayout{4, 2, 3, 2, 0.5f};

at::Tensor ints(std::vector<int32_t> values, std::vector<int64_t> sizes) {
  return at::tensor(values, at::kInt).reshape(sizes);
}
at::Tensor bools(std::vector<uint8_t> values) {
  return at::tensor(std::vector<int32_t>(values.begin(), values.end()), at::kInt).to(at::kBool);
}
at::Tensor floats(std::vector<float> values) { return at::tensor(values, at::kFloat); }

// 6 transitions added, the last 4 stored: rows 0 and 1 with windows that ran both steps, row 2's
// ended after one (terminated), row 3's still open (zeros). Frames 0..5, each row using three.
ReplayState valid_state() {
  ReplayState s;
  s.added = 6;
  s.frames = at::arange(18, at::kByte).reshape({6, 3});
  s.frame_ids = ints({0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5}, {4, 3});
  s.action = ints({0, 1, 2, 3}, {4});
  s.reward = floats({0.5f, -1.0f, 2.0f, 0.0f});
  s.terminated = bools({0, 0, 1, 0});
  s.truncated = bools({0, 0, 0, 0});
  s.complete = bools({1, 1, 1, 0});
  s.window_ids = ints({3, 4, 4, 5, 3, 4, 0, 0}, {4, 2});
  s.window_reward = floats({0.0f, 0.0f, 2.0f, 0.0f});
  s.window_discount = floats({0.25f, 0.25f, 0.5f, 0.0f});
  s.window_terminated = bools({0, 0, 1, 0});
  s.window_truncated = bools({0, 0, 0, 0});
  return s;
}

// The message of the c10 error `check` throws, or "" if it throws none.
template <typename Check>
std::string error_of(Check check) {
  try {
    check();
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
  return "";
}

std::string check(const ReplayState& state, const StateLayout& layout = kLayout) {
  return error_of([&] { check_state(dense_state(state), layout); });
}

#define EXPECT_REFUSED(state, text) \
  EXPECT_NE(check(state).find(text), std::string::npos) << check(state)

TEST(StateChecks, AValidStatePasses) {
  EXPECT_EQ(check(valid_state()), "");
  ReplayState uniform = valid_state();  // n = 1: the window fields are None
  uniform.complete = uniform.window_ids = uniform.window_reward = uniform.window_discount =
      uniform.window_terminated = uniform.window_truncated = at::Tensor();
  EXPECT_EQ(check(uniform, {4, 2, 3, 1, 0.5f}), "");
}

TEST(StateChecks, TheTransitionCountIsBoundedByTheSlotVersions) {
  ReplayState state = valid_state();
  state.added = kMaxTransitions;
  EXPECT_EQ(check(state), "");
  state.added = kMaxTransitions + 1;
  EXPECT_REFUSED(state, "state['added']: expected an int in [0, 1152921504606846976]");
  state.added = std::numeric_limits<int64_t>::max();
  EXPECT_REFUSED(state, "got 9223372036854775807");
  state.added = -1;
  EXPECT_REFUSED(state, "got -1");
}

TEST(StateChecks, EveryFrameRowIsUsedSoTheStoreHasIdsForThem) {
  ReplayState state = valid_state();
  state.frames = at::zeros({7, 3}, at::kByte);  // a 7th row nothing uses
  EXPECT_REFUSED(state, "state['frames']: row 6 of 7 is used by no transition");
  state.frames = at::zeros({5, 3}, at::kByte);  // frame_ids use row 5
  EXPECT_REFUSED(state, "state['frame_ids']: expected rows of state['frames'] in [0, 5), got 5");
}

TEST(StateChecks, RowsOfFramesAreInRangeWhereTheyAreRead) {
  ReplayState state = valid_state();
  state.frame_ids[2][1] = -1;
  EXPECT_REFUSED(state,
                 "state['frame_ids']: expected rows of state['frames'] in [0, 6), got -1 "
                 "at row 2");
  state = valid_state();
  state.window_ids[1][0] = 6;
  EXPECT_REFUSED(state, "state['window_ids']: expected rows of state['frames'] in [0, 6), got 6");
  state = valid_state();
  state.window_ids[3][0] = 99;  // row 3's window is open: never read
  EXPECT_EQ(check(state), "");
}

TEST(StateChecks, BoolsAreStoredAsZeroOrOne) {
  for (at::Tensor ReplayState::* field :
       {&ReplayState::terminated, &ReplayState::truncated, &ReplayState::complete,
        &ReplayState::window_terminated, &ReplayState::window_truncated}) {
    ReplayState state = valid_state();
    at::Tensor bytes = (state.*field).to(at::kByte);
    bytes[1] = 2;
    state.*field = bytes.view(at::kBool);
    EXPECT_REFUSED(state, "']: expected bools stored as 0 or 1, got byte 2 at row 1");
  }
}

TEST(StateChecks, ADiscountIsGammaToTheWindowsLength) {
  ReplayState state = valid_state();
  state.window_discount[0] = 0.5f;  // gamma^1 without a flag: its episode ended by end_episodes()
  EXPECT_EQ(check(state), "");
  state = valid_state();
  state.window_discount[2] = 0.25f;  // an ended window may have run both steps
  EXPECT_EQ(check(state), "");
  for (int64_t row : {0, 2}) {  // a window without flags, and one that ended
    for (float bad : {0.125f, 0.0f, 1.0f, -0.25f, std::numeric_limits<float>::quiet_NaN()}) {
      state = valid_state();
      state.window_discount[row] = bad;
      EXPECT_REFUSED(state,
                     "state['window_discount']: expected gamma^m for the window's m "
                     "(1..n_step, gamma=0.5, n_step=2), got ");
    }
  }
}

TEST(StateChecks, RewardsAreFinite) {
  ReplayState state = valid_state();
  state.reward[3] = std::numeric_limits<float>::infinity();
  EXPECT_REFUSED(state, "state['reward']: expected finite values, got inf at row 3");
  state = valid_state();
  state.window_reward[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_REFUSED(state, "state['window_reward']: expected finite values, got nan at row 0");
}

TEST(StateChecks, FieldsHaveTheirTypeShapeAndDevice) {
  ReplayState state = valid_state();
  state.action = at::Tensor();
  EXPECT_REFUSED(state,
                 "state['action']: expected a CPU tensor of dtype Int and shape [4], got None");
  state = valid_state();
  state.reward = state.reward.to(at::kDouble);
  EXPECT_REFUSED(state, "state['reward']: expected dtype Float, got Double");
  state = valid_state();
  state.frame_ids = state.frame_ids.narrow(0, 0, 3);
  EXPECT_REFUSED(state, "state['frame_ids']: expected shape [4, 3], got [3, 3]");
  state = valid_state();
  state.terminated = at::empty({4}, at::TensorOptions().dtype(at::kBool).device(at::kMeta));
  EXPECT_REFUSED(state, "state['terminated']: expected a CPU tensor, got one on meta");
  state = valid_state();
  state.window_reward = state.window_reward.to_sparse();
  EXPECT_REFUSED(state, "state['window_reward']: expected a dense tensor, got layout Sparse");
  state = valid_state();
  state.frames = state.frames.flatten();
  EXPECT_REFUSED(state, "state['frames']: expected a (frames, 3) uint8 tensor, got shape [18]");
  state = valid_state();  // its windows, for a buffer of n_step = 1
  EXPECT_NE(check(state, {4, 2, 3, 1, 0.5f})
                .find("state['complete']: expected None, as a buffer with n_step=1 keeps no "
                      "n-step windows, got a tensor of shape [4]"),
            std::string::npos);
}

TEST(StateChecks, TheDenseStateHoldsTheValuesAViewShows) {
  ReplayState state = valid_state();
  state.reward = at::_neg_view(floats({-0.5f, 1.0f, -2.0f, 0.0f}));  // reads as valid_state's
  state.frame_ids = ints({0, 1, 2, 3, 4, 5, 1, 2, 3, 2, 3, 4}, {3, 4}).t();  // not contiguous
  const ReplayState dense = dense_state(state);
  EXPECT_FALSE(dense.reward.is_neg());
  EXPECT_TRUE(dense.frame_ids.is_contiguous());
  const float* reward = dense.reward.const_data_ptr<float>();
  EXPECT_EQ(std::vector<float>(reward, reward + 4), (std::vector<float>{0.5f, -1.0f, 2.0f, -0.0f}));
  EXPECT_EQ(check(state), "");
}

// ---- the prioritized draw's part ----------------------------------------------------------------

struct Prioritized {
  CounterRng rng{0};
  TransitionRing ring{4, 2, true};
  PrioritizedDraw draw{4, /*alpha=*/1.0, rng, ring};
  std::string check(const ReplayState& state) {
    return error_of([&] { draw.check_saved(dense_state(state), 4, /*windows=*/true); });
  }
};

ReplayState prioritized_state() {
  ReplayState state = valid_state();
  state.priorities = at::tensor(std::vector<double>{1.0, 2.0, 0.5, 0.0}, at::kDouble);
  state.max_priority = 2.0;
  return state;
}

TEST(StateChecks, PrioritiesKeepTheirSumFinite) {
  Prioritized p;
  const double max_leaf = std::numeric_limits<double>::max() / 8;  // 4 leaves, twice over
  EXPECT_EQ(p.check(prioritized_state()), "");
  ReplayState state = prioritized_state();
  state.priorities[1] = max_leaf;
  EXPECT_EQ(p.check(state), "");
  state.priorities[1] = max_leaf * 1.5;
  EXPECT_NE(p.check(state).find("state['priorities']: expected a value in (0, "),
            std::string::npos);
  state = prioritized_state();
  state.max_priority = max_leaf * 1.5;
  EXPECT_NE(p.check(state).find("state['max_priority']: expected a finite value > 0 whose ^alpha"),
            std::string::npos);
  state.max_priority = 0.0;
  EXPECT_NE(p.check(state).find("got 0"), std::string::npos);
  state = prioritized_state();
  state.priorities[3] = 1.0;  // row 3's window is open
  EXPECT_NE(p.check(state).find("expected 0 (its window is open) at row 3"), std::string::npos);
  state = prioritized_state();
  state.priorities = at::Tensor();
  EXPECT_NE(p.check(state).find("state['priorities']: expected a CPU tensor of dtype Double"),
            std::string::npos);
}

}  // namespace
}  // namespace pydqn
