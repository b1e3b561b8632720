#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "replay/frame_store.h"

namespace pydqn {

// What a slot holds about one transition. Frames are referenced, not held: `frame_ids[0..k-1]` are
// the frames of obs (oldest first) and `frame_ids[1..k]` those of next_obs, so the two stacks share
// k-1 frames exactly as the environment's observations do.
struct TransitionRecord {
  int32_t frame_ids[kMaxFrameStack + 1];
  int32_t action;
  float reward;
  uint8_t flags;  // kTerminated | kTruncated
};
constexpr uint8_t kTerminated = 1;
constexpr uint8_t kTruncated = 2;
inline uint8_t transition_flags(bool terminated, bool truncated) {
  return (terminated ? kTerminated : 0) | (truncated ? kTruncated : 0);
}

// Transitions an n-step window spans, at most.
constexpr int32_t kMaxNStep = 64;
// Transitions one buffer numbers over its lifetime, at most (a loaded state's count included): a
// slot's version is 4 * seq + 4 in an int64, which stays far from overflowing below this, with
// room for the rows of adds in flight (at most kMaxNumEnvs) past it. At 10^9 adds a second a
// buffer reaches it after 36 years, so only a loaded state can come near.
constexpr int64_t kMaxTransitions = int64_t{1} << 60;

// The n-step view of a transition t, as sampling returns it: its window is t, ..., t+m-1 of the
// same env stream, with m = n unless the episode ended sooner. For n = 1 it is the transition
// itself.
struct TransitionWindow {
  int32_t next_ids[kMaxFrameStack];  // next_obs of the window's last transition
  float reward;                      // sum over j < m of gamma^j r_{t+j}
  float discount;                    // gamma^m
  uint8_t flags;                     // the window's last transition's kTerminated | kTruncated
};

// The ring of transition slots. Transition number `seq` (counted over all env streams, in the
// order slots were claimed) lives in slot seq % capacity, so the ring is FIFO by construction.
//
// Each slot has a version word that is a seqlock with two phases:
//   4*seq + 1   transition `seq` is being written
//   4*seq + 2   committed; its n-step window is not complete yet (n > 1 only): not readable
//   4*seq + 3   its window is being written, or its priority (hold(): a complete transition)
//   4*seq + 4   complete and readable
//   <= 0        never written (initialised to 4*(slot - capacity) + 4)
// A writer of `seq` waits until the slot's previous occupant, seq - capacity, is committed or
// complete and takes the slot from it with a compare-and-swap to 4*seq + 1; the window's writer
// takes 4*seq + 2 to 4*seq + 3 the same way (and a priority update 4*seq + 4 to 4*seq + 3 and
// back, see hold()). So a window is never written into a slot that moved
// on, and a slot is never taken while a window is written into it. Writers wait only for smaller
// seqs, so there is no cycle. Each writer then issues a release fence, stores the fields with
// relaxed stores and publishes the next version with a release store. A reader loads the version
// (acquire), copies what it needs, issues an acquire fence and reloads the version: if any copied
// value came from a later write, that write's release fence synchronizes with the reader's acquire
// fence, so the reload sees a newer version and the read is discarded. Nobody waits for a reader.
class TransitionRing {
 public:
  enum class Occupant { kNone, kIncomplete, kComplete };

  TransitionRing(int64_t capacity, int32_t frame_stack, bool windows);

  int64_t capacity() const { return capacity_; }
  int64_t size() const {
    const int64_t claimed = claimed_.load(std::memory_order_acquire);
    return claimed < capacity_ ? claimed : capacity_;
  }
  int64_t claimed() const { return claimed_.load(std::memory_order_acquire); }

  // Writer side. claim() reserves `count` consecutive transition numbers and returns the first.
  int64_t claim(int64_t count) { return claimed_.fetch_add(count, std::memory_order_acq_rel); }
  // Waits for the previous occupant of seq's slot to be committed, then marks the slot as being
  // written. Returns what the slot held, which the caller may still load() until commit().
  Occupant begin_write(int64_t seq);
  // Publishes the record; `complete` when its window is the record itself (n = 1) or was given.
  void commit(int64_t seq, const TransitionRecord& record, bool complete);
  // Completing transition seq's window: begin_complete() takes the slot from "committed" to
  // "completing" and returns false (the caller writes nothing) if the slot no longer holds seq or
  // its window was written already; end_complete() writes the window and makes it readable.
  bool begin_complete(int64_t seq);
  void end_complete(int64_t seq, const TransitionWindow& window);
  // Holds complete transition seq's slot in the "completing" phase, so neither a writer nor a
  // second holder can touch it, for changes that leave the record as it is (its priority).
  // Waits while the slot is "completing" already (its window being written, or another hold);
  // false if the slot holds another transition, or seq's window is still open. release() ends
  // the hold; readers that overlapped it still validate, since the record did not change.
  bool hold(int64_t seq);
  void release(int64_t seq);
  // Loading a saved buffer into a ring nobody has written: commit() the last min(claimed,
  // capacity) transitions directly (they have no previous occupant to wait for), then set the
  // claimed count, which is what makes them visible to size() and so to samplers.
  void restore_claimed(int64_t claimed) { claimed_.store(claimed, std::memory_order_release); }

  // Reader side. read_begin() returns the slot's version if it is readable (complete), else 0.
  int64_t read_begin(int64_t slot) const;
  int64_t version(int64_t slot) const { return version_[slot].load(std::memory_order_acquire); }
  void load(int64_t slot, TransitionRecord& record) const;
  // The window of a complete slot (for n = 1, derived from the record).
  void load_window(int64_t slot, const TransitionRecord& record, TransitionWindow& window,
                   float gamma) const;
  bool read_valid(int64_t slot, int64_t version) const;
  static int64_t seq_of(int64_t version) { return (version - 1) / 4; }
  static int64_t phase_of(int64_t version) { return (version - 1) % 4 + 1; }
  static constexpr int64_t kWriting = 1, kCommitted = 2, kCompleting = 3, kComplete = 4;

  int64_t nbytes() const { return nbytes_for(capacity_, frame_stack_, windows_); }
  // What a ring of these arguments allocates (all of it in the constructor).
  static int64_t nbytes_for(int64_t capacity, int32_t frame_stack, bool windows);

 private:
  const int64_t capacity_;
  const int32_t frame_stack_;
  const bool windows_;
  std::atomic<int64_t> claimed_{0};
  std::unique_ptr<std::atomic<int64_t>[]> version_;
  std::unique_ptr<std::atomic<int32_t>[]> frame_ids_;
  std::unique_ptr<std::atomic<int32_t>[]> action_;
  std::unique_ptr<std::atomic<float>[]> reward_;
  std::unique_ptr<std::atomic<uint8_t>[]> flags_;
  // Windows (n > 1 only).
  std::unique_ptr<std::atomic<int32_t>[]> window_ids_;
  std::unique_ptr<std::atomic<float>[]> window_reward_;
  std::unique_ptr<std::atomic<float>[]> window_discount_;
  std::unique_ptr<std::atomic<uint8_t>[]> window_flags_;
};

}  // namespace pydqn
