#include "replay/mirror_sampler.h"

#include <c10/util/Exception.h>

#include <cstring>
#include <numeric>

namespace pydqn {
namespace {

// Open n-step windows number at most num_envs * (n - 1), twice that just after a load (the loaded
// ones stay open until evicted): with more slots than that, a full ring always holds a sampleable
// transition, so a sampling kernel replayed in a CUDA graph always finds one.
c10::Device checked_device(c10::Device device, int64_t capacity, int64_t num_envs, int32_t n_step) {
  const int64_t open_windows = 2 * num_envs * (n_step - 1);
  TORCH_CHECK_VALUE(capacity > open_windows, "capacity: a buffer that samples on ", device,
                    " with num_envs=", num_envs, " and n_step=", n_step, " needs more than ",
                    open_windows, " slots (2 * num_envs * (n_step - 1), the n-step windows that ",
                    "can be open at once), got ", capacity);
  return device;
}

}  // namespace

MirrorSampler::MirrorSampler(const BufferParts& parts, c10::Device device, int64_t capacity,
                             int64_t num_envs, uint64_t seed)
    : parts_(parts),
      mirror_(checked_device(device, capacity, num_envs, parts.n_step), capacity, parts.frame_stack,
              parts.frame_bytes, parts.frames, seed),
      stacks_(num_envs * parts.frame_stack * parts.frame_bytes) {}

void MirrorSampler::begin_call() {
  TORCH_CHECK(!in_use_.exchange(true, std::memory_order_acquire), "a ReplayBuffer that samples on ",
              mirror_.device(),
              " takes one call at a time: add(), sample(), get(), state_dict() and "
              "load_state_dict() overlapped from two threads");
  // What a call that failed midway left behind is not this call's.
  fresh_.clear();
  changed_.clear();
  staged_.reset();
}

void MirrorSampler::refresh() {
  if (!stale_) return;
  const int64_t stored = parts_.ring.size();
  std::vector<int64_t> seqs(stored);
  std::iota(seqs.begin(), seqs.end(), parts_.ring.claimed() - stored);
  mirror_.sync(parts_.frames, {}, parts_.ring, seqs, parts_.gamma, stored);
  stale_ = false;
}

void MirrorSampler::stage(int64_t max_changed) {
  changed_.reserve(max_changed);
  staged_ = mirror_.stage(parts_.frames, fresh_, max_changed);
}

void MirrorSampler::added(int64_t env, int64_t seq, const std::byte* next_obs) {
  changed_.push_back(seq);
  const int64_t stack_bytes = parts_.frame_stack * parts_.frame_bytes;
  std::memcpy(stacks_.data() + env * stack_bytes, next_obs, stack_bytes);
}

void MirrorSampler::submit(const char* call) {
  // Allocates nothing, and a device that fails a copy or a kernel launch leaves the process's
  // CUDA context unusable anyway.
  mirror_.submit(*staged_, parts_.ring, changed_, parts_.gamma, parts_.ring.size(), call);
  staged_.reset();
}

void MirrorSampler::sample_into(const BatchTensors& out, std::optional<double> beta) {
  if (!parts_.draw.prioritized()) return mirror_.sample_into(out);
  // Drawn on the host, from the trees, and gathered on the device. No add() runs meanwhile (calls
  // take turns), and a concurrent priority update holds its slot, which read_begin() sees, so the
  // row is drawn again as on the host sampler.
  const int64_t rows = out.indices.numel();
  const auto [slots, weights] = mirror_.staged_rows(rows);
  auto* slot = slots.mutable_data_ptr<int64_t>();
  parts_.draw.draw(rows, beta, weights.mutable_data_ptr<float>(),
                   [&](int64_t row, int64_t s, double* leaf) {
                     slot[row] = s;
                     *leaf = parts_.draw.leaf(s);
                     return parts_.ring.read_begin(s) != 0;
                   });
  mirror_.gather_rows(out, slots, weights);
}

void MirrorSampler::get_into(const BatchTensors& out, const at::Tensor& slots,
                             c10::function_ref<void(int64_t row)> check_complete) {
  for (int64_t row = 0; row < slots.numel(); ++row) check_complete(row);
  mirror_.get_into(out, slots);
}

uint64_t MirrorSampler::draws() const {
  // A uniform draw advances the device's generator; a prioritized one the host's.
  return parts_.draw.prioritized() ? parts_.rng.draws() : mirror_.draws();
}

void MirrorSampler::write_loaded_frames() {
  mirror_.sync(parts_.frames, fresh_, parts_.ring, {}, parts_.gamma, 0);
  fresh_.clear();
}

void MirrorSampler::loaded(uint64_t seed, uint64_t draws) {
  stale_ = true;  // until the copy below has gone through
  mirror_.restore_rng(seed, draws);
  refresh();
}

}  // namespace pydqn
