#include "replay/host_sampler.h"

#include <ATen/ops/empty.h>

#include <cstring>

#include "replay/racy_copy.h"
#include "replay/spin_wait.h"

namespace pydqn {

void HostSampler::put_frame(int32_t id, const std::byte* bytes) {
  // The frame's slot belongs to a chunk its stream owns and no committed transition references,
  // so no reader looks at it before the transition that references it commits.
  copy_to_shared(parts_.frames.frame(id), bytes, parts_.frame_bytes);
}

bool HostSampler::try_read(int64_t slot, const BatchPointers& out, int64_t row,
                           double* leaf) const {
  const TransitionRing& ring = parts_.ring;
  const FrameStore& frames = parts_.frames;
  const int32_t k = parts_.frame_stack;
  const int64_t frame_bytes = parts_.frame_bytes;
  const int64_t version = ring.read_begin(slot);
  if (version == 0) return false;
  TransitionRecord record;
  TransitionWindow window;
  ring.load(slot, record);
  ring.load_window(slot, record, window, parts_.gamma);
  if (leaf != nullptr) *leaf = parts_.draw.leaf(slot);
  if (!ring.read_valid(slot, version)) return false;  // the ids must be one record's
  const int64_t row_bytes = k * frame_bytes;
  std::byte* obs = out.obs + row * row_bytes;
  std::byte* next = out.next_obs + row * row_bytes;
  for (int32_t f = 0; f < k; ++f) {
    copy_from_shared(obs + f * frame_bytes, frames.frame(record.frame_ids[f]), frame_bytes);
  }
  if (parts_.n_step == 1) {
    // next_obs shares all but its newest frame with obs: copy those from the row just written,
    // which is in cache, and read only one more frame from the store.
    std::memcpy(next, obs + frame_bytes, row_bytes - frame_bytes);
    copy_from_shared(next + row_bytes - frame_bytes, frames.frame(window.next_ids[k - 1]),
                     frame_bytes);
  } else {
    for (int32_t f = 0; f < k; ++f) {
      copy_from_shared(next + f * frame_bytes, frames.frame(window.next_ids[f]), frame_bytes);
    }
  }
  if (!ring.read_valid(slot, version)) return false;
  out.action[row] = record.action;
  out.reward[row] = window.reward;
  out.terminated[row] = (window.flags & kTerminated) != 0;
  out.truncated[row] = (window.flags & kTruncated) != 0;
  out.discount[row] = window.discount;
  out.indices[row] = slot;
  out.transition_ids[row] = TransitionRing::seq_of(version);
  out.weights[row] = 1.0f;
  return true;
}

void HostSampler::sample_into(const BatchTensors& out, std::optional<double> beta) {
  const BatchPointers pointers(out);
  parts_.draw.draw(
      out.indices.numel(), beta, pointers.weights,
      [&](int64_t row, int64_t slot, double* leaf) { return try_read(slot, pointers, row, leaf); });
}

void HostSampler::get_into(const BatchTensors& out, const at::Tensor& slots,
                           c10::function_ref<void(int64_t row)> check_complete) {
  const BatchPointers pointers(out);
  const int64_t* slot = slots.const_data_ptr<int64_t>();
  for (int64_t row = 0; row < slots.numel(); ++row) {
    SpinWait spin;
    while (!try_read(slot[row], pointers, row, nullptr)) {
      check_complete(row);
      spin.pause();  // mid-write: wait for its commit
    }
  }
}

at::Tensor HostSampler::read_frames(std::span<const int32_t> ids) const {
  const int64_t count = static_cast<int64_t>(ids.size());
  const int64_t frame_bytes = parts_.frame_bytes;
  at::Tensor frames = at::empty({count, frame_bytes}, at::kByte);
  auto* out = frames.mutable_data_ptr<uint8_t>();
  for (int64_t r = 0; r < count; ++r) {
    copy_from_shared(out + r * frame_bytes, parts_.frames.frame(ids[r]), frame_bytes);
  }
  return frames;
}

}  // namespace pydqn
