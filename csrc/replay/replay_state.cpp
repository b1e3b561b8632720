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

namespace pydqn {

void check_state_field(const at::Tensor& t, const char* name, at::ScalarType dtype,
                       c10::IntArrayRef sizes) {
  TORCH_CHECK_VALUE(t.defined() && t.device().is_cpu(), "state['", name,
                    "']: expected a CPU tensor");
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, "state['", name, "']: expected dtype ", dtype,
                   ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.sizes() == sizes, "state['", name, "']: expected shape ", sizes, ", got ",
                    t.sizes());
}

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

void ReplayBuffer::load_state(const ReplayState& state) {
  const int32_t ids = frame_stack_ + 1;
  const bool windows = n_step_ > 1;
  TORCH_CHECK_VALUE(state.added >= 0, "state['added']: expected a count >= 0, got ", state.added);
  const int64_t stored = state.added < capacity() ? state.added : capacity();
  TORCH_CHECK_VALUE(state.frames.defined() && state.frames.dim() == 2,
                    "state['frames']: expected a (frames, frame bytes) uint8 tensor");
  const int64_t frame_count = state.frames.size(0);
  check_state_field(state.frames, "frames", at::kByte, {frame_count, frame_bytes_});
  check_state_field(state.frame_ids, "frame_ids", at::kInt, {stored, ids});
  check_state_field(state.action, "action", at::kInt, {stored});
  check_state_field(state.reward, "reward", at::kFloat, {stored});
  check_state_field(state.terminated, "terminated", at::kBool, {stored});
  check_state_field(state.truncated, "truncated", at::kBool, {stored});
  if (windows) {
    check_state_field(state.complete, "complete", at::kBool, {stored});
    check_state_field(state.window_ids, "window_ids", at::kInt, {stored, frame_stack_});
    check_state_field(state.window_reward, "window_reward", at::kFloat, {stored});
    check_state_field(state.window_discount, "window_discount", at::kFloat, {stored});
    check_state_field(state.window_terminated, "window_terminated", at::kBool, {stored});
    check_state_field(state.window_truncated, "window_truncated", at::kBool, {stored});
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
  const auto* bytes = frames.const_data_ptr<uint8_t>();
  for (int64_t r = 0; r < frame_count; ++r) {
    frame_id[r] = loader.new_frame(frames_);
    sampler_->put_frame(frame_id[r], reinterpret_cast<const std::byte*>(bytes + r * frame_bytes_));
  }
  // The frames are written before any transition is committed: if that fails, the buffer is
  // still empty (the loader's chunks are handed back).
  try {
    sampler_->write_loaded_frames();
  } catch (...) {
    loader.unpin_all(frames_);
    throw;
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
  }
  // Nothing samples before restore_claimed() below.
  draw_->restore(state, state.added - stored, stored);
  loader.unpin_all(frames_);
  rng_.restore(state.rng_seed, state.rng_draws);
  ring_.restore_claimed(state.added);
  sampler_->loaded(state.rng_seed, state.rng_draws);
}

}  // namespace pydqn
