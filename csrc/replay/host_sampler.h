#pragma once

#include "replay/sampler.h"

namespace pydqn {

// Gathers batches on the CPU straight from the FrameStore's bytes. Any number of threads may
// sample while others add: each row is copied under the slot's seqlock (see TransitionRing) and
// redrawn, or for get() re-read, when it changed under the copy.
class HostSampler final : public Sampler {
 public:
  explicit HostSampler(const BufferParts& parts) : parts_(parts) {}

  c10::Device device() const override { return c10::kCPU; }

  const std::byte* stack_frame(const EnvStream& stream, int64_t env, int32_t f) const override {
    return parts_.frames.frame(stream.stack[f]);
  }
  void put_frame(int32_t id, const std::byte* bytes) override;

  void sample_into(const BatchTensors& out, std::optional<double> beta) override;
  void get_into(const BatchTensors& out, const at::Tensor& slots,
                c10::function_ref<void(int64_t row)> check_complete) override;

  uint64_t draws() const override { return parts_.rng.draws(); }
  at::Tensor read_frames(std::span<const int32_t> ids) const override;

 private:
  // Copies one committed transition into row `row` of `out`; false if it changed under the read.
  // `leaf`: also reads the transition's priority leaf, validated with the rest.
  bool try_read(int64_t slot, const BatchPointers& out, int64_t row, double* leaf) const;

  const BufferParts parts_;
};

}  // namespace pydqn
