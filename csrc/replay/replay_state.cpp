// Saving and loading a ReplayBuffer's contents (ReplayBuffer::save_state / load_state).
//
// The saved form is compact and independent of the chunk layout: the frames the stored
// transitions reference, each once, in the order the transitions first reference them, and per
// transition the rows of those frames. Loading appends the frames to fresh chunks and commits the
// transitions under their original transition numbers, so slots, FIFO order and the sampling
// sequence continue exactly where the saved buffer stood.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "replay/racy_copy.h"
#include "replay/replay_buffer.h"

namespace pydqn {
namespace {

void check_field(const at::Tensor& t, const char* name, at::ScalarType dtype,
                 c10::IntArrayRef sizes) {
  TORCH_CHECK_VALUE(t.defined() && t.device().is_cpu(), "state['", name,
                    "']: expected a CPU tensor");
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, "state['", name, "']: expected dtype ", dtype,
                   ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == sizes, "state['", name, "']: expected shape ", sizes, ", got ",
                    t.sizes());
}

}  // namespace

ReplayState ReplayBuffer::save_state() const {
  const MirrorCall call(mirror_.get(), mirror_in_use_);
  AllStreamsLease lease(streams_.get(), num_envs_);
  const int64_t added = ring_.claimed();
  const int64_t stored = added < ring_.capacity() ? added : ring_.capacity();
  const int32_t ids = frame_stack_ + 1;
  const bool windows = n_step_ > 1;
  ReplayState state;
  state.added = added;
  state.rng_seed = rng_.seed();
  // A uniform mirror draws on the device; prioritized ones draw on the host.
  state.rng_draws = mirror_ && !priorities_ ? mirror_->draws() : rng_.draws();
  state.frame_ids = at::empty({stored, ids}, at::kInt);
  state.action = at::empty({stored}, at::kInt);
  state.reward = at::empty({stored}, at::kFloat);
  state.terminated = at::empty({stored}, at::kBool);
  state.truncated = at::empty({stored}, at::kBool);
  if (priorities_) state.priorities = at::zeros({stored}, at::kDouble);
  if (windows) {
    state.complete = at::zeros({stored}, at::kBool);
    state.window_ids = at::zeros({stored, frame_stack_}, at::kInt);
    state.window_reward = at::zeros({stored}, at::kFloat);
    state.window_discount = at::zeros({stored}, at::kFloat);
    state.window_terminated = at::zeros({stored}, at::kBool);
    state.window_truncated = at::zeros({stored}, at::kBool);
  }
  std::unordered_map<int32_t, int32_t> row_of;  // frame id in the store -> row in `frames`
  std::vector<int32_t> frame_order;
  auto row = [&](int32_t frame_id) {
    const auto [entry, is_new] =
        row_of.try_emplace(frame_id, static_cast<int32_t>(frame_order.size()));
    if (is_new) frame_order.push_back(frame_id);
    return entry->second;
  };
  int32_t* rows = state.frame_ids.mutable_data_ptr<int32_t>();
  for (int64_t i = 0; i < stored; ++i) {
    const int64_t seq = added - stored + i;
    const int64_t slot = seq % ring_.capacity();
    // No add() runs, so every stored slot holds its last committed transition.
    const int64_t version = ring_.version(slot);
    TORCH_INTERNAL_ASSERT(TransitionRing::seq_of(version) == seq);
    TransitionRecord record;
    ring_.load(slot, record);
    for (int32_t f = 0; f < ids; ++f) rows[i * ids + f] = row(record.frame_ids[f]);
    state.action.mutable_data_ptr<int32_t>()[i] = record.action;
    state.reward.mutable_data_ptr<float>()[i] = record.reward;
    state.terminated.mutable_data_ptr<bool>()[i] = (record.flags & kTerminated) != 0;
    state.truncated.mutable_data_ptr<bool>()[i] = (record.flags & kTruncated) != 0;
    if (priorities_) state.priorities.mutable_data_ptr<double>()[i] = priorities_->leaf(slot);
    // With every stream held no window is being completed, so "completing" is a priority
    // update's hold of a complete transition (see TransitionRing::hold).
    const bool complete = TransitionRing::phase_of(version) == TransitionRing::kComplete ||
                          TransitionRing::phase_of(version) == TransitionRing::kCompleting;
    if (windows && complete) {
      TransitionWindow window;
      ring_.load_window(slot, record, window, gamma_);
      state.complete.mutable_data_ptr<bool>()[i] = true;
      for (int32_t f = 0; f < frame_stack_; ++f) {
        state.window_ids.mutable_data_ptr<int32_t>()[i * frame_stack_ + f] =
            row(window.next_ids[f]);
      }
      state.window_reward.mutable_data_ptr<float>()[i] = window.reward;
      state.window_discount.mutable_data_ptr<float>()[i] = window.discount;
      state.window_terminated.mutable_data_ptr<bool>()[i] = (window.flags & kTerminated) != 0;
      state.window_truncated.mutable_data_ptr<bool>()[i] = (window.flags & kTruncated) != 0;
    }
  }
  // Read after the leaves: Priorities::set raises the maximum before it stores a leaf, so the
  // saved maximum covers every saved leaf even while priority updates run.
  if (priorities_) state.max_priority = priorities_->max_priority();
  const int64_t frame_count = static_cast<int64_t>(frame_order.size());
  if (mirror_) {  // the frames live on the device only
    state.frames = mirror_->read_frames(frame_order);
    return state;
  }
  state.frames = at::empty({frame_count, frame_bytes_}, at::kByte);
  auto* out = state.frames.mutable_data_ptr<uint8_t>();
  for (int64_t r = 0; r < frame_count; ++r) {
    copy_from_shared(out + r * frame_bytes_, frames_.frame(frame_order[r]), frame_bytes_);
  }
  return state;
}

