#include "replay/transition_ring.h"

#include "replay/spin_wait.h"

namespace pydqn {
namespace {

template <typename T>
std::unique_ptr<std::atomic<T>[]> atomic_array(int64_t n) {
  return std::unique_ptr<std::atomic<T>[]>(n > 0 ? new std::atomic<T>[n] : nullptr);
}

}  // namespace

TransitionRing::TransitionRing(int64_t capacity, int32_t frame_stack, bool windows)
    : capacity_(capacity),
      frame_stack_(frame_stack),
      windows_(windows),
      version_(atomic_array<int64_t>(capacity)),
      frame_ids_(atomic_array<int32_t>(capacity * (frame_stack + 1))),
      action_(atomic_array<int32_t>(capacity)),
      reward_(atomic_array<float>(capacity)),
      flags_(atomic_array<uint8_t>(capacity)),
      window_ids_(atomic_array<int32_t>(windows ? capacity * frame_stack : 0)),
      window_reward_(atomic_array<float>(windows ? capacity : 0)),
      window_discount_(atomic_array<float>(windows ? capacity : 0)),
      window_flags_(atomic_array<uint8_t>(windows ? capacity : 0)) {
  for (int64_t slot = 0; slot < capacity; ++slot) {
    version_[slot].store(4 * (slot - capacity) + 4, std::memory_order_relaxed);
  }
}

TransitionRing::Occupant TransitionRing::begin_write(int64_t seq) {
  const int64_t slot = seq % capacity_;
  const int64_t previous = seq - capacity_;
  SpinWait spin;
  for (;;) {
    int64_t version = version_[slot].load(std::memory_order_acquire);
    const bool settled =
        version == 4 * previous + kCommitted || version == 4 * previous + kComplete;
    if (settled &&
        version_[slot].compare_exchange_weak(version, 4 * seq + kWriting, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
      std::atomic_thread_fence(std::memory_order_release);
      if (previous < 0) return Occupant::kNone;
      return phase_of(version) == kComplete ? Occupant::kComplete : Occupant::kIncomplete;
    }
    spin.pause();
  }
}

void TransitionRing::commit(int64_t seq, const TransitionRecord& record, bool complete) {
  const int64_t slot = seq % capacity_;
  std::atomic<int32_t>* ids = &frame_ids_[slot * (frame_stack_ + 1)];
  for (int32_t i = 0; i <= frame_stack_; ++i)
    ids[i].store(record.frame_ids[i], std::memory_order_relaxed);
  action_[slot].store(record.action, std::memory_order_relaxed);
  reward_[slot].store(record.reward, std::memory_order_relaxed);
  flags_[slot].store(record.flags, std::memory_order_relaxed);
  version_[slot].store(4 * seq + (complete ? kComplete : kCommitted), std::memory_order_release);
}

bool TransitionRing::begin_complete(int64_t seq) {
  const int64_t slot = seq % capacity_;
  int64_t expected = 4 * seq + kCommitted;
  if (!version_[slot].compare_exchange_strong(
          expected, 4 * seq + kCompleting, std::memory_order_acquire, std::memory_order_relaxed)) {
    return false;
  }
  std::atomic_thread_fence(std::memory_order_release);
  return true;
}

void TransitionRing::end_complete(int64_t seq, const TransitionWindow& window) {
  const int64_t slot = seq % capacity_;
  std::atomic<int32_t>* ids = &window_ids_[slot * frame_stack_];
  for (int32_t i = 0; i < frame_stack_; ++i)
    ids[i].store(window.next_ids[i], std::memory_order_relaxed);
  window_reward_[slot].store(window.reward, std::memory_order_relaxed);
  window_discount_[slot].store(window.discount, std::memory_order_relaxed);
  window_flags_[slot].store(window.flags, std::memory_order_relaxed);
  version_[slot].store(4 * seq + kComplete, std::memory_order_release);
}

bool TransitionRing::hold(int64_t seq) {
  const int64_t slot = seq % capacity_;
  SpinWait spin;
  for (;;) {
    int64_t version = version_[slot].load(std::memory_order_acquire);
    if (version == 4 * seq + kCompleting) {  // its window is being written, or another hold
      spin.pause();
      continue;
    }
    if (version != 4 * seq + kComplete) return false;
    if (version_[slot].compare_exchange_weak(
            version, 4 * seq + kCompleting, std::memory_order_acquire, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void TransitionRing::release(int64_t seq) {
  version_[seq % capacity_].store(4 * seq + kComplete, std::memory_order_release);
}

int64_t TransitionRing::read_begin(int64_t slot) const {
  const int64_t version = version_[slot].load(std::memory_order_acquire);
  return version > 0 && phase_of(version) == kComplete ? version : 0;
}

void TransitionRing::load(int64_t slot, TransitionRecord& record) const {
  const std::atomic<int32_t>* ids = &frame_ids_[slot * (frame_stack_ + 1)];
  for (int32_t i = 0; i <= frame_stack_; ++i)
    record.frame_ids[i] = ids[i].load(std::memory_order_relaxed);
  record.action = action_[slot].load(std::memory_order_relaxed);
  record.reward = reward_[slot].load(std::memory_order_relaxed);
  record.flags = flags_[slot].load(std::memory_order_relaxed);
}

void TransitionRing::load_window(int64_t slot, const TransitionRecord& record,
                                 TransitionWindow& window, float gamma) const {
  if (!windows_) {
    for (int32_t i = 0; i < frame_stack_; ++i) window.next_ids[i] = record.frame_ids[i + 1];
    window.reward = record.reward;
    window.discount = gamma;
    window.flags = record.flags;
    return;
  }
  const std::atomic<int32_t>* ids = &window_ids_[slot * frame_stack_];
  for (int32_t i = 0; i < frame_stack_; ++i)
    window.next_ids[i] = ids[i].load(std::memory_order_relaxed);
  window.reward = window_reward_[slot].load(std::memory_order_relaxed);
  window.discount = window_discount_[slot].load(std::memory_order_relaxed);
  window.flags = window_flags_[slot].load(std::memory_order_relaxed);
}

bool TransitionRing::read_valid(int64_t slot, int64_t version) const {
  std::atomic_thread_fence(std::memory_order_acquire);
  return version_[slot].load(std::memory_order_relaxed) == version;
}

int64_t TransitionRing::nbytes_for(int64_t capacity, int32_t frame_stack, bool windows) {
  const int64_t record = sizeof(int64_t) + (frame_stack + 1) * sizeof(int32_t) + sizeof(int32_t) +
                         sizeof(float) + sizeof(uint8_t);
  const int64_t window =
      windows ? frame_stack * sizeof(int32_t) + 2 * sizeof(float) + sizeof(uint8_t) : 0;
  return capacity * (record + window);
}

}  // namespace pydqn
