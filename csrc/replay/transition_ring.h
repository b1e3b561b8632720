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

// The ring of transition slots. Transition number `seq` (counted over all env streams, in the
// order slots were claimed) lives in slot seq % capacity, so the ring is FIFO by construction.
//
// Each slot has a version word that is a seqlock:
//   2*seq + 2   transition `seq` is committed and readable
//   2*seq + 1   transition `seq` is being written
//   <= 0        the slot has never been written (initialised to 2*(slot - capacity) + 2)
// A writer of `seq` first waits until the slot shows 2*(seq - capacity) + 2, i.e. the previous
// occupant committed (so two writers never interleave on one slot; they only ever wait for a
// smaller seq, so there is no cycle). It then stores the odd version, issues a release fence,
// overwrites the record with relaxed stores and publishes the even version with a release store.
// A reader loads the version (acquire), copies what it needs, issues an acquire fence and reloads
// the version: if any copied value came from a later write, that write's release fence
// synchronizes with the reader's acquire fence, so the reload sees the odd (or a newer) version and
// the read is discarded. Nobody ever waits for a reader.
class TransitionRing {
 public:
  TransitionRing(int64_t capacity, int32_t frame_stack);

  int64_t capacity() const { return capacity_; }
  int64_t size() const {
    const int64_t claimed = claimed_.load(std::memory_order_acquire);
    return claimed < capacity_ ? claimed : capacity_;
  }
  int64_t claimed() const { return claimed_.load(std::memory_order_acquire); }

  // Writer side. claim() reserves `count` consecutive transition numbers and returns the first.
  int64_t claim(int64_t count) { return claimed_.fetch_add(count, std::memory_order_acq_rel); }
  // Waits for the previous occupant of seq's slot to commit, then marks the slot as being written.
  // Returns true when the slot held a transition that is now being overwritten.
  bool begin_write(int64_t seq);
  void commit(int64_t seq, const TransitionRecord& record);
  // Loading a saved buffer into a ring nobody has written: commit() the last min(claimed,
  // capacity) transitions directly (they have no previous occupant to wait for), then set the
  // claimed count, which is what makes them visible to size() and so to samplers.
  void restore_claimed(int64_t claimed) { claimed_.store(claimed, std::memory_order_release); }

  // Reader side: a version of 0 means the slot is empty or mid-write. load() also serves the
  // writer, between begin_write and commit, to read the occupant it is about to overwrite.
  int64_t read_begin(int64_t slot) const;
  void load(int64_t slot, TransitionRecord& record) const;
  bool read_valid(int64_t slot, int64_t version) const;
  static bool committed(int64_t version) { return version > 0 && (version & 1) == 0; }
  static int64_t seq_of(int64_t version) { return version / 2 - 1; }

  int64_t nbytes() const;

 private:
  const int64_t capacity_;
  const int32_t ids_per_slot_;
  std::atomic<int64_t> claimed_{0};
  std::unique_ptr<std::atomic<int64_t>[]> version_;
  std::unique_ptr<std::atomic<int32_t>[]> frame_ids_;
  std::unique_ptr<std::atomic<int32_t>[]> action_;
  std::unique_ptr<std::atomic<float>[]> reward_;
  std::unique_ptr<std::atomic<uint8_t>[]> flags_;
};

}  // namespace pydqn
