#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "replay/sampler.h"
#include "replay/transition_mirror.h"

namespace pydqn {

// Gathers batches on a device (CUDA, or the CPU twin of the CUDA path) from a TransitionMirror,
// which holds the buffer's only copy of the frames; the host FrameStore is bookkeeping, and each
// stream's current stack is kept here for add()'s continuity checks. A uniform draw runs on the
// device (capturable in a CUDA graph), a prioritized one on the host, from the DrawStrategy's
// trees, with the gather on the device. Calls take turns: the mirror's staging and the order of
// its device work assume they do not overlap, so overlapping calls get an error instead.
class MirrorSampler final : public Sampler {
 public:
  MirrorSampler(const BufferParts& parts, c10::Device device, int64_t capacity, int64_t num_envs,
                uint64_t seed);

  c10::Device device() const override { return mirror_.device(); }
  int64_t host_nbytes() const override { return static_cast<int64_t>(stacks_.size()); }
  int64_t device_nbytes() const override { return mirror_.nbytes(); }

  void begin_call() override;
  void end_call() override { in_use_.store(false, std::memory_order_release); }
  void refresh() override;

  const std::byte* stack_frame(const EnvStream& stream, int64_t env, int32_t f) const override {
    return stacks_.data() + (env * parts_.frame_stack + f) * parts_.frame_bytes;
  }
  void put_frame(int32_t id, const std::byte* bytes) override { fresh_.push_back({id, bytes}); }
  void stage(int64_t max_changed) override;
  void added(int64_t env, int64_t seq, const std::byte* next_obs) override;
  void completed(int64_t seq) override { changed_.push_back(seq); }
  void submit(const char* call) override;

  void sample_into(const BatchTensors& out, std::optional<double> beta) override;
  void get_into(const BatchTensors& out, const at::Tensor& slots,
                c10::function_ref<void(int64_t row)> check_complete) override;

  uint64_t draws() const override;
  at::Tensor read_frames(std::span<const int32_t> ids) const override {
    return mirror_.read_frames(ids);
  }
  void write_loaded_frames() override;
  void loaded(uint64_t seed, uint64_t draws) override;

 private:
  const BufferParts parts_;
  TransitionMirror mirror_;
  std::vector<std::byte> stacks_;  // (num_envs, frame_stack, frame_bytes)
  // The call in progress's new frames, its staged update, and the slots it changed (reserved by
  // stage(), so that added() and completed() never allocate).
  std::vector<FrameSource> fresh_;
  std::optional<TransitionMirror::Staged> staged_;
  c10::SmallVector<int64_t, 16> changed_;
  std::atomic<bool> in_use_{false};
  bool stale_ = false;  // a load's copy failed; read and written inside a call only
};

}  // namespace pydqn
