// Saving and loading a ReplayBuffer's contents (ReplayBuffer::save_state / load_state).
//
// The saved form is compact and independent of the chunk layout: the frames the stored
// transitions reference, each once, in the order the transitions first reference them, and per
// transition the rows of those frames. Loading appends the frames to fresh chunks and commits the
// transitions under their original transition numbers, so slots, FIFO order and the sampling
// sequence continue exactly where the saved buffer stood.
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <unordered_map>

#include "replay/racy_copy.h"
#include "replay/replay_buffer.h"

namespace pydqn {
namespace {

// Holds every env stream, waiting for running add() calls to finish and holding off new ones, so
// the ring and the frames stay still while the buffer is saved or loaded.
class AllStreamsLease {
 public:
  AllStreamsLease(EnvStream* streams, int64_t count) : streams_(streams), count_(count) {
    for (int64_t env = 0; env < count; ++env) streams[env].hold_for_snapshot();
  }
  ~AllStreamsLease() {
    for (int64_t env = 0; env < count_; ++env) streams_[env].drop();
  }
  AllStreamsLease(const AllStreamsLease&) = delete;
  AllStreamsLease& operator=(const AllStreamsLease&) = delete;

 private:
  EnvStream* streams_;
  int64_t count_;
};

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
  AllStreamsLease lease(streams_.get(), num_envs_);
  const int64_t added = ring_.claimed();
  const int64_t stored = added < ring_.capacity() ? added : ring_.capacity();
  const int32_t ids = frame_stack_ + 1;
  ReplayState state;
  state.added = added;
  state.rng_seed = rng_.seed();
  state.rng_draws = rng_.draws();
  state.frame_ids = at::empty({stored, ids}, at::kInt);
  state.action = at::empty({stored}, at::kInt);
  state.reward = at::empty({stored}, at::kFloat);
  state.terminated = at::empty({stored}, at::kBool);
  state.truncated = at::empty({stored}, at::kBool);
  int32_t* rows = state.frame_ids.mutable_data_ptr<int32_t>();
  std::unordered_map<int32_t, int32_t> row_of;  // frame id in the store -> row in `frames`
  std::vector<int32_t> frame_order;
  for (int64_t i = 0; i < stored; ++i) {
    const int64_t seq = added - stored + i;
    const int64_t slot = seq % ring_.capacity();
    // No add() runs, so every stored slot holds its last committed transition.
    TORCH_INTERNAL_ASSERT(TransitionRing::seq_of(ring_.read_begin(slot)) == seq);
    TransitionRecord record;
    ring_.load(slot, record);
    for (int32_t f = 0; f < ids; ++f) {
      const auto [entry, is_new] =
          row_of.try_emplace(record.frame_ids[f], static_cast<int32_t>(frame_order.size()));
      if (is_new) frame_order.push_back(record.frame_ids[f]);
      rows[i * ids + f] = entry->second;
    }
    state.action.mutable_data_ptr<int32_t>()[i] = record.action;
    state.reward.mutable_data_ptr<float>()[i] = record.reward;
    state.terminated.mutable_data_ptr<bool>()[i] = (record.flags & kTerminated) != 0;
    state.truncated.mutable_data_ptr<bool>()[i] = (record.flags & kTruncated) != 0;
  }
  const int64_t frame_count = static_cast<int64_t>(frame_order.size());
  state.frames = at::empty({frame_count, frame_bytes_}, at::kByte);
  auto* out = state.frames.mutable_data_ptr<uint8_t>();
  for (int64_t row = 0; row < frame_count; ++row) {
    copy_from_shared(out + row * frame_bytes_, frames_.frame(frame_order[row]), frame_bytes_);
  }
  return state;
}

void ReplayBuffer::load_state(const ReplayState& state) {
  const int32_t ids = frame_stack_ + 1;
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
  const at::Tensor frames = state.frames.contiguous();
  const at::Tensor frame_ids = state.frame_ids.contiguous();
  const at::Tensor action = state.action.contiguous();
  const at::Tensor reward = state.reward.contiguous();
  const at::Tensor terminated = state.terminated.contiguous();
  const at::Tensor truncated = state.truncated.contiguous();
  const int32_t* rows = frame_ids.const_data_ptr<int32_t>();
  for (int64_t i = 0; i < stored * ids; ++i) {
    TORCH_CHECK_VALUE(rows[i] >= 0 && rows[i] < frame_count, "state['frame_ids']: expected rows of",
                      " state['frames'] in [0, ", frame_count, "), got ", rows[i]);
  }
  for (int64_t i = 0; i < stored; ++i) {
    TORCH_CHECK_VALUE(std::isfinite(reward.const_data_ptr<float>()[i]),
                      "state['reward']: expected finite values, got ",
                      reward.const_data_ptr<float>()[i], " at row ", i);
  }

  AllStreamsLease lease(streams_.get(), num_envs_);
  TORCH_CHECK_VALUE(ring_.claimed() == 0,
                    "load_state_dict: expected a buffer nothing was added to, but it holds ",
                    size(), " transitions");
  // Frames go into chunks taken by a loader stream, in saved order; each chunk then carries one
  // reference per transition that uses it, and the loader's own references are dropped at the end.
  EnvStream loader;
  std::vector<int32_t> frame_id(frame_count);
  const auto* bytes = frames.const_data_ptr<uint8_t>();
  for (int64_t row = 0; row < frame_count; ++row) {
    frame_id[row] = loader.new_frame(frames_);
    copy_to_shared(frames_.frame(frame_id[row]), bytes + row * frame_bytes_, frame_bytes_);
  }
  for (int64_t i = 0; i < stored; ++i) {
    TransitionRecord record;
    for (int32_t f = 0; f < ids; ++f) record.frame_ids[f] = frame_id[rows[i * ids + f]];
    record.action = action.const_data_ptr<int32_t>()[i];
    record.reward = reward.const_data_ptr<float>()[i];
    record.flags = (terminated.const_data_ptr<bool>()[i] ? kTerminated : 0) |
                   (truncated.const_data_ptr<bool>()[i] ? kTruncated : 0);
    frames_.for_each_chunk(record.frame_ids, ids, [&](int32_t c) { frames_.retain(c); });
    ring_.commit(state.added - stored + i, record);
  }
  loader.unpin_all(frames_);
  rng_.restore(state.rng_seed, state.rng_draws);
  ring_.restore_claimed(state.added);
}

}  // namespace pydqn
