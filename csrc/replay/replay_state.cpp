// Saving and loading a ReplayBuffer's contents (ReplayBuffer::save_state / load_state).
//
// The saved form is compact and independent of the chunk layout: the frames the stored
// transitions reference, each once, in the order the transitions first reference them, and per
// transition the rows of those frames. Loading appends the frames to fresh chunks and commits the
// transitions under their original transition numbers, so slots, FIFO order and the sampling
// sequence continue exactly where the saved buffer stood.
#include "replay/replay_state.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <unordered_map>

#include "replay/replay_buffer.h"
#include "replay/state_checks.h"

namespace pydqn {

ReplayState ReplayBuffer::save_state() const {
  const SamplerCall call(*sampler_);
  AllStreamsLease lease(streams_.get(), num_envs_);
  const int64_t added = ring_.claimed();
  const int64_t stored = added < ring_.capacity() ? added : ring_.capacity();
  const int32_t ids = frame_stack_ + 1;
  const bool windows = n_step_ > 1;
  ReplayState state;
  state.added = added;
  state.rng_seed = rng_.seed();
  state.rng_draws = sampler_->draws();
  state.frame_ids = at::empty({stored, ids}, at::kInt);
  state.action = at::empty({stored}, at::kInt);
  state.reward = at::empty({stored}, at::kFloat);
  state.terminated = at::empty({stored}, at::kBool);
  state.truncated = at::empty({stored}, at::kBool);
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
  draw_->save(state, added - stored, stored);
  state.frames = sampler_->read_frames(frame_order);
  return state;
}

void ReplayBuffer::load_state(const ReplayState& saved) {
  const int32_t ids = frame_stack_ + 1;
  const bool windows = n_step_ > 1;
  // Everything is checked before anything changes: a refused state leaves the buffer as it was.
  const ReplayState state = dense_state(saved);
  check_state(state, {capacity(), frame_stack_, frame_bytes_, n_step_, gamma_});
  const int64_t stored = state.added < capacity() ? state.added : capacity();
  const int64_t frame_count = state.frames.size(0);
  draw_->check_saved(state, stored, windows);

  const SamplerCall call(*sampler_);
  AllStreamsLease lease(streams_.get(), num_envs_);
  TORCH_CHECK_VALUE(ring_.claimed() == 0,
                    "load_state_dict: expected a buffer nothing was added to, but it holds ",
                    size(), " transitions");
  // Frames go into chunks taken by a loader stream, in saved order; each chunk then carries one
  // reference per transition (and window) that uses it, and the loader's own references are
  // dropped at the end.
  EnvStream loader;
  std::vector<int32_t> frame_id(frame_count);
  const auto* bytes = state.frames.const_data_ptr<uint8_t>();
  // The frames are written before any transition is committed: if that fails (out of memory),
  // the buffer is still empty, and the loader's chunks are handed back for later adds.
  try {
    for (int64_t r = 0; r < frame_count; ++r) {
      frame_id[r] = loader.new_frame(frames_);
      sampler_->put_frame(frame_id[r],
                          reinterpret_cast<const std::byte*>(bytes + r * frame_bytes_));
    }
    sampler_->write_loaded_frames();
  } catch (...) {
    loader.unpin_all(frames_);
    throw;
  }
  const int32_t* rows = state.frame_ids.const_data_ptr<int32_t>();
  for (int64_t i = 0; i < stored; ++i) {
    const int64_t seq = state.added - stored + i;
    TransitionRecord record;
    for (int32_t f = 0; f < ids; ++f) record.frame_ids[f] = frame_id[rows[i * ids + f]];
    record.action = state.action.const_data_ptr<int32_t>()[i];
    record.reward = state.reward.const_data_ptr<float>()[i];
    record.flags = transition_flags(state.terminated.const_data_ptr<bool>()[i],
                                    state.truncated.const_data_ptr<bool>()[i]);
    frames_.for_each_chunk(record.frame_ids, ids, [&](int32_t c) { frames_.retain(c); });
    ring_.commit(seq, record, /*complete=*/!windows);
    if (!windows) continue;
    if (!state.complete.const_data_ptr<bool>()[i]) {
      incomplete_.fetch_add(1, std::memory_order_relaxed);
      continue;  // its stream's later transitions were not saved: it stays open until evicted
    }
    TransitionWindow window;
    for (int32_t f = 0; f < frame_stack_; ++f) {
      window.next_ids[f] =
          frame_id[state.window_ids.const_data_ptr<int32_t>()[i * frame_stack_ + f]];
    }
    window.reward = state.window_reward.const_data_ptr<float>()[i];
    window.discount = state.window_discount.const_data_ptr<float>()[i];
    window.flags = transition_flags(state.window_terminated.const_data_ptr<bool>()[i],
                                    state.window_truncated.const_data_ptr<bool>()[i]);
    incomplete_.fetch_add(1, std::memory_order_relaxed);
    complete_window(seq, window);
  }
  // Nothing samples before restore_claimed() below.
  draw_->restore(state, state.added - stored, stored);
  loader.unpin_all(frames_);
  rng_.restore(state.rng_seed, state.rng_draws);
  ring_.restore_claimed(state.added);
  sampler_->loaded(state.rng_seed, state.rng_draws);
}

}  // namespace pydqn
