#include "replay/transition_ring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "replay/frame_store.h"  // kMaxNumEnvs
#include "replay/racy_copy.h"    // PYDQN_TSAN

namespace pydqn {
namespace {

using Ring = TransitionRing;

// A record whose every field is derived from `seq`, so a reader can tell from the fields alone
// which transition it copied, and whether it copied parts of two.
TransitionRecord stamped_record(int64_t seq, int32_t frame_stack) {
  TransitionRecord record{};
  for (int32_t i = 0; i <= frame_stack; ++i)
    record.frame_ids[i] = static_cast<int32_t>(seq * 7 + i);
  record.action = static_cast<int32_t>(seq);
  record.reward = static_cast<float>(seq % 4096) + 0.5f;  // exact in a float
  record.flags = static_cast<uint8_t>(seq % 4);
  return record;
}

TransitionWindow stamped_window(int64_t seq, int32_t frame_stack) {
  TransitionWindow window{};
  for (int32_t i = 0; i < frame_stack; ++i) window.next_ids[i] = static_cast<int32_t>(-seq - i);
  window.reward = static_cast<float>(seq % 1024) * 2.0f;
  window.discount = 1.0f / static_cast<float>(1 + seq % 8);
  window.flags = static_cast<uint8_t>((seq + 1) % 4);
  return window;
}

// "" if the copy is exactly transition `seq` (its record and, with windows, its window).
std::string stamp_mismatch(int64_t seq, int32_t frame_stack, const TransitionRecord& record,
                           const TransitionWindow* window) {
  const TransitionRecord want = stamped_record(seq, frame_stack);
  for (int32_t i = 0; i <= frame_stack; ++i) {
    if (record.frame_ids[i] != want.frame_ids[i]) return "frame_ids[" + std::to_string(i) + "]";
  }
  if (record.action != want.action) return "action";
  if (record.reward != want.reward) return "reward";
  if (record.flags != want.flags) return "flags";
  if (window != nullptr) {
    const TransitionWindow w = stamped_window(seq, frame_stack);
    for (int32_t i = 0; i < frame_stack; ++i) {
      if (window->next_ids[i] != w.next_ids[i]) return "window next_ids[" + std::to_string(i) + "]";
    }
    if (window->reward != w.reward) return "window reward";
    if (window->discount != w.discount) return "window discount";
    if (window->flags != w.flags) return "window flags";
  }
  return "";
}

void write_complete(Ring& ring, int64_t seq, int32_t frame_stack) {
  ring.begin_write(seq);
  ring.commit(seq, stamped_record(seq, frame_stack), /*complete=*/true);
}

TEST(TransitionRing, FreshSlotsAreNotReadableAndHaveNoOccupant) {
  Ring ring(4, 2, /*windows=*/false);
  EXPECT_EQ(ring.size(), 0);
  for (int64_t slot = 0; slot < 4; ++slot) {
    EXPECT_EQ(ring.read_begin(slot), 0);
    EXPECT_LE(ring.version(slot), 0);
  }
  EXPECT_EQ(ring.begin_write(0), Ring::Occupant::kNone);
}

TEST(TransitionRing, VersionsEncodeSeqAndPhase) {
  // Hand-computed from the documented layout 4*seq + phase.
  EXPECT_EQ(Ring::seq_of(4 * 9 + Ring::kWriting), 9);
  EXPECT_EQ(Ring::phase_of(4 * 9 + Ring::kWriting), Ring::kWriting);
  EXPECT_EQ(Ring::seq_of(4 * 9 + Ring::kComplete), 9);
  EXPECT_EQ(Ring::phase_of(4 * 9 + Ring::kComplete), Ring::kComplete);
  EXPECT_EQ(Ring::phase_of(4 * 0 + Ring::kCommitted), Ring::kCommitted);
}

TEST(TransitionRing, ClaimsAreConsecutiveAndSizeSaturatesAtCapacity) {
  Ring ring(5, 1, false);
  EXPECT_EQ(ring.claim(3), 0);
  EXPECT_EQ(ring.claim(1), 3);
  EXPECT_EQ(ring.size(), 4);
  EXPECT_EQ(ring.claim(4), 4);
  EXPECT_EQ(ring.claimed(), 8);
  EXPECT_EQ(ring.size(), 5);
}

TEST(TransitionRing, ACommittedRecordReadsBackWithItsVersion) {
  Ring ring(4, 3, false);
  write_complete(ring, 2, 3);
  const int64_t version = ring.read_begin(2);
  EXPECT_EQ(version, 4 * 2 + Ring::kComplete);
  TransitionRecord record;
  ring.load(2, record);
  EXPECT_TRUE(ring.read_valid(2, version));
  EXPECT_EQ(stamp_mismatch(2, 3, record, nullptr), "");
  // Without windows, the window is derived: next_obs ids are frame_ids[1..k], discount is gamma.
  TransitionWindow window;
  ring.load_window(2, record, window, 0.9f);
  EXPECT_EQ(window.next_ids[0], record.frame_ids[1]);
  EXPECT_EQ(window.next_ids[2], record.frame_ids[3]);
  EXPECT_EQ(window.reward, record.reward);
  EXPECT_EQ(window.discount, 0.9f);
  EXPECT_EQ(window.flags, record.flags);
}

TEST(TransitionRing, ASlotBeingWrittenIsNotReadableAndInvalidatesAnOpenRead) {
  Ring ring(2, 1, false);
  write_complete(ring, 1, 1);
  const int64_t version = ring.read_begin(1);
  ASSERT_NE(version, 0);
  // seq 3 wraps onto slot 1, whose occupant seq 1 is complete.
  EXPECT_EQ(ring.begin_write(3), Ring::Occupant::kComplete);
  EXPECT_EQ(ring.read_begin(1), 0);
  EXPECT_FALSE(ring.read_valid(1, version));
  ring.commit(3, stamped_record(3, 1), true);
  EXPECT_FALSE(ring.read_valid(1, version));
  EXPECT_EQ(ring.read_begin(1), 4 * 3 + Ring::kComplete);
}

TEST(TransitionRing, WrapAroundReportsWhetherTheEvictedOccupantWasComplete) {
  Ring ring(2, 1, /*windows=*/true);
  ring.begin_write(0);
  ring.commit(0, stamped_record(0, 1), /*complete=*/false);
  write_complete(ring, 1, 1);
  EXPECT_EQ(ring.begin_write(2), Ring::Occupant::kIncomplete);  // evicts seq 0, window open
  EXPECT_EQ(ring.begin_write(3), Ring::Occupant::kComplete);    // evicts seq 1
}

TEST(TransitionRing, AWriterWaitsUntilThePreviousOccupantIsCommitted) {
  Ring ring(2, 1, false);
  ring.begin_write(0);  // seq 0 being written: seq 2 must not take slot 0 yet
  std::atomic<bool> taken{false};
  std::thread writer([&] {
    ring.begin_write(2);
    taken.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(taken.load()) << "seq 2 took slot 0 while seq 0 was being written";
  ring.commit(0, stamped_record(0, 1), true);
  writer.join();
  EXPECT_TRUE(taken.load());
  EXPECT_EQ(ring.version(0), 4 * 2 + Ring::kWriting);
}

TEST(TransitionRing, AWindowIsWrittenOnceAndOnlyIntoTheSlotItBelongsTo) {
  Ring ring(2, 2, true);
  ring.begin_write(0);
  ring.commit(0, stamped_record(0, 2), /*complete=*/false);
  EXPECT_EQ(ring.read_begin(0), 0) << "an open window is readable";
  ASSERT_TRUE(ring.begin_complete(0));
  EXPECT_FALSE(ring.begin_complete(0)) << "a window being written was taken twice";
  EXPECT_EQ(ring.read_begin(0), 0);
  ring.end_complete(0, stamped_window(0, 2));
  EXPECT_FALSE(ring.begin_complete(0)) << "a complete window was taken again";
  const int64_t version = ring.read_begin(0);
  ASSERT_EQ(version, 4 * 0 + Ring::kComplete);
  TransitionRecord record;
  TransitionWindow window;
  ring.load(0, record);
  ring.load_window(0, record, window, 0.5f);
  EXPECT_TRUE(ring.read_valid(0, version));
  EXPECT_EQ(stamp_mismatch(0, 2, record, &window), "");
  // Once seq 2 owns slot 0, a late completion of seq 0 must not write there.
  ring.begin_write(2);
  ring.commit(2, stamped_record(2, 2), false);
  EXPECT_FALSE(ring.begin_complete(0));
  EXPECT_TRUE(ring.begin_complete(2));
}

TEST(TransitionRing, AReadOverlappingAHoldStaysValid) {
  Ring ring(2, 1, false);
  write_complete(ring, 1, 1);
  EXPECT_FALSE(ring.hold(3)) << "held a transition the slot does not hold";
  const int64_t version = ring.read_begin(1);
  ASSERT_TRUE(ring.hold(1));
  EXPECT_EQ(ring.read_begin(1), 0) << "a held slot is readable";
  ring.release(1);
  EXPECT_TRUE(ring.read_valid(1, version)) << "a hold changed the record's version";
}

TEST(TransitionRing, AHeldSlotWaitsForItsReleaseBeforeAWriterOrASecondHolderTakesIt) {
  Ring ring(2, 1, false);
  write_complete(ring, 1, 1);
  ASSERT_TRUE(ring.hold(1));
  std::atomic<bool> held_again{false}, taken{false};
  std::thread holder([&] {
    if (ring.hold(1)) {
      held_again.store(true);
      ring.release(1);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(held_again.load()) << "two holders at once";
  ring.release(1);
  holder.join();
  EXPECT_TRUE(held_again.load());
  ASSERT_TRUE(ring.hold(1));
  std::thread writer([&] {
    ring.begin_write(3);
    taken.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(taken.load()) << "a writer took a held slot";
  ring.release(1);
  writer.join();
  ring.commit(3, stamped_record(3, 1), true);
  EXPECT_FALSE(ring.hold(1)) << "held an evicted transition";
}

TEST(TransitionRing, HoldOfAnOpenWindowFails) {
  Ring ring(2, 1, true);
  ring.begin_write(0);
  ring.commit(0, stamped_record(0, 1), false);
  EXPECT_FALSE(ring.hold(0));
}

TEST(TransitionRing, ARestoredRingExposesTheLastCapacityTransitionsAndContinuesAfterThem) {
  // A saved buffer of 6 transitions in a 4-slot ring: seqs 2..5 survive, in slots 2, 3, 0, 1.
  Ring ring(4, 1, false);
  for (int64_t seq = 2; seq < 6; ++seq) ring.commit(seq, stamped_record(seq, 1), true);
  ring.restore_claimed(6);
  EXPECT_EQ(ring.size(), 4);
  for (int64_t slot = 0; slot < 4; ++slot) {
    const int64_t version = ring.read_begin(slot);
    const int64_t seq = slot < 2 ? slot + 4 : slot;
    ASSERT_EQ(version, 4 * seq + Ring::kComplete) << "slot " << slot;
    TransitionRecord record;
    ring.load(slot, record);
    EXPECT_EQ(stamp_mismatch(seq, 1, record, nullptr), "");
  }
  // The next writer takes over seq 2's slot without waiting.
  EXPECT_EQ(ring.claim(1), 6);
  EXPECT_EQ(ring.begin_write(6), Ring::Occupant::kComplete);
}

TEST(TransitionRing, NbytesCountsRecordsAndWindows) {
  // Per slot: version 8 + (k+1) ids * 4 + action 4 + reward 4 + flags 1; window k*4 + 8 + 1.
  EXPECT_EQ(Ring(10, 4, false).nbytes(), 10 * (8 + 5 * 4 + 4 + 4 + 1));
  EXPECT_EQ(Ring(10, 4, true).nbytes(), 10 * (8 + 5 * 4 + 4 + 4 + 1 + 4 * 4 + 8 + 1));
}

// --- Concurrency: writers, window completers, holders and readers on a tiny ring --------------
// Every owner of a slot (a writer between begin_write and commit, a completer between
// begin_complete and end_complete, a holder between hold and release) marks the slot in `owners`;
// finding it marked already means two owners at once. Readers check every validated copy against
// the stamp of the seq its version names, so a torn read (fields of two transitions) fails.

// Each stress test stops at kStressTransitions or after kStressBudget, whichever comes first: on a
// shared 2-core machine the readers can starve the writers for a long time.
#if defined(PYDQN_TSAN) || defined(__SANITIZE_ADDRESS__)
constexpr int64_t kStressTransitions = 1 << 19;  // instrumented code is 5-20x slower
constexpr auto kStressBudget = std::chrono::seconds(4);
#else
constexpr int64_t kStressTransitions = 1 << 22;
constexpr auto kStressBudget = std::chrono::seconds(2);
#endif

// Starts all threads of a stress test together (else the writers may be done before a reader
// runs) and tells the writers when the time is up.
class StressClock {
 public:
  explicit StressClock(int threads) : waiting_(threads) {}
  void arrive() {
    if (waiting_.fetch_sub(1) == 1)
      end_ = (std::chrono::steady_clock::now() + kStressBudget).time_since_epoch().count();
    while (waiting_.load() > 0) std::this_thread::yield();
  }
  bool expired() const {
    return std::chrono::steady_clock::now().time_since_epoch().count() > end_.load();
  }

 private:
  std::atomic<int> waiting_;
  // Unset until the last thread arrives: a thread released before that thread has stored the end
  // must not see the budget spent (it did, and the test then checked nothing).
  std::atomic<int64_t> end_{std::numeric_limits<int64_t>::max()};
};

struct StressResult {
  std::atomic<int64_t> validated{0}, discarded{0}, torn{0}, overlaps{0};
  std::atomic<int64_t> first_bad_seq{-1};
  std::string first_bad_field;  // written once, by the thread that set first_bad_seq
  void fail(int64_t seq, const std::string& field, std::atomic<int64_t>& counter) {
    counter.fetch_add(1);
    int64_t none = -1;
    if (first_bad_seq.compare_exchange_strong(none, seq)) first_bad_field = field;
  }
};

class SlotOwners {
 public:
  explicit SlotOwners(int64_t capacity) : owned_(new std::atomic<int>[capacity]) {
    for (int64_t i = 0; i < capacity; ++i) owned_[i].store(0);
  }
  void enter(int64_t slot, int64_t seq, StressResult& result) {
    // Relaxed: an exchange still sees the latest mark, but orders nothing, so the ring's versions
    // alone order one owner's accesses before the next's.
    if (owned_[slot].exchange(1, std::memory_order_relaxed) != 0) {
      result.fail(seq, "two owners of one slot", result.overlaps);
    }
  }
  void leave(int64_t slot) { owned_[slot].store(0, std::memory_order_relaxed); }

 private:
  std::unique_ptr<std::atomic<int>[]> owned_;
};

void read_all_slots(const Ring& ring, int32_t frame_stack, bool windows, StressResult& result) {
  TransitionRecord record;
  TransitionWindow window;
  for (int64_t slot = 0; slot < ring.capacity(); ++slot) {
    const int64_t version = ring.read_begin(slot);
    if (version == 0) continue;
    ring.load(slot, record);
    ring.load_window(slot, record, window, 0.5f);
    if (!ring.read_valid(slot, version)) {
      result.discarded.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const int64_t seq = Ring::seq_of(version);
    if (seq % ring.capacity() != slot) {
      result.fail(seq, "a version naming another slot's seq", result.torn);
      continue;
    }
    const std::string bad = stamp_mismatch(seq, frame_stack, record, windows ? &window : nullptr);
    if (bad.empty()) {
      result.validated.fetch_add(1, std::memory_order_relaxed);
    } else {
      result.fail(seq, bad, result.torn);
    }
  }
}

void report(const StressResult& result) {
  std::printf("  validated reads %lld, discarded %lld\n",
              static_cast<long long>(result.validated.load()),
              static_cast<long long>(result.discarded.load()));
  EXPECT_EQ(result.torn.load(), 0)
      << "first at seq " << result.first_bad_seq.load() << ": " << result.first_bad_field;
  EXPECT_EQ(result.overlaps.load(), 0) << "first at seq " << result.first_bad_seq.load();
  EXPECT_GT(result.validated.load(), 0) << "no read ever validated: the test checked nothing";
}

TEST(TransitionRingConcurrency, WritersAndReadersOnATinyRingNeverSeeATornRecord) {
  constexpr int64_t kCapacity = 4;
  constexpr int32_t kStack = 4;
  constexpr int kWriters = 2, kReaders = 2;
  Ring ring(kCapacity, kStack, false);
  SlotOwners owners(kCapacity);
  StressResult result;
  std::atomic<int> writers_left{kWriters};
  StressClock clock(kWriters + kReaders);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      clock.arrive();
      while (!clock.expired()) {  // a claimed seq is always written: later writers wait for it
        const int64_t seq = ring.claim(1);
        if (seq >= kStressTransitions) break;
        ring.begin_write(seq);
        owners.enter(seq % kCapacity, seq, result);
        owners.leave(seq % kCapacity);
        ring.commit(seq, stamped_record(seq, kStack), true);
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      clock.arrive();
      do {
        read_all_slots(ring, kStack, false, result);
      } while (writers_left.load() > 0);
    });
  }
  for (auto& thread : threads) thread.join();
  report(result);
  // Quiescent: each slot holds the last seq written that maps to it, complete.
  const int64_t written = std::min(ring.claimed(), kStressTransitions);
  std::printf("  transitions %lld\n", static_cast<long long>(written));
  ASSERT_GE(written, kCapacity);
  for (int64_t slot = 0; slot < kCapacity; ++slot) {
    const int64_t last = (written - 1 - slot) / kCapacity * kCapacity + slot;
    EXPECT_EQ(ring.read_begin(slot), 4 * last + Ring::kComplete) << "slot " << slot;
  }
}

// n-step windows: each writer commits its transition with the window open and then completes the
// window of the previous seq (another writer's, usually), while holders take complete slots as a
// priority update does. A window is completed at most once, and only while its seq owns the slot.
TEST(TransitionRingConcurrency, WindowCompletersAndHoldersNeverOverlapWritersOrTearReads) {
  constexpr int64_t kCapacity = 4;
  constexpr int32_t kStack = 2;
  constexpr int kWriters = 2, kReaders = 1, kHolders = 1;
  Ring ring(kCapacity, kStack, true);
  SlotOwners owners(kCapacity);
  StressResult result;
  std::unique_ptr<std::atomic<uint8_t>[]> completions(new std::atomic<uint8_t>[kStressTransitions]);
  for (int64_t i = 0; i < kStressTransitions; ++i) completions[i].store(0);
  std::atomic<int64_t> holds{0};
  std::atomic<int> writers_left{kWriters};
  StressClock clock(kWriters + kReaders + kHolders);
  auto complete = [&](int64_t seq) {
    if (!ring.begin_complete(seq)) return;
    owners.enter(seq % kCapacity, seq, result);
    if (completions[seq].fetch_add(1) != 0)
      result.fail(seq, "window completed twice", result.overlaps);
    owners.leave(seq % kCapacity);
    ring.end_complete(seq, stamped_window(seq, kStack));
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      clock.arrive();
      while (!clock.expired()) {  // a claimed seq is always written: later writers wait for it
        const int64_t seq = ring.claim(1);
        if (seq >= kStressTransitions) break;
        ring.begin_write(seq);
        owners.enter(seq % kCapacity, seq, result);
        owners.leave(seq % kCapacity);
        ring.commit(seq, stamped_record(seq, kStack), false);
        if (seq > 0) complete(seq - 1);
        if (seq == kStressTransitions - 1) complete(seq);
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int h = 0; h < kHolders; ++h) {
    threads.emplace_back([&] {
      clock.arrive();
      for (int64_t i = 0; writers_left.load() > 0; ++i) {
        const int64_t seq = ring.claimed() - 2 - i % kCapacity;
        if (seq < 0 || !ring.hold(seq)) continue;
        owners.enter(seq % kCapacity, seq, result);
        holds.fetch_add(1);
        owners.leave(seq % kCapacity);
        ring.release(seq);
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      clock.arrive();
      do {
        read_all_slots(ring, kStack, true, result);
      } while (writers_left.load() > 0);
    });
  }
  for (auto& thread : threads) thread.join();
  std::printf("  transitions %lld, holds %lld\n",
              static_cast<long long>(std::min(ring.claimed(), kStressTransitions)),
              static_cast<long long>(holds.load()));
  report(result);
  // A window whose slot was taken by the next writer first stays open; the others completed once.
  int64_t completed = 0;
  for (int64_t i = 0; i < kStressTransitions; ++i) completed += completions[i].load();
  EXPECT_GT(completed, 0);
  EXPECT_LE(completed, kStressTransitions);
}

// A loaded ring's last transitions numbered at kMaxTransitions, plus the rows of the adds in flight
// that may pass it, still have versions that name them.
TEST(TransitionRing, SlotVersionsHoldTransitionNumbersUpToTheBound) {
  TransitionRing ring(4, 1, /*windows=*/false);
  const int64_t last = kMaxTransitions + kMaxNumEnvs - 1;
  for (int64_t seq = last - 3; seq <= last; ++seq) {
    TransitionRecord record{};
    record.action = static_cast<int32_t>(seq % 1000);
    ring.commit(seq, record, /*complete=*/true);
  }
  ring.restore_claimed(last + 1);
  for (int64_t seq = last - 3; seq <= last; ++seq) {
    const int64_t version = ring.read_begin(seq % 4);
    ASSERT_GT(version, 0);
    EXPECT_EQ(TransitionRing::seq_of(version), seq);
    EXPECT_EQ(TransitionRing::phase_of(version), TransitionRing::kComplete);
    EXPECT_TRUE(ring.hold(seq));  // what update_priorities does with such a number
    ring.release(seq);
  }
}

}  // namespace
}  // namespace pydqn
