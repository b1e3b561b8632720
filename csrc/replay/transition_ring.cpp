#include "replay/transition_ring.h"

#include "replay/spin_wait.h"

namespace pydqn {

TransitionRing::TransitionRing(int64_t capacity, int32_t frame_stack)
    : capacity_(capacity),
      ids_per_slot_(frame_stack + 1),
      version_(new std::atomic<int64_t>[capacity]),
      frame_ids_(new std::atomic<int32_t>[capacity * (frame_stack + 1)]),
      action_(new std::atomic<int32_t>[capacity]),
      reward_(new std::atomic<float>[capacity]),
      flags_(new std::atomic<uint8_t>[capacity]) {
  for (int64_t slot = 0; slot < capacity; ++slot) {
    version_[slot].store(2 * (slot - capacity) + 2, std::memory_order_relaxed);
  }
}

bool TransitionRing::begin_write(int64_t seq) {
  const int64_t slot = seq % capacity_;
  const int64_t previous = 2 * (seq - capacity_) + 2;
  SpinWait spin;
  while (version_[slot].load(std::memory_order_acquire) != previous) spin.pause();
  version_[slot].store(2 * seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  return seq >= capacity_;
}

void TransitionRing::commit(int64_t seq, const TransitionRecord& record) {
  const int64_t slot = seq % capacity_;
  std::atomic<int32_t>* ids = &frame_ids_[slot * ids_per_slot_];
  for (int32_t i = 0; i < ids_per_slot_; ++i) ids[i].store(record.frame_ids[i], std::memory_order_relaxed);
  action_[slot].store(record.action, std::memory_order_relaxed);
  reward_[slot].store(record.reward, std::memory_order_relaxed);
  flags_[slot].store(record.flags, std::memory_order_relaxed);
  version_[slot].store(2 * seq + 2, std::memory_order_release);
}

int64_t TransitionRing::read_begin(int64_t slot) const {
  const int64_t version = version_[slot].load(std::memory_order_acquire);
  return committed(version) ? version : 0;
}

void TransitionRing::load(int64_t slot, TransitionRecord& record) const {
  const std::atomic<int32_t>* ids = &frame_ids_[slot * ids_per_slot_];
  for (int32_t i = 0; i < ids_per_slot_; ++i) record.frame_ids[i] = ids[i].load(std::memory_order_relaxed);
  record.action = action_[slot].load(std::memory_order_relaxed);
  record.reward = reward_[slot].load(std::memory_order_relaxed);
  record.flags = flags_[slot].load(std::memory_order_relaxed);
}

bool TransitionRing::read_valid(int64_t slot, int64_t version) const {
  std::atomic_thread_fence(std::memory_order_acquire);
  return version_[slot].load(std::memory_order_relaxed) == version;
}

int64_t TransitionRing::nbytes() const {
  return capacity_ * static_cast<int64_t>(sizeof(int64_t) + ids_per_slot_ * sizeof(int32_t) +
                                          sizeof(int32_t) + sizeof(float) + sizeof(uint8_t));
}

}  // namespace pydqn