void ReplayBuffer::load_state(const ReplayState& state) {
  const int32_t ids = frame_stack_ + 1;
  const bool windows = n_step_ > 1;
  TORCH_CHECK_VALUE(state.added >= 0, "state['added']: expected a count >= 0, got ", state.added);
  const int64_t stored = state.added < capacity() ? state.added : capacity();
  TORCH_CHECK_VALUE(state.frames.defined() && state.frames.dim() == 2,
                    "state['frames']: expected a (frames, frame bytes) uint8 tensor");
  const int64_t frame_count = state.frames.size(0);
  check_field(state.frames, "frames", at::kByte, {frame_count, frame_bytes_});
  check_field(state.frame_ids, "frame_ids", at::kInt, {stored, ids});
  check_field(state.action, "action", at::kInt, {stored});
  check_field(state.reward, "reward", at::kFloat, {stored});
  check_field(state.terminated, "terminated", at::kBool, {stored});
  check_field(state.truncated, "truncated", at::kBool, {stored});
  if (windows) {
    check_field(state.complete, "complete", at::kBool, {stored});
    check_field(state.window_ids, "window_ids", at::kInt, {stored, frame_stack_});
    check_field(state.window_reward, "window_reward", at::kFloat, {stored});
    check_field(state.window_discount, "window_discount", at::kFloat, {stored});
    check_field(state.window_terminated, "window_terminated", at::kBool, {stored});
    check_field(state.window_truncated, "window_truncated", at::kBool, {stored});
  }
  if (priorities_) {
    check_field(state.priorities, "priorities", at::kDouble, {stored});
    TORCH_CHECK_VALUE(std::isfinite(state.max_priority) && state.max_priority > 0.0,
                      "state['max_priority']: expected a finite value > 0, got ",
                      state.max_priority);
  }
  auto contiguous = [](const at::Tensor& t) { return t.defined() ? t.contiguous() : t; };
  const at::Tensor frames = state.frames.contiguous();
  const at::Tensor frame_ids = state.frame_ids.contiguous();
  const at::Tensor action = state.action.contiguous();
  const at::Tensor reward = state.reward.contiguous();
  const at::Tensor terminated = state.terminated.contiguous();
  const at::Tensor truncated = state.truncated.contiguous();
  const at::Tensor complete = contiguous(state.complete);
  const at::Tensor window_ids = contiguous(state.window_ids);
  const at::Tensor window_reward = contiguous(state.window_reward);
  const at::Tensor window_discount = contiguous(state.window_discount);
  const at::Tensor window_terminated = contiguous(state.window_terminated);
  const at::Tensor window_truncated = contiguous(state.window_truncated);
  const at::Tensor priorities = contiguous(state.priorities);
  auto check_rows_of_frames = [&](const at::Tensor& t, const char* name) {
    const int32_t* r = t.const_data_ptr<int32_t>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      TORCH_CHECK_VALUE(r[i] >= 0 && r[i] < frame_count, "state['", name, "']: expected rows of",
                        " state['frames'] in [0, ", frame_count, "), got ", r[i]);
    }
  };
  check_rows_of_frames(frame_ids, "frame_ids");
  if (windows) check_rows_of_frames(window_ids, "window_ids");
  for (const auto& [t, name] :
       {std::pair{&reward, "reward"}, std::pair{&window_reward, "window_reward"},
        std::pair{&window_discount, "window_discount"}}) {
    if (!t->defined()) continue;
    for (int64_t i = 0; i < stored; ++i) {
      TORCH_CHECK_VALUE(std::isfinite(t->const_data_ptr<float>()[i]), "state['", name,
                        "']: expected finite values, got ", t->const_data_ptr<float>()[i],
                        " at row ", i);
    }
  }

  for (int64_t i = 0; priorities_ && i < stored; ++i) {
    // A transition is sampled with probability proportional to its leaf, so one that can be
    // sampled (its window complete) needs a positive leaf, and one that cannot needs 0.
    const double leaf = priorities.const_data_ptr<double>()[i];
    const bool sampleable = !windows || complete.const_data_ptr<bool>()[i];
    TORCH_CHECK_VALUE(std::isfinite(leaf) && (sampleable ? leaf > 0.0 : leaf == 0.0),
                      "state['priorities']: expected ", sampleable ? "a finite value > 0" : "0",
                      " at row ", i, ", got ", leaf);
  }

  const MirrorCall call(mirror_.get(), mirror_in_use_);
  AllStreamsLease lease(streams_.get(), num_envs_);
  TORCH_CHECK_VALUE(ring_.claimed() == 0,
                    "load_state_dict: expected a buffer nothing was added to, but it holds ",
                    size(), " transitions");
  // Frames go into chunks taken by a loader stream, in saved order; each chunk then carries one
  // reference per transition (and window) that uses it, and the loader's own references are
  // dropped at the end.
  EnvStream loader;
  std::vector<int32_t> frame_id(frame_count);
  const auto* bytes = frames.const_data_ptr<uint8_t>();
  std::vector<FrameSource> sources;
  for (int64_t r = 0; r < frame_count; ++r) {
    frame_id[r] = loader.new_frame(frames_);
    if (mirror_) {
      sources.push_back(
          {frame_id[r], reinterpret_cast<const std::byte*>(bytes + r * frame_bytes_)});
    } else {
      copy_to_shared(frames_.frame(frame_id[r]), bytes + r * frame_bytes_, frame_bytes_);
    }
  }
  if (mirror_) {
    // The frames go to the device before any transition is committed: if that fails, the buffer
    // is still empty (the loader's chunks are handed back).
    try {
      mirror_->sync(frames_, sources, ring_, {}, gamma_, 0);
    } catch (...) {
      loader.unpin_all(frames_);
      throw;
    }
  }
  const int32_t* rows = frame_ids.const_data_ptr<int32_t>();
  for (int64_t i = 0; i < stored; ++i) {
    const int64_t seq = state.added - stored + i;
    TransitionRecord record;
    for (int32_t f = 0; f < ids; ++f) record.frame_ids[f] = frame_id[rows[i * ids + f]];
    record.action = action.const_data_ptr<int32_t>()[i];
    record.reward = reward.const_data_ptr<float>()[i];
    record.flags =
        transition_flags(terminated.const_data_ptr<bool>()[i], truncated.const_data_ptr<bool>()[i]);
    frames_.for_each_chunk(record.frame_ids, ids, [&](int32_t c) { frames_.retain(c); });
    const double leaf = priorities_ ? priorities.const_data_ptr<double>()[i] : 0.0;
    // Nothing samples before restore_claimed() below, so the leaves are set outside any hold.
    if (priorities_ && leaf > 0.0) priorities_->set_leaf(seq % capacity(), leaf);
    ring_.commit(seq, record, /*complete=*/!windows);
    if (!windows) continue;
    if (!complete.const_data_ptr<bool>()[i]) {
      incomplete_.fetch_add(1, std::memory_order_relaxed);
      continue;  // its stream's later transitions were not saved: it stays open until evicted
    }
    TransitionWindow window;
    for (int32_t f = 0; f < frame_stack_; ++f) {
      window.next_ids[f] = frame_id[window_ids.const_data_ptr<int32_t>()[i * frame_stack_ + f]];
    }
    window.reward = window_reward.const_data_ptr<float>()[i];
    window.discount = window_discount.const_data_ptr<float>()[i];
    window.flags = transition_flags(window_terminated.const_data_ptr<bool>()[i],
                                    window_truncated.const_data_ptr<bool>()[i]);
    incomplete_.fetch_add(1, std::memory_order_relaxed);
    complete_window(seq, window);
    if (priorities_) priorities_->set_leaf(seq % capacity(), leaf);  // complete_window set the max
  }
  if (priorities_) priorities_->restore_max_priority(state.max_priority);
  loader.unpin_all(frames_);
  rng_.restore(state.rng_seed, state.rng_draws);
  ring_.restore_claimed(state.added);
  if (mirror_) {
    mirror_stale_ = true;  // until the copy below has gone through
    mirror_->restore_rng(state.rng_seed, state.rng_draws);
    refresh_mirror();
  }
}

}  // namespace pydqn
